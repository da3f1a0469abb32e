"""Preset files: training hyperparameters as JSON, written by ``streamrec tune`` and read by
``streamrec train --preset-file`` and the retrainer.

Layout: ``{"format": "streamrec-preset/1", "config": {TrainConfig fields}, "about": {...}}``. ``about``
says where the preset came from (data, validation metrics, trials) and is not read back. A field left
out of ``config`` keeps :class:`~models.train.TrainConfig`'s default; an unknown field is refused.
"""

import dataclasses
import json
import os
from pathlib import Path

from models.train import TrainConfig

PRESET_FORMAT = "streamrec-preset/1"


class PresetError(ValueError):
    """The preset file is malformed or holds an invalid configuration."""


def write_preset_file(path: Path, config: TrainConfig, about: dict) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": PRESET_FORMAT, "config": config.to_dict(), "about": about}, indent=1)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text + "\n")
    os.replace(partial, path)


def read_preset_file(path: Path) -> TrainConfig:
    try:
        document = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PresetError(f"{path}: not a JSON preset file ({e})") from None
    if not isinstance(document, dict) or document.get("format") != PRESET_FORMAT:
        raise PresetError(f'{path}: not a preset file (expected "format": "{PRESET_FORMAT}")')
    config = document.get("config")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    if not isinstance(config, dict) or not set(config) <= known:
        unknown = sorted(set(config) - known) if isinstance(config, dict) else "not an object"
        raise PresetError(f'{path}: "config" has unknown fields {unknown}; known: {sorted(known)}')
    try:
        return TrainConfig(**config)
    except (TypeError, ValueError) as e:
        raise PresetError(f"{path}: invalid configuration: {e}") from None

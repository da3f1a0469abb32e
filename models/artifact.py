"""Model artifacts: a directory with ``weights.safetensors``, ``popularity.json`` and ``manifest.json``.

The manifest holds the format version, the model version (``<UTC time>-<first 8 hex of the weights'
sha256>``), the architecture (a name in :data:`ARCHITECTURES`) and its config, the caller's training
config, the item-id vocabulary (index -> id), the training data's fingerprint, metrics, and the sha256
of the weights and of the popularity file. The popularity file lists the recently most popular items
(``[[item id, weight], ...]``, most popular first; :mod:`models.popularity`); artifacts written
before it existed have neither the file nor its checksum and load with an empty list. Loading parses
JSON and safetensors only, so it never executes code from the artifact, and checks everything it
can; any problem raises :class:`ArtifactError`. Saving is atomic: the directory is written under a
temporary name next to its destination and renamed into place.
"""

import hashlib
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from models.contract import SequenceModel
from models.model import GRU4Rec, ModelConfig
from models.popularity import POPULAR_ITEMS_MAX

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
POPULARITY_FILE = "popularity.json"
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z-([0-9a-f]{8})$")
# The model classes an artifact may name, with their config class. Loading builds only these, so a
# manifest cannot make the loader construct anything else. Artifacts written before the manifest
# named its architecture are GRU4Rec's.
ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {"gru4rec": (GRU4Rec, ModelConfig)}
DEFAULT_ARCHITECTURE = "gru4rec"


class ArtifactError(Exception):
    """The artifact is missing, corrupted, tampered with or inconsistent."""


@dataclass
class ModelArtifact:
    model: SequenceModel  # an nn.Module of a registered architecture, in eval mode, on CPU
    item_ids: list[str]  # index -> external item id
    item_index: dict[str, int]
    version: str
    config: dict
    metrics: dict
    data_fingerprint: str
    checksum: str  # sha256 of the weights file
    # (external item id, weight), most popular first; empty for artifacts written before it existed
    popular_items: list[tuple[str, float]] = field(default_factory=list)


def save_artifact(
    path: str | Path,
    model: nn.Module,
    item_ids: list[str],
    config: dict,
    data_fingerprint: str,
    metrics: dict,
    popular_items: Sequence[tuple[str, float]] = (),
) -> str:
    """Write the artifact directory ``path`` (replacing an existing one) and return the model version."""
    version, files = _serialise(model, item_ids, config, data_fingerprint, metrics, popular_items)
    _write_atomically(Path(path), files)
    return version


def save_artifact_in(
    store: str | Path,
    model: nn.Module,
    item_ids: list[str],
    config: dict,
    data_fingerprint: str,
    metrics: dict,
    popular_items: Sequence[tuple[str, float]] = (),
) -> Path:
    """Write the artifact to ``store/<its version>`` and return that path."""
    version, files = _serialise(model, item_ids, config, data_fingerprint, metrics, popular_items)
    path = Path(store) / version
    _write_atomically(path, files)
    return path


def _serialise(
    model: nn.Module,
    item_ids: list[str],
    config: dict,
    data_fingerprint: str,
    metrics: dict,
    popular_items: Sequence[tuple[str, float]],
) -> tuple[str, dict[str, bytes]]:
    """The model version and the artifact's files (name -> content; the manifest last)."""
    if len(item_ids) != model.n_items or len(set(item_ids)) != len(item_ids):
        distinct = len(set(item_ids))
        raise ValueError(f"need {model.n_items} distinct item ids, got {len(item_ids)} ({distinct} distinct)")
    popularity_entries = [[str(item), float(weight)] for item, weight in popular_items]
    problem = _popularity_problem(popularity_entries)
    if problem is not None:
        raise ValueError(f"popular items: {problem}")
    popularity = json.dumps(popularity_entries, allow_nan=False).encode("utf-8")
    weights = save_safetensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    checksum = hashlib.sha256(weights).hexdigest()
    version = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{checksum[:8]}"
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": version,
        "architecture": _architecture_of(model),
        "model": model.config.to_dict(),
        "config": config,
        "item_ids": [str(i) for i in item_ids],
        "data_fingerprint": data_fingerprint,
        "metrics": metrics,
        "weights_sha256": checksum,
        "popularity_sha256": hashlib.sha256(popularity).hexdigest(),
    }
    manifest_bytes = json.dumps(manifest, indent=1, allow_nan=False).encode("utf-8")
    return version, {WEIGHTS_FILE: weights, POPULARITY_FILE: popularity, MANIFEST_FILE: manifest_bytes}


def _write_atomically(path: Path, files: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        for name, content in files.items():
            _write_synced(staging / name, content)
        _move_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_artifact(path: str | Path) -> ModelArtifact:
    path = Path(path)
    manifest = _read_manifest(path / MANIFEST_FILE)
    weights = _read_file(path / WEIGHTS_FILE)
    checksum = hashlib.sha256(weights).hexdigest()
    if checksum != manifest["weights_sha256"]:
        raise ArtifactError(
            f"{path / WEIGHTS_FILE}: sha256 {checksum} does not match the manifest's "
            f"{manifest['weights_sha256']} (file corrupted, truncated or replaced)"
        )
    model_class, config_class = ARCHITECTURES[manifest.get("architecture", DEFAULT_ARCHITECTURE)]
    try:
        config = config_class(**manifest["model"])
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{path / MANIFEST_FILE}: invalid model config: {e}") from None
    item_ids = manifest["item_ids"]
    # Built once and checked for repeats by its length. Each of set(ids) and dict(zip(...)) holds the
    # GIL for 0.2-0.35 s at a million ids in one C call, stalling the event loop of a worker loading
    # a model for a swap; a comprehension lets the loop in every few milliseconds.
    item_index = {item: i for i, item in enumerate(item_ids)}
    if len(item_index) != len(item_ids):
        raise ArtifactError(f"{path / MANIFEST_FILE}: item_ids must be distinct strings")
    if len(item_ids) != config.n_items:
        raise ArtifactError(
            f"{path}: vocabulary has {len(item_ids)} items but the model has {config.n_items}"
        )
    # Built on the meta device and given the parsed tensors themselves: a 1M-item model's random
    # initialisation and the copy into it took 0.9 s and 400 MB each, for nothing.
    with torch.device("meta"):
        model = model_class(config)
    tensors = _parse_weights(weights, model, path / WEIGHTS_FILE)
    del weights  # 400 MB at 1M items, no longer needed once parsed
    model.load_state_dict(tensors, assign=True)
    model.eval().requires_grad_(False)
    popular_items = _read_popularity(path, manifest.get("popularity_sha256"))
    return ModelArtifact(
        model=model,
        item_ids=item_ids,
        item_index=item_index,
        version=manifest["version"],
        config=manifest["config"],
        metrics=manifest["metrics"],
        data_fingerprint=manifest["data_fingerprint"],
        checksum=checksum,
        popular_items=popular_items,
    )


def _architecture_of(model: nn.Module) -> str:
    for name, (model_class, _) in ARCHITECTURES.items():
        if type(model) is model_class:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered architecture")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(_read_file(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version")
        raise ArtifactError(f"{path}: format_version {found!r}, expected {FORMAT_VERSION}")
    expected_types = {
        "version": str,
        "model": dict,
        "config": dict,
        "item_ids": list,
        "data_fingerprint": str,
        "metrics": dict,
        "weights_sha256": str,
    }
    for key, kind in expected_types.items():
        if not isinstance(manifest.get(key), kind):
            raise ArtifactError(f"{path}: {key!r} missing or not a {kind.__name__}")
    architecture = manifest.get("architecture", DEFAULT_ARCHITECTURE)
    if architecture not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ArtifactError(f"{path}: unknown architecture {architecture!r} (this code knows {known})")
    digests = {"weights_sha256": manifest["weights_sha256"]}
    if "popularity_sha256" in manifest:  # absent from artifacts written before popularity existed
        digests["popularity_sha256"] = manifest["popularity_sha256"]
    for key, digest in digests.items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ArtifactError(f"{path}: {key} is not a sha256 hex digest")
    match = VERSION_PATTERN.match(manifest["version"])
    if match is None or match.group(1) != manifest["weights_sha256"][:8]:
        raise ArtifactError(f"{path}: version {manifest['version']!r} does not match the weights checksum")
    if not all(isinstance(i, str) for i in manifest["item_ids"]):
        raise ArtifactError(f"{path}: item_ids must be distinct strings")
    return manifest


def _read_popularity(path: Path, expected_sha256: str | None) -> list[tuple[str, float]]:
    """The popularity file's entries, checked against the manifest's checksum; an artifact written
    before popularity existed has neither and gets an empty list."""
    file = path / POPULARITY_FILE
    if expected_sha256 is None:
        if file.exists():
            raise ArtifactError(f"{file}: present, but the manifest has no popularity_sha256 to check it")
        return []
    data = _read_file(file)
    checksum = hashlib.sha256(data).hexdigest()
    if checksum != expected_sha256:
        raise ArtifactError(
            f"{file}: sha256 {checksum} does not match the manifest's {expected_sha256} "
            "(file corrupted, truncated or replaced)"
        )
    try:
        entries = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{file}: not valid JSON ({e})") from None
    problem = _popularity_problem(entries)
    if problem is not None:
        raise ArtifactError(f"{file}: {problem}")
    return [(item, float(weight)) for item, weight in entries]


def _popularity_problem(entries: Any) -> str | None:
    """What is wrong with a popularity list (``[[item id, weight], ...]``), or None."""
    if not isinstance(entries, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in entries
    ):
        return "expected a list of [item id, weight] pairs with string ids"
    if len(entries) > POPULAR_ITEMS_MAX:
        return f"{len(entries)} entries, at most {POPULAR_ITEMS_MAX} allowed"
    weights = [e[1] for e in entries]
    if not all(_is_weight(w) for w in weights):
        return "weights must be finite numbers >= 0"
    if any(later > earlier for earlier, later in itertools.pairwise(weights)):
        return "entries must be ordered by weight, most popular first"
    if len({e[0] for e in entries}) != len(entries):
        return "item ids must be distinct"
    return None


def _is_weight(value: Any) -> bool:
    """A finite number >= 0 (JSON may hold NaN, Infinity, booleans or integers beyond a float)."""
    if type(value) not in (int, float):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:
        return False


def _parse_weights(data: bytes, model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError) as e:
        raise ArtifactError(f"{path}: not a valid safetensors file ({e})") from None
    expected = model.state_dict()
    if tensors.keys() != expected.keys():
        raise ArtifactError(f"{path}: tensors {sorted(tensors)} do not match the model's {sorted(expected)}")
    for name, tensor in tensors.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise ArtifactError(
                f"{path}: {name} is {tuple(tensor.shape)} {tensor.dtype}, "
                f"the model config needs {tuple(want.shape)} {want.dtype}"
            )
        # NaN and inf propagate into the sum, which takes 0.05 s on 100M floats where isfinite took
        # 1.9 s; only a sum that is not finite (or overflowed) pays for the exact check.
        if not torch.isfinite(tensor.sum()) and not torch.isfinite(tensor).all():
            raise ArtifactError(f"{path}: {name} contains NaN or infinite values")
    return tensors


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _move_into_place(staging: Path, path: Path) -> None:
    """Rename ``staging`` to ``path``. An existing ``path`` is swapped out first and then deleted, so
    readers see either the old or the new artifact, except for the instant between the two renames."""
    os.chmod(staging, 0o755)  # mkdtemp creates it private
    if not path.exists():
        os.rename(staging, path)
    else:
        retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.rename(path, retired / path.name)
        os.rename(staging, path)
        shutil.rmtree(retired)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)

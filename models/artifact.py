"""Model artifacts: a directory with ``weights.safetensors`` and ``manifest.json``.

The manifest holds the format version, the model version (``<UTC time>-<first 8 hex of the weights'
sha256>``), the architecture (a name in :data:`ARCHITECTURES`) and its config, the caller's training
config, the item-id vocabulary (index -> id), the training data's fingerprint, metrics and the
weights' sha256. Loading parses JSON and safetensors only, so it never executes code from the
artifact, and checks everything it can; any problem raises :class:`ArtifactError`. Saving is atomic:
the directory is written under a temporary name next to its destination and renamed into place.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
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

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
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


def save_artifact(
    path: str | Path,
    model: nn.Module,
    item_ids: list[str],
    config: dict,
    data_fingerprint: str,
    metrics: dict,
) -> str:
    """Write the artifact directory ``path`` (replacing an existing one) and return the model version."""
    version, weights, manifest = _serialise(model, item_ids, config, data_fingerprint, metrics)
    _write_atomically(Path(path), weights, manifest)
    return version


def save_artifact_in(
    store: str | Path,
    model: nn.Module,
    item_ids: list[str],
    config: dict,
    data_fingerprint: str,
    metrics: dict,
) -> Path:
    """Write the artifact to ``store/<its version>`` and return that path."""
    version, weights, manifest = _serialise(model, item_ids, config, data_fingerprint, metrics)
    path = Path(store) / version
    _write_atomically(path, weights, manifest)
    return path


def _serialise(
    model: nn.Module, item_ids: list[str], config: dict, data_fingerprint: str, metrics: dict
) -> tuple[str, bytes, bytes]:
    """The model version, the weights file and the manifest file of an artifact."""
    if len(item_ids) != model.n_items or len(set(item_ids)) != len(item_ids):
        distinct = len(set(item_ids))
        raise ValueError(f"need {model.n_items} distinct item ids, got {len(item_ids)} ({distinct} distinct)")
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
    }
    return version, weights, json.dumps(manifest, indent=1, allow_nan=False).encode("utf-8")


def _write_atomically(path: Path, weights: bytes, manifest: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _write_synced(staging / WEIGHTS_FILE, weights)
        _write_synced(staging / MANIFEST_FILE, manifest)
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
    if len(item_ids) != config.n_items:
        raise ArtifactError(
            f"{path}: vocabulary has {len(item_ids)} items but the model has {config.n_items}"
        )
    model = model_class(config)
    model.load_state_dict(_parse_weights(weights, model, path / WEIGHTS_FILE))
    model.eval().requires_grad_(False)
    return ModelArtifact(
        model=model,
        item_ids=item_ids,
        item_index={item: i for i, item in enumerate(item_ids)},
        version=manifest["version"],
        config=manifest["config"],
        metrics=manifest["metrics"],
        data_fingerprint=manifest["data_fingerprint"],
        checksum=checksum,
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
    if not re.fullmatch(r"[0-9a-f]{64}", manifest["weights_sha256"]):
        raise ArtifactError(f"{path}: weights_sha256 is not a sha256 hex digest")
    match = VERSION_PATTERN.match(manifest["version"])
    if match is None or match.group(1) != manifest["weights_sha256"][:8]:
        raise ArtifactError(f"{path}: version {manifest['version']!r} does not match the weights checksum")
    item_ids = manifest["item_ids"]
    if not all(isinstance(i, str) for i in item_ids) or len(set(item_ids)) != len(item_ids):
        raise ArtifactError(f"{path}: item_ids must be distinct strings")
    return manifest


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
        if not torch.isfinite(tensor).all():
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

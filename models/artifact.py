"""Model artifacts: a directory with ``weights.safetensors``, ``vocabulary.jsonl``, ``popularity.json``
and ``manifest.json``.

The manifest holds the format version, the model version (``<UTC time>-<first 8 hex of the weights'
sha256>``), the architecture (a name in :data:`ARCHITECTURES`) and its config, the caller's training
config, the training data's fingerprint, metrics, and the sha256 of the weights, the vocabulary and
the popularity file. The vocabulary lists the item ids in index order, one JSON string per line
(:mod:`models.vocabulary_file`); format 1 held them in the manifest, and still loads. The popularity
file lists the recently most popular items (``[[item id, weight], ...]``, most popular first;
:mod:`models.popularity`); artifacts written before it existed have neither the file nor its
checksum and load with an empty list. Loading parses JSON and safetensors only, so it never executes
code from the artifact, and checks everything it can; any problem raises :class:`ArtifactError`.
:func:`read_artifact` does all but making the vocabulary's Python objects, which
:meth:`StagedArtifact.finish` does in steps (a serving worker runs them between micro-batches).
Saving is atomic: the directory is written under a temporary name next to its destination and
renamed into place.
"""

import hashlib
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from models import vocabulary_file
from models.contract import SequenceModel
from models.model import GRU4Rec, ModelConfig
from models.popularity import POPULAR_ITEMS_MAX
from models.stepwise import Steps, drain
from models.weights_file import InvalidWeightsFile, read_buffer, tensors_in

FORMAT_VERSION = 2  # 1: the vocabulary in the manifest (still read)
READABLE_FORMATS = (1, 2)
T = TypeVar("T")
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
POPULARITY_FILE = "popularity.json"
VOCABULARY_FILE = "vocabulary.jsonl"
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
    # the vocabulary file's bytes, to tell whether a retrained model's extends it; None for format 1
    vocabulary_source: bytes | None = None

    def vocabulary(self) -> vocabulary_file.Vocabulary:
        return vocabulary_file.Vocabulary(self.item_ids, self.item_index, self.vocabulary_source)


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
    vocabulary = vocabulary_file.encode(item_ids)
    weights = save_safetensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    checksum = hashlib.sha256(weights).hexdigest()
    version = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{checksum[:8]}"
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": version,
        "architecture": _architecture_of(model),
        "model": model.config.to_dict(),
        "config": config,
        "data_fingerprint": data_fingerprint,
        "metrics": metrics,
        "weights_sha256": checksum,
        "popularity_sha256": hashlib.sha256(popularity).hexdigest(),
        "vocabulary_sha256": hashlib.sha256(vocabulary).hexdigest(),
    }
    manifest_bytes = json.dumps(manifest, indent=1, allow_nan=False).encode("utf-8")
    files = {WEIGHTS_FILE: weights, POPULARITY_FILE: popularity, VOCABULARY_FILE: vocabulary}
    return version, {**files, MANIFEST_FILE: manifest_bytes}


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


@dataclass(frozen=True)
class StagedArtifact:
    """An artifact read and checked, all but its vocabulary: :meth:`finish` makes that into Python
    objects, in steps a serving worker runs between micro-batches (:mod:`models.vocabulary_file`)."""

    path: Path
    manifest: dict[str, Any]
    model: SequenceModel
    checksum: str  # sha256 of the weights file
    popular_items: list[tuple[str, float]]
    vocabulary: list[str] | bytes  # format 1: the manifest's list; later: the checked file's bytes

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def finish(self, known: ModelArtifact | None = None) -> Steps[ModelArtifact]:
        """The loaded artifact, once the vocabulary checks out; reusing the ids of ``known`` (the
        serving model) if this vocabulary extends its own."""
        if isinstance(self.vocabulary, bytes):
            try:
                vocabulary = yield from vocabulary_file.read_steps(
                    self.vocabulary, known.vocabulary() if known else None
                )
            except vocabulary_file.InvalidVocabulary as e:
                raise ArtifactError(f"{self.path / VOCABULARY_FILE}: {e}") from None
        else:
            index = yield from vocabulary_file.index_steps(self.vocabulary)
            vocabulary = vocabulary_file.Vocabulary(self.vocabulary, index, None)
        item_ids, item_index = vocabulary.ids, vocabulary.index
        if len(item_index) != len(item_ids):
            raise ArtifactError(f"{self.path}: item ids must be distinct strings")
        if len(item_ids) != self.model.n_items:
            raise ArtifactError(
                f"{self.path}: vocabulary has {len(item_ids)} items but the model has {self.model.n_items}"
            )
        return ModelArtifact(
            model=self.model,
            item_ids=item_ids,
            item_index=item_index,
            version=self.version,
            config=self.manifest["config"],
            metrics=self.manifest["metrics"],
            data_fingerprint=self.manifest["data_fingerprint"],
            checksum=self.checksum,
            popular_items=self.popular_items,
            vocabulary_source=vocabulary.source,
        )


def load_artifact(path: str | Path) -> ModelArtifact:
    return drain(read_artifact(path).finish())


def read_artifact(path: str | Path) -> StagedArtifact:
    """Read and check everything but the vocabulary's ids (see :class:`StagedArtifact`)."""
    path = Path(path)
    manifest = _read_manifest(path / MANIFEST_FILE)
    weights = _read_file(path / WEIGHTS_FILE, read_buffer)
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
    # Built on the meta device and given the parsed tensors themselves: a 1M-item model's random
    # initialisation and the copy into it took 0.9 s and 400 MB each, for nothing.
    with torch.device("meta"):
        model = model_class(config)
    tensors = _parse_weights(weights, model, path / WEIGHTS_FILE)  # views of ``weights``
    model.load_state_dict(tensors, assign=True)
    model.eval().requires_grad_(False)
    return StagedArtifact(
        path=path,
        manifest=manifest,
        model=model,
        checksum=checksum,
        popular_items=_read_popularity(path, manifest.get("popularity_sha256")),
        vocabulary=_read_vocabulary(path, manifest),
    )


def _architecture_of(model: nn.Module) -> str:
    for name, (model_class, _) in ARCHITECTURES.items():
        if type(model) is model_class:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered architecture")


def _read_file(path: Path, read: Callable[[Path], T] = Path.read_bytes) -> T:
    try:
        return read(path)
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(_read_file(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    if manifest.get("format_version") not in READABLE_FORMATS:
        found = manifest.get("format_version")
        raise ArtifactError(f"{path}: format_version {found!r}, expected one of {READABLE_FORMATS}")
    expected_types = {
        "version": str,
        "model": dict,
        "config": dict,
        "data_fingerprint": str,
        "metrics": dict,
        "weights_sha256": str,
    }
    if manifest["format_version"] == 1:
        expected_types["item_ids"] = list
    for key, kind in expected_types.items():
        if not isinstance(manifest.get(key), kind):
            raise ArtifactError(f"{path}: {key!r} missing or not a {kind.__name__}")
    architecture = manifest.get("architecture", DEFAULT_ARCHITECTURE)
    if architecture not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ArtifactError(f"{path}: unknown architecture {architecture!r} (this code knows {known})")
    digests = {"weights_sha256": manifest["weights_sha256"]}
    for optional in ("popularity_sha256", "vocabulary_sha256"):  # absent from older formats
        if optional in manifest:
            digests[optional] = manifest[optional]
    if manifest["format_version"] > 1 and "vocabulary_sha256" not in manifest:
        raise ArtifactError(f"{path}: 'vocabulary_sha256' missing")
    for key, digest in digests.items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ArtifactError(f"{path}: {key} is not a sha256 hex digest")
    match = VERSION_PATTERN.match(manifest["version"])
    if match is None or match.group(1) != manifest["weights_sha256"][:8]:
        raise ArtifactError(f"{path}: version {manifest['version']!r} does not match the weights checksum")
    if manifest["format_version"] == 1 and not all(isinstance(i, str) for i in manifest["item_ids"]):
        raise ArtifactError(f"{path}: item_ids must be distinct strings")
    return manifest


def _read_vocabulary(path: Path, manifest: dict[str, Any]) -> list[str] | bytes:
    if manifest["format_version"] == 1:
        return manifest["item_ids"]
    return _read_checked(path / VOCABULARY_FILE, manifest["vocabulary_sha256"])


def _read_checked(file: Path, expected_sha256: str) -> bytes:
    data = _read_file(file)
    checksum = hashlib.sha256(data).hexdigest()
    if checksum != expected_sha256:
        raise ArtifactError(
            f"{file}: sha256 {checksum} does not match the manifest's {expected_sha256} "
            "(file corrupted, truncated or replaced)"
        )
    return data


def _read_popularity(path: Path, expected_sha256: str | None) -> list[tuple[str, float]]:
    """The popularity file's entries, checked against the manifest's checksum; an artifact written
    before popularity existed has neither and gets an empty list."""
    file = path / POPULARITY_FILE
    if expected_sha256 is None:
        if file.exists():
            raise ArtifactError(f"{file}: present, but the manifest has no popularity_sha256 to check it")
        return []
    data = _read_checked(file, expected_sha256)
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


def _parse_weights(data: np.ndarray, model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    try:
        tensors = tensors_in(data)
    except InvalidWeightsFile as e:
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

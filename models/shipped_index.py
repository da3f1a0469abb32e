"""A prebuilt approximate index shipped in a model artifact's directory, so a worker need not build it.

Two files beside the weights: ``ann.index`` (faiss's serialisation of :func:`models.ann.build_index`)
and ``ann.index.json`` (its sha256, the sha256 of the weights it was built from, its item count).
Each is written under a temporary name and renamed, the index first: a reader that finds the JSON
finds the whole index. Loading checks both checksums before faiss parses a byte; any problem raises
:class:`models.artifact.ArtifactError`, as a bad weights file does, so the artifact is refused and the
model already serving stays. No JSON file: no index shipped (the worker builds one).
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import faiss

from models.ann import AnnParams, AnnScorer, IndexMismatch, build_index
from models.artifact import ArtifactError, ModelArtifact
from models.contract import ItemTable

INDEX_FILE = "ann.index"
INDEX_MANIFEST_FILE = "ann.index.json"


def ship_index(path: str | Path, artifact: ModelArtifact, params: AnnParams) -> Path:
    """Build the approximate index of ``artifact`` (stored at ``path``) and write it there."""
    path = Path(path)
    data = faiss.serialize_index(build_index(artifact.model.item_table(), params)).tobytes()
    manifest = {
        "index_sha256": hashlib.sha256(data).hexdigest(),
        "weights_sha256": artifact.checksum,
        "n_items": artifact.model.n_items,
    }
    _write_renamed(path / INDEX_FILE, data)
    _write_renamed(path / INDEX_MANIFEST_FILE, json.dumps(manifest).encode())
    return path / INDEX_FILE


def load_shipped_index(path: str | Path, artifact: ModelArtifact) -> faiss.Index | None:
    """The index shipped with ``artifact`` at ``path``, checked; None if none was shipped."""
    path = Path(path)
    try:
        manifest = json.loads((path / INDEX_MANIFEST_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path / INDEX_MANIFEST_FILE}: unreadable: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("weights_sha256") != artifact.checksum:
        raise ArtifactError(f"{path / INDEX_MANIFEST_FILE}: the index was not built from these weights")
    # Hashed as a stream, then read by faiss from the file: holding the file's bytes beside the parsed
    # index doubled a 1M-item index's 400 MB at the peak of a swap. The store's files are written
    # once and renamed into place, so the file faiss reads is the one hashed.
    try:
        with open(path / INDEX_FILE, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise ArtifactError(f"{path / INDEX_FILE}: unreadable: {e}") from None
    if digest != manifest.get("index_sha256"):
        raise ArtifactError(
            f"{path / INDEX_FILE}: sha256 does not match {INDEX_MANIFEST_FILE} (corrupted or replaced)"
        )
    try:
        index = faiss.read_index(str(path / INDEX_FILE))
    except RuntimeError as e:
        raise ArtifactError(f"{path / INDEX_FILE}: not a faiss index: {e}") from None
    _check_fits(index, artifact.model.item_table(), path)
    return index


def _check_fits(index: faiss.Index, items: ItemTable, path: Path) -> None:
    """The scorer's own check (kind, item count, dimensions), as an artifact error."""
    try:
        AnnScorer(items, index, AnnParams())
    except IndexMismatch as e:
        raise ArtifactError(f"{path / INDEX_FILE}: {e}") from None


def _write_renamed(path: Path, data: bytes) -> None:
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise

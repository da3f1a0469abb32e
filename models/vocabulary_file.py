"""An artifact's item vocabulary, made into Python objects in steps of a few milliseconds.

A worker loads the next model while its event loop serves. Every C call that builds Python objects
holds the GIL throughout: one ``json.loads`` of a million ids held it 60 ms on an idle machine and
230-280 ms beside a serving worker, and the loop served nothing meanwhile; a dict comprehension over
them in the loader thread let the loop in only every 5 ms (the interpreter's switch interval), so each
of the loop's own waits on the broker, faiss or torch cost it up to 5 ms more, for 0.6 s. Here the
file (one JSON string per line, written by :func:`encode`) is parsed, and the id -> index map built,
in steps (:mod:`models.stepwise`) that the worker runs on its event loop between micro-batches.
A retrained model's vocabulary starts with the serving model's (warm starts keep item indices): when
its bytes do, the serving model's ids and index are reused and only the new lines are parsed.
"""

import itertools
import json
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from models.stepwise import Steps

SLICE_BYTES = 1 << 18  # ~20,000 ids of a dozen characters: 1-2 ms to parse
SLICE_IDS = 10_000  # dict inserts: ~3 ms


class InvalidVocabulary(ValueError):
    """The bytes are not one JSON string per line."""


class Vocabulary(NamedTuple):
    ids: list[str]
    index: dict[str, int]  # id -> position; shorter than ids if an id repeats
    source: bytes | None  # what they were read from (no final newline); None if not read from bytes


def read_steps(data: bytes, known: Vocabulary | None = None) -> Steps[Vocabulary]:
    """The vocabulary of :func:`encode`'s bytes, reusing ``known`` if the bytes extend its bytes."""
    data = data.removesuffix(b"\n")
    if known is not None and known.source is not None and _extends(data, known.source):
        if len(data) == len(known.source):  # the same ids: shared, as neither model changes them
            return known
        added = yield from decode_steps(data[len(known.source) + 1 :])
        index = yield from _copy_steps(known.index)  # the serving model's stays as it is
        yield from index_steps(added, into=index, first=len(known.ids))
        return Vocabulary(known.ids + added, index, data)
    ids = yield from decode_steps(data)
    return Vocabulary(ids, (yield from index_steps(ids)), data)


def _copy_steps(index: dict[str, int]) -> Steps[dict[str, int]]:
    """A copy of ``index`` (one ``dict.copy`` of a million ids holds the GIL 45 ms)."""
    copied: dict[str, int] = {}
    entries = iter(index.items())
    while chunk := list(itertools.islice(entries, SLICE_IDS)):
        copied.update(chunk)
        yield
    return copied


def _extends(data: bytes, known: bytes) -> bool:
    """Whether ``data`` is ``known``'s lines and maybe more lines (one memcmp: ~1 ms at 1M ids)."""
    return data.startswith(known) and data[len(known) : len(known) + 1] in (b"", b"\n")


def encode(item_ids: Sequence[str]) -> bytes:
    """One JSON string per line (newlines inside ids are escaped, so lines split safely)."""
    return "\n".join(json.dumps(str(item)) for item in item_ids).encode("utf-8")


def decode_steps(data: bytes) -> Steps[list[str]]:
    """The ids of :func:`encode`'s bytes (without a final newline), in order."""
    ids: list[str] = []
    for piece in _line_slices(data.removesuffix(b"\n")):
        lines = piece.count(b"\n") + 1
        try:
            parsed = json.loads(b"[" + piece.replace(b"\n", b",") + b"]")
        except (UnicodeDecodeError, ValueError):
            parsed = None
        if parsed is None or len(parsed) != lines or not all(type(item) is str for item in parsed):
            first = len(ids) + 1
            raise InvalidVocabulary(f"lines {first}-{first + lines - 1} are not one JSON string each")
        ids.extend(parsed)
        yield
    return ids


def index_steps(
    item_ids: Sequence[str], into: dict[str, int] | None = None, first: int = 0
) -> Steps[dict[str, int]]:
    """id -> position (a repeated id keeps its last); with ``into``, ids are added to it at positions
    from ``first``."""
    index: dict[str, int] = {} if into is None else into
    for start in range(0, len(item_ids), SLICE_IDS):
        stop = min(start + SLICE_IDS, len(item_ids))
        index.update(zip(item_ids[start:stop], range(first + start, first + stop), strict=True))
        yield
    return index


def _line_slices(data: bytes) -> Iterator[bytes]:
    """Pieces of about SLICE_BYTES that end at line ends."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + SLICE_BYTES)
        end = len(data) if end < 0 else end
        yield data[start:end]
        start = end + 1

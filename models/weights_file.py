"""Reading a safetensors file's tensors in place, without copying them.

``safetensors.torch.load`` copies every tensor out of the file's bytes while holding the GIL: 0.2 s
for a 1M-item model on an idle machine, up to 1.1 s when memory is being handed out slowly, and the
event loop of a worker staging that model for a hot swap stood still that long. The copy also held
the weights twice at the swap's peak (400 MB more). Here the file is read into one buffer (the read
and the checksum release the GIL) and each tensor is a view of that buffer. Writing stays with
safetensors; this reads its format (an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte span, then the data) and refuses what safetensors refuses: a header
outside the file, spans that overlap, leave gaps or do not fit their dtype and shape.
"""

import json
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
METADATA_KEY = "__metadata__"
DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
}


class InvalidWeightsFile(ValueError):
    """The bytes are not a safetensors file this reader can take."""


class Span(NamedTuple):
    """Where one tensor's bytes are in the data, and what they hold."""

    name: str
    begin: int
    end: int
    dtype: torch.dtype
    shape: tuple[int, ...]


def read_buffer(path: Path) -> np.ndarray:
    """The whole file, in a buffer the tensors can be views of."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        # Fresh memory is zeroed page by page when first touched. A bytearray zero-fills it holding
        # the GIL (0.2 s for 400 MB); a read into untouched memory takes its 100,000 page faults one
        # by one (0.87 s). torch fills it without the GIL, and the read is then a plain copy: 0.1-0.2 s
        # in all, and the event loop beside it never waits more than a few milliseconds.
        buffer = torch.zeros(size, dtype=torch.uint8).numpy()
        view = memoryview(buffer)
        filled = 0
        while filled < size:
            read = f.readinto(view[filled:])
            if not read:
                raise OSError(f"{path} ended after {filled} of its {size} bytes")
            filled += read
    return buffer


def tensors_in(buffer: np.ndarray | bytearray) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file's bytes, as views of ``buffer`` (writable, one byte per
    element)."""
    if len(buffer) < HEADER_LENGTH_BYTES:
        raise InvalidWeightsFile(f"{len(buffer)} bytes, fewer than the header length's own")
    header_bytes = int.from_bytes(bytes(buffer[:HEADER_LENGTH_BYTES]), "little")
    data_start = HEADER_LENGTH_BYTES + header_bytes
    if header_bytes > MAX_HEADER_BYTES or data_start > len(buffer):
        raise InvalidWeightsFile(f"header of {header_bytes} bytes in a file of {len(buffer)}")
    try:
        header = json.loads(bytes(buffer[HEADER_LENGTH_BYTES:data_start]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidWeightsFile(f"header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise InvalidWeightsFile("header is not a JSON object")
    header.pop(METADATA_KEY, None)
    spans = sorted((_span(name, entry) for name, entry in header.items()), key=lambda s: (s.begin, s.end))
    covered, data_bytes = 0, len(buffer) - data_start
    for span in spans:
        if span.begin != covered:
            raise InvalidWeightsFile(f"{span.name} starts at data byte {span.begin}, expected {covered}")
        covered = span.end
    if covered != data_bytes:
        raise InvalidWeightsFile(f"tensors cover {covered} bytes of the data, the file holds {data_bytes}")
    return {span.name: _view(buffer, data_start, span) for span in spans}


def _span(name: str, entry: object) -> Span:
    """A tensor's byte span in the data, dtype and shape, checked against one another."""
    if not isinstance(entry, dict):
        raise InvalidWeightsFile(f"{name}: entry is not an object")
    dtype = DTYPES.get(entry.get("dtype"))
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if dtype is None:
        raise InvalidWeightsFile(f"{name}: dtype {entry.get('dtype')!r} not one of {', '.join(DTYPES)}")
    if not _naturals(shape):
        raise InvalidWeightsFile(f"{name}: shape {shape!r} is not a list of sizes")
    if not (_naturals(offsets) and len(offsets) == 2 and offsets[0] <= offsets[1]):
        raise InvalidWeightsFile(f"{name}: data_offsets {offsets!r} is not a [begin, end] pair")
    size = math.prod(shape) * dtype.itemsize
    if offsets[1] - offsets[0] != size:
        raise InvalidWeightsFile(f"{name}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}")
    return Span(name, offsets[0], offsets[1], dtype, tuple(shape))


def _naturals(value: object) -> bool:
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def _view(buffer: np.ndarray | bytearray, data_start: int, span: Span) -> torch.Tensor:
    if span.begin == span.end:  # frombuffer refuses an empty view
        return torch.empty(span.shape, dtype=span.dtype)
    count = (span.end - span.begin) // span.dtype.itemsize
    flat = torch.frombuffer(buffer, dtype=span.dtype, count=count, offset=data_start + span.begin)
    return flat.view(span.shape)

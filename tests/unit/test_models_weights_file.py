import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

from models.weights_file import DTYPES, InvalidWeightsFile, read_buffer, tensors_in


def file_bytes(header: dict, data: bytes) -> bytearray:
    encoded = json.dumps(header).encode()
    return bytearray(len(encoded).to_bytes(8, "little") + encoded + data)


shapes = st.lists(st.integers(0, 4), max_size=3).map(tuple)
dtypes = st.sampled_from(sorted(DTYPES.values(), key=str))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text("abcdef.", min_size=1, max_size=6), st.tuples(shapes, dtypes), max_size=5))
def test_any_file_written_by_safetensors_reads_back_equal(specs):
    tensors = {
        name: torch.arange(torch.Size(shape).numel()).reshape(shape).to(dtype)
        for name, (shape, dtype) in specs.items()
    }
    read = tensors_in(bytearray(save_safetensors(tensors, metadata={"by": "test"})))
    assert read.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert read[name].dtype == tensor.dtype and torch.equal(read[name], tensor)


def test_the_tensors_are_views_of_the_buffer_not_copies(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(save_safetensors({"a": torch.ones(1000), "b": torch.zeros(3, 7)}))
    buffer = read_buffer(path)
    start = buffer.ctypes.data
    for tensor in tensors_in(buffer).values():
        assert start <= tensor.data_ptr() < start + len(buffer)
    assert buffer.tobytes() == path.read_bytes()


def test_spans_that_overlap_are_refused():
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    with pytest.raises(InvalidWeightsFile, match="b starts at data byte 4, expected 8"):
        tensors_in(file_bytes(header, bytes(12)))


def test_a_gap_between_spans_or_after_the_last_is_refused():
    header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
    with pytest.raises(InvalidWeightsFile, match="expected 0"):
        tensors_in(file_bytes(header, bytes(8)))
    header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    with pytest.raises(InvalidWeightsFile, match="cover 4 bytes of the data, the file holds 8"):
        tensors_in(file_bytes(header, bytes(8)))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "8 bytes for shape"),
        ({"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}, "dtype 'C64'"),
        ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "shape"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, "data_offsets"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8.0]}, "data_offsets"),
        ([0, 8], "not an object"),
    ],
)
def test_an_entry_that_does_not_describe_its_bytes_is_refused(entry, reason):
    with pytest.raises(InvalidWeightsFile, match=reason):
        tensors_in(file_bytes({"a": entry}, bytes(8)))


@pytest.mark.parametrize(
    "data",
    [
        bytearray(b"\x01\x02"),
        bytearray((1000).to_bytes(8, "little") + b"{}"),
        bytearray((2).to_bytes(8, "little") + b"\xff\xfe"),
        bytearray((2).to_bytes(8, "little") + b"[]"),
    ],
    ids=["shorter than the length", "header past the end", "header not utf-8", "header not an object"],
)
def test_a_broken_header_is_refused(data):
    with pytest.raises(InvalidWeightsFile):
        tensors_in(data)

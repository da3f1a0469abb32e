import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import vocabulary_file
from models.stepwise import drain
from models.vocabulary_file import (
    InvalidVocabulary,
    Vocabulary,
    encode,
    index_steps,
    read_steps,
)


def decode(data: bytes) -> list[str]:
    return drain(read_steps(data)).ids


def index_of(ids: list[str]) -> dict[str, int]:
    return drain(index_steps(ids))


@given(st.lists(st.text(), max_size=40))
def test_any_ids_come_back_in_order_whatever_they_hold(ids):
    assert decode(encode(ids)) == ids


def test_a_vocabulary_read_in_many_slices_comes_back_whole(monkeypatch):
    ids = [f'item\n{i}\u00e9"' for i in range(5_000)]
    monkeypatch.setattr(vocabulary_file, "SLICE_BYTES", 100)
    monkeypatch.setattr(vocabulary_file, "SLICE_IDS", 7)
    assert decode(encode(ids) + b"\n") == ids
    assert index_of(ids) == {item: i for i, item in enumerate(ids)}


def test_repeated_ids_leave_the_index_shorter():
    assert len(index_of(["a", "b", "a"])) == 2


@pytest.mark.parametrize("data", [b'"a"\n\n"b"', b'"a"\n"b", "c"', b'"a"\n3', b'"a\n', b"\xff"])
def test_lines_that_are_not_one_json_string_each_are_refused(data):
    with pytest.raises(InvalidVocabulary, match="not one JSON string each"):
        decode(data)


def test_a_vocabulary_that_extends_the_known_one_reuses_its_ids_and_parses_only_the_new_lines():
    old = drain(read_steps(encode(["a", "b\nc"])))
    new = drain(read_steps(encode(["a", "b\nc", "d"]), old))
    assert new.ids == ["a", "b\nc", "d"] and new.index == {"a": 0, "b\nc": 1, "d": 2}
    assert new.ids[1] is old.ids[1] and new.index is not old.index and len(old.index) == 2
    assert new.source == drain(read_steps(encode(new.ids))).source
    assert drain(read_steps(encode(["a", "b\nc"]), old)) is old


@pytest.mark.parametrize("ids", [["a", "bx"], ["a"], ["b\nc", "a"], ["A", "b\nc", "d"]])
def test_a_vocabulary_that_does_not_extend_the_known_one_is_read_whole(ids):
    old = drain(read_steps(encode(["a", "b\nc"])))
    new = drain(read_steps(encode(ids), old))
    assert new.ids == ids and new.index == {item: i for i, item in enumerate(ids)}


def test_known_ids_not_read_from_bytes_are_not_reused():
    known = Vocabulary(["x"], {"x": 0}, None)
    assert drain(read_steps(encode(["a"]), known)).ids == ["a"]

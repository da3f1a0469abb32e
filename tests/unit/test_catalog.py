"""The in-memory catalog: records and tombstones change what is unavailable, the version moves only
when an item's availability does, malformed records are counted and change nothing, and a
vocabulary's unavailable indices are computed once per catalog version."""

import gc
import logging
import weakref

import pytest
import torch

from schemas.catalog import CatalogEntry
from streamer.worker.catalog import VOCABULARIES_CACHED, Catalog
from streamer.worker.metrics import REGISTRY

SOLD_OUT = CatalogEntry(False).to_bytes()
IN_STOCK = CatalogEntry(True).to_bytes()


def catalog_with(*records: tuple[bytes | None, bytes | None]) -> Catalog:
    catalog = Catalog()
    for key, value in records:
        catalog.apply(key, value)
    return catalog


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value("streamrec_catalog_records_refused_total", {"reason": reason})
    return value or 0.0


def test_an_item_marked_unavailable_is_listed_as_unavailable_until_it_is_available_again():
    catalog = catalog_with((b"a", SOLD_OUT), (b"b", SOLD_OUT))
    assert catalog.unavailable == {"a", "b"}
    catalog.apply(b"a", IN_STOCK)
    assert catalog.unavailable == {"b"}
    assert catalog.get("a") == CatalogEntry(True) and len(catalog) == 2


def test_a_tombstone_deletes_the_item_which_makes_it_available():
    catalog = catalog_with((b"a", CatalogEntry(False, {"brand": "acme"}).to_bytes()))
    catalog.apply(b"a", None)
    assert catalog.unavailable == frozenset()
    assert catalog.get("a") is None and len(catalog) == 0


def test_an_item_the_catalog_never_heard_of_is_available():
    assert "unknown" not in catalog_with((b"a", SOLD_OUT)).unavailable


def test_the_version_changes_with_every_change_of_availability_and_only_then():
    catalog = Catalog()
    versions = []
    for key, value in [
        (b"a", SOLD_OUT),  # change
        (b"a", SOLD_OUT),  # the same again
        (b"a", CatalogEntry(False, {"brand": "acme"}).to_bytes()),  # attributes only
        (b"b", IN_STOCK),  # a new item, available: as it was while unknown
        (b"c", None),  # deleting an unknown item
        (b"b", None),  # deleting an available item
        (b"a", None),  # deleting an unavailable one: a change
        (b"a", SOLD_OUT),  # change
        (b"a", IN_STOCK),  # change
    ]:
        catalog.apply(key, value)
        versions.append(catalog.version)
    assert versions == [1, 1, 1, 1, 1, 1, 2, 3, 4]


def test_the_unavailable_set_is_the_same_object_until_the_next_change():
    catalog = catalog_with((b"a", SOLD_OUT))
    first = catalog.unavailable
    catalog.apply(b"b", IN_STOCK)
    assert catalog.unavailable is first
    catalog.apply(b"b", SOLD_OUT)
    assert catalog.unavailable == {"a", "b"} and first == {"a"}


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"a", b"{not json", "malformed_json"),
        (b"a", b'{"available": "false"}', "wrong_type"),
        (b"a", b"{}", "missing_field"),
        (b"a", b"", "malformed_json"),  # an empty value is not a tombstone
        (None, SOLD_OUT, "missing_key"),
        (b"\xff", SOLD_OUT, "bad_key"),
        (b"a", b"x" * 100_000, "oversized"),
    ],
)
def test_a_malformed_record_is_counted_logged_and_leaves_the_item_as_it_was(key, value, reason, caplog):
    catalog = catalog_with((b"a", SOLD_OUT))
    before = refused(reason)
    with caplog.at_level(logging.WARNING, logger="streamer.worker.catalog"):
        catalog.apply(key, value)
    assert refused(reason) == before + 1
    assert (catalog.unavailable, catalog.version, catalog.get("a")) == ({"a"}, 1, CatalogEntry(False))
    assert reason in caplog.text and "ignoring a catalog record" in caplog.text


def test_a_huge_hostile_key_is_logged_cut_short(caplog):
    with caplog.at_level(logging.WARNING, logger="streamer.worker.catalog"):
        Catalog().apply(b"\xff" * 1_000_000, SOLD_OUT)
    assert len(caplog.text) < 2000


def test_the_gauge_counts_the_unavailable_items():
    catalog = catalog_with((b"a", SOLD_OUT), (b"b", SOLD_OUT), (b"a", None))
    assert REGISTRY.get_sample_value("streamrec_catalog_unavailable_items") == len(catalog.unavailable) == 1


def test_unavailable_indices_are_those_the_vocabulary_knows_sorted():
    vocabulary = {"x": 0, "b": 1, "a": 2, "y": 3}
    catalog = catalog_with((b"a", SOLD_OUT), (b"b", SOLD_OUT), (b"new-item", SOLD_OUT), (b"y", IN_STOCK))
    indices = catalog.unavailable_indices(vocabulary)
    assert indices.dtype == torch.int64
    assert indices.tolist() == [1, 2]


def test_unavailable_indices_of_an_empty_catalog_are_an_empty_int64_tensor():
    indices = Catalog().unavailable_indices({"a": 0})
    assert indices.shape == (0,) and indices.dtype == torch.int64


def test_unavailable_indices_are_computed_once_per_vocabulary_until_one_of_its_items_changes():
    vocabulary = {"a": 0, "b": 1}
    catalog = catalog_with((b"a", SOLD_OUT))
    first = catalog.unavailable_indices(vocabulary)
    catalog.apply(b"a", CatalogEntry(False, {"brand": "acme"}).to_bytes())  # no change of availability
    assert catalog.unavailable_indices(vocabulary) is first
    catalog.apply(b"not-in-the-vocabulary", SOLD_OUT)
    assert catalog.unavailable_indices(vocabulary) is first
    assert catalog.unavailable_indices(dict(vocabulary)) is not first  # another vocabulary object


def test_a_change_of_availability_invalidates_the_cached_indices():
    vocabulary = {"a": 0, "b": 1}
    catalog = catalog_with((b"a", SOLD_OUT))
    assert catalog.unavailable_indices(vocabulary).tolist() == [0]
    catalog.apply(b"b", SOLD_OUT)
    assert catalog.unavailable_indices(vocabulary).tolist() == [0, 1]
    catalog.apply(b"a", None)
    assert catalog.unavailable_indices(vocabulary).tolist() == [1]


def test_the_serving_and_the_staged_vocabularies_stay_cached_side_by_side():
    serving, staged = {"a": 0}, {"a": 5}
    catalog = catalog_with((b"a", SOLD_OUT))
    first_serving, first_staged = catalog.unavailable_indices(serving), catalog.unavailable_indices(staged)
    assert VOCABULARIES_CACHED >= 2
    assert catalog.unavailable_indices(serving) is first_serving
    assert catalog.unavailable_indices(staged) is first_staged
    assert first_staged.tolist() == [5]


class Vocabulary(dict):
    """A dict that can be referenced weakly."""


def test_a_vocabulary_no_longer_used_is_not_kept_alive():
    catalog = catalog_with((b"a", SOLD_OUT))
    old = Vocabulary(a=0)
    catalog.unavailable_indices(old)
    gone = weakref.ref(old)
    del old
    assert gone() is not None  # still cached
    newer = [Vocabulary(a=n) for n in range(VOCABULARIES_CACHED)]
    for vocabulary in newer:
        catalog.unavailable_indices(vocabulary)
    gc.collect()
    assert gone() is None

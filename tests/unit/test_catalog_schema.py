"""The item-catalog contract: entries round-trip, hostile values and keys end as an InvalidMessage
with a stable reason and a detail that names the problem, and the JSON Schema agrees with the
decoder."""

import json

import jsonschema
import pytest

from schemas.catalog import MAX_ATTRIBUTES, MAX_CATALOG_ENTRY_BYTES, CatalogEntry, catalog_record, item_id_of
from schemas.errors import InvalidMessage
from schemas.json_schemas import load_schema


def rejection(parse, raw) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        parse(raw)
    return caught.value


def entry_bytes(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_an_entry_round_trips_through_bytes():
    entry = CatalogEntry(False, {"brand": "acme", "price": 12.5, "stock": 0, "new": True})
    assert CatalogEntry.from_bytes(entry.to_bytes()) == entry


def test_attributes_are_optional_and_null_means_none():
    assert CatalogEntry.from_bytes(b'{"available": true}') == CatalogEntry(True)
    assert CatalogEntry.from_bytes(b'{"available": true, "attributes": null}') == CatalogEntry(True)
    assert CatalogEntry(True).to_bytes() == b'{"available":true}'


def test_unknown_fields_are_ignored_so_producers_can_add_some():
    assert CatalogEntry.from_bytes(b'{"available": false, "warehouse": "north"}') == CatalogEntry(False)


# (raw value, reason, what the detail must say)
HOSTILE_ENTRIES = [
    pytest.param(b"{not json", "malformed_json", "malformed", id="not json"),
    pytest.param(b"", "malformed_json", "truncated", id="empty bytes"),
    pytest.param(b"\xff\xfe{}", "malformed_json", "byte 0", id="not utf-8"),
    pytest.param(b"[true]", "malformed_json", "expected a JSON object", id="an array"),
    pytest.param(b"null", "malformed_json", "expected a JSON object", id="null document"),
    pytest.param(b"true", "malformed_json", "expected a JSON object", id="a bare boolean"),
    pytest.param(b"{}", "missing_field", "'available' is required", id="no available"),
    pytest.param(entry_bytes(available=None), "missing_field", "'available'", id="available null"),
    pytest.param(entry_bytes(available="false"), "wrong_type", "expected `bool`, got `str`", id="a string"),
    pytest.param(entry_bytes(available=0), "wrong_type", "expected `bool`, got `int`", id="an integer"),
    pytest.param(entry_bytes(available=True, attributes=["a"]), "wrong_type", "'attributes'", id="a list"),
    pytest.param(
        entry_bytes(available=True, attributes={"a": {"b": 1}}),
        "wrong_type",
        "'attributes[...]'",
        id="a nested object",
    ),
    pytest.param(
        entry_bytes(available=True, attributes={"a": [1]}), "wrong_type", "got `array`", id="an array value"
    ),
    pytest.param(
        entry_bytes(available=True, attributes={"": 1}),
        "wrong_type",
        "'attributes[key]': expected `str` of length >= 1",
        id="an empty name",
    ),
    pytest.param(
        entry_bytes(available=True, attributes={"n" * 129: 1}),
        "wrong_type",
        "'attributes[key]': expected `str` of length <= 128",
        id="a long name",
    ),
    pytest.param(
        entry_bytes(available=True, attributes={"n": "x" * 1025}),
        "wrong_type",
        "length <= 1024",
        id="a long text",
    ),
    pytest.param(
        entry_bytes(available=True, attributes={f"a{n}": n for n in range(MAX_ATTRIBUTES + 1)}),
        "wrong_type",
        f"length <= {MAX_ATTRIBUTES}",
        id="too many attributes",
    ),
    pytest.param(
        b'{"available": true, "attributes": {"price": 1e400}}', "wrong_type", "out of range", id="huge number"
    ),
    pytest.param(b'{"available": true, "attributes": {"p": NaN}}', "wrong_type", "NaN", id="NaN"),
    pytest.param(
        entry_bytes(available=True, attributes={f"a{n}": "y" * 1000 for n in range(MAX_ATTRIBUTES)}),
        "oversized",
        f"the limit is {MAX_CATALOG_ENTRY_BYTES}",
        id="huge attributes",
    ),
    pytest.param(b"[" * 100_000, "oversized", "bytes", id="deep nesting beyond the size limit"),
    pytest.param(b"[" * 10_000, "malformed_json", "expected a JSON object", id="deep nesting"),
]


@pytest.mark.parametrize(("raw", "reason", "detail"), HOSTILE_ENTRIES)
def test_a_hostile_entry_is_refused_with_a_reason_and_a_clear_detail(raw, reason, detail):
    refused = rejection(CatalogEntry.from_bytes, raw)
    assert (refused.reason, detail.lower() in refused.detail.lower()) == (reason, True), refused


def test_a_key_is_the_item_id_in_utf8():
    assert item_id_of(b"214536502") == "214536502"
    assert item_id_of("caf\u00e9-7".encode()) == "caf\u00e9-7"


@pytest.mark.parametrize(
    ("key", "reason", "detail"),
    [
        pytest.param(None, "missing_key", "item id as its key", id="null key"),
        pytest.param(b"", "bad_key", "has 0", id="empty"),
        pytest.param(b"\xff\xfe", "bad_key", "not UTF-8", id="not utf-8"),
        pytest.param(b"\xed\xa0\x80", "bad_key", "not UTF-8", id="an encoded lone surrogate"),
        pytest.param(b"x" * 257, "bad_key", "1 to 256 characters", id="too long"),
    ],
)
def test_a_key_that_names_no_item_is_refused(key, reason, detail):
    refused = rejection(item_id_of, key)
    assert refused.reason == reason and detail in refused.detail, refused


def test_a_record_is_built_as_the_workers_read_it():
    key, value = catalog_record("214536502", CatalogEntry(False, {"brand": "acme"}))
    assert item_id_of(key) == "214536502"
    assert CatalogEntry.from_bytes(value) == CatalogEntry(False, {"brand": "acme"})
    assert catalog_record("214536502", None) == (b"214536502", None)


def test_a_record_that_the_workers_would_refuse_is_not_built():
    assert rejection(lambda e: catalog_record("i", e), CatalogEntry(True, {"n": "x" * 2000})).reason == (
        "wrong_type"
    )
    assert rejection(lambda i: catalog_record(i, None), "\ud800").reason == "bad_key"
    assert rejection(lambda i: catalog_record(i, None), "").reason == "bad_key"


def test_the_json_schema_accepts_what_the_decoder_accepts_and_refuses_the_rest():
    validator = jsonschema.Draft202012Validator(load_schema("catalog-entry"))
    for good in [
        {"available": False},
        {"available": True, "attributes": None},
        {"available": False, "attributes": {"brand": "acme", "price": 12.5, "stock": 3, "new": True}},
    ]:
        validator.validate(good)
        CatalogEntry.from_bytes(json.dumps(good).encode())
    for bad in [{}, {"available": "false"}, {"available": True, "attributes": {"a": [1]}}]:
        assert not validator.is_valid(bad)
        rejection(CatalogEntry.from_bytes, json.dumps(bad).encode())

"""The query API's requests (schemas.api): what is accepted, and the reason and field named when not."""

import json

import jsonschema
import pytest
from msgspec import UNSET

from schemas.api import (
    MAX_EXCLUDED,
    MAX_K,
    MAX_SESSION_ITEMS,
    excluded_items,
    session_event_types,
    session_items,
    session_request,
    user_query,
)
from schemas.errors import InvalidMessage
from schemas.events import EventType
from schemas.json_schemas import load_schema


def refusal(call, *args) -> tuple[str, str]:
    with pytest.raises(InvalidMessage) as caught:
        call(*args)
    return caught.value.reason, caught.value.detail


def test_a_user_query_reads_k_as_an_integer_and_exclusions_repeated_or_comma_separated():
    query = user_query("u-42", {"k": ["5"], "exclude": ["a,b", "c", ""]})
    assert (query.user_id, query.k, excluded_items(query)) == ("u-42", 5, ["a", "b", "c"])


def test_a_user_query_without_parameters_leaves_k_to_the_worker():
    query = user_query("u-42", {})
    assert (query.k, excluded_items(query)) == (UNSET, [])


@pytest.mark.parametrize(
    ("parameters", "reason", "field"),
    [
        ({"k": ["0"]}, "wrong_type", "'k'"),
        ({"k": [str(MAX_K + 1)]}, "wrong_type", "'k'"),
        ({"k": ["twenty"]}, "wrong_type", "'k'"),
        ({"k": ["2.5"]}, "wrong_type", "'k'"),
        ({"k": ["5", "6"]}, "wrong_type", "'k'"),
        ({"K": ["5"]}, "unknown_field", "'K'"),
        ({"exclude": [",".join(str(n) for n in range(MAX_EXCLUDED + 1))]}, "too_many_items", "'exclude'"),
        ({"exclude": ["x" * 257]}, "wrong_type", "'exclude[0]'"),
    ],
)
def test_a_bad_query_parameter_is_refused_naming_it(parameters, reason, field):
    got_reason, detail = refusal(user_query, "u-42", parameters)
    assert got_reason == reason
    assert detail.startswith(field)


@pytest.mark.parametrize("user_id", ["", "u" * 257])
def test_a_user_id_follows_the_rules_of_events_user_ids(user_id):
    assert refusal(user_query, user_id, {})[0] == "wrong_type"
    user_query("u" * 256, {})  # the longest an event's user id may be


def test_a_session_takes_items_as_strings_or_integers_and_event_types_as_words_or_indices():
    request = session_request(b'{"items": ["a", 214536502, "c"], "event_types": ["cart", 1, 0], "k": 3}')
    assert session_items(request) == ["a", "214536502", "c"]
    assert session_event_types(request) == [EventType.CART, EventType.BUY, EventType.CLICK]
    assert request.k == 3


def test_a_session_without_event_types_is_all_clicks_and_may_be_empty():
    assert session_event_types(session_request(b'{"items": ["a", "b"]}')) == [EventType.CLICK] * 2
    assert session_items(session_request(b'{"items": []}')) == []


@pytest.mark.parametrize(
    ("body", "reason", "detail_start"),
    [
        (b'{"items": ["a"', "malformed_json", ""),
        (b'["a"]', "malformed_json", "expected a JSON object"),
        (b"{}", "missing_field", "'items'"),
        (b'{"items": "a"}', "wrong_type", "'items'"),
        (b'{"items": [null]}', "missing_field", "'items[0]'"),
        (b'{"items": ["a"], "k": 0}', "wrong_type", "'k'"),
        (b'{"items": ["a"], "k": "5"}', "wrong_type", "'k'"),
        (b'{"items": ["a"], "event_types": ["view"]}', "wrong_type", "'event_types[0]'"),
        (b'{"items": ["a", "b"], "event_types": ["click"]}', "wrong_type", "'event_types'"),
        (b'{"items": ["a"], "exclusions": ["b"]}', "unknown_field", "'exclusions'"),
        (json.dumps({"items": ["a"] * (MAX_SESSION_ITEMS + 1)}).encode(), "too_many_items", "'items'"),
        (
            json.dumps({"items": [], "exclude": ["a"] * (MAX_EXCLUDED + 1)}).encode(),
            "too_many_items",
            "'exclude'",
        ),
        (b'{"items": ["' + b"a" * (1 << 20) + b'"]}', "oversized", "message is"),
    ],
)
def test_a_bad_session_body_is_refused_with_the_reason_and_the_field(body, reason, detail_start):
    got_reason, detail = refusal(session_request, body)
    assert got_reason == reason
    assert detail.startswith(detail_start)


def test_the_published_session_schema_refuses_what_the_worker_refuses():
    validator = jsonschema.Draft202012Validator(load_schema("api-session-request"))
    assert validator.is_valid({"items": ["a", 1], "event_types": ["click", 2], "k": 20, "exclude": ["1"]})
    for refused in ({"items": ["a"], "K": 3}, {"items": ["a"], "k": 0}, {"items": ["a"] * 1001}, {}):
        assert not validator.is_valid(refused)
        with pytest.raises(InvalidMessage):
            session_request(json.dumps(refused).encode())

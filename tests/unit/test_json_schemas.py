"""The JSON Schema files under schemas/json/ are the ones the message Structs generate, and still
accept the README's example messages."""

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest

from schemas.api import ApiRecommendations, session_request
from schemas.catalog import CatalogEntry
from schemas.events import Event
from schemas.json_schemas import PUBLISHED, generated_schema, load_schema, schema_text
from schemas.recommendations import Recommendation

SCHEMA_FOLDER = Path(__file__).resolve().parents[2] / "schemas" / "json"
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example(label: str) -> dict:
    """The JSON block that follows the line ``<label>:`` in the README."""
    after = README.read_text().split(f"\n{label}:\n```json\n", 1)[1]
    return json.loads(after.split("\n```", 1)[0])


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_committed_schema_is_the_generated_one(name):
    committed = (SCHEMA_FOLDER / f"{name}.schema.json").read_text()
    assert committed == schema_text(name), f"regenerate with: python -m schemas.json_schemas ({name})"
    assert load_schema(name) == generated_schema(name)


def test_every_committed_schema_file_is_a_published_one():
    assert sorted(path.name for path in SCHEMA_FOLDER.iterdir()) == sorted(
        f"{n}.schema.json" for n in PUBLISHED
    )


@pytest.mark.parametrize("name", PUBLISHED)
def test_each_schema_is_a_valid_draft_2020_12_schema(name):
    jsonschema.Draft202012Validator.check_schema(load_schema(name))


def test_the_readme_event_example_matches_the_schema_and_parses():
    example = readme_example("Event")
    jsonschema.validate(example, load_schema("event"))
    Event.from_bytes(json.dumps(example).encode(), "click", now=example["event_time"])


def test_the_readme_recommendation_example_matches_the_schema_and_parses():
    example = readme_example("Recommendation")
    jsonschema.validate(example, load_schema("recommendation"))
    Recommendation.from_bytes(json.dumps(example).encode())


def test_the_event_schema_accepts_integer_ids_and_says_how_they_are_read():
    event = {
        "event_id": 1,
        "user_id": 42,
        "item_id": 214536502,
        "event_time": 1396860669.277,
        "session_id": 7,
    }
    jsonschema.validate(event, load_schema("event"))
    properties = load_schema("event")["$defs"]["EventMessage"]["properties"]
    assert "decimal string" in properties["item_id"]["description"]
    assert not jsonschema.Draft202012Validator(load_schema("event")).is_valid({**event, "item_id": -1})


def test_the_readme_catalog_entry_example_matches_the_schema_and_parses():
    example = readme_example("Catalog entry")
    jsonschema.validate(example, load_schema("catalog-entry"))
    assert CatalogEntry.from_bytes(json.dumps(example).encode()).available is False


def test_the_readme_query_api_examples_match_their_schemas_and_parse():
    session = readme_example("Session request")
    jsonschema.validate(session, load_schema("api-session-request"))
    session_request(json.dumps(session).encode())
    answer = readme_example("Query answer")
    jsonschema.validate(answer, load_schema("api-recommendations"))
    msgspec.json.decode(json.dumps(answer).encode(), type=ApiRecommendations)

"""The JSON Schema files shipped for producers and consumers in other languages, generated from the
message Structs (``msgspec.json.schema``) and committed under ``schemas/json/``; a unit test checks
that the committed files are what the Structs generate.

Regenerate them after changing a message: ``python -m schemas.json_schemas``.
"""

from functools import cache
from importlib import resources
from pathlib import Path

import msgspec

from schemas.api import ApiError, ApiRecommendations, SessionRequest
from schemas.catalog import CatalogEntry
from schemas.dead_letters import DeadLetterMessage
from schemas.events import EventMessage
from schemas.model_updates import ModelAnnouncement
from schemas.recommendations import Recommendation

# file name -> (message type, title)
PUBLISHED: dict[str, tuple[type[msgspec.Struct], str]] = {
    "event": (EventMessage, "Click or buy event"),
    "recommendation": (Recommendation, "Recommendation list"),
    "dead-letter": (DeadLetterMessage, "Dead letter"),
    "model-update": (ModelAnnouncement, "Model announcement"),
    "catalog-entry": (CatalogEntry, "Item catalog entry"),
    "api-session-request": (SessionRequest, "Query API: POST /recommendations body"),
    "api-recommendations": (ApiRecommendations, "Query API: recommendations answer"),
    "api-error": (ApiError, "Query API: error answer"),
}


@cache
def load_schema(name: str) -> dict:
    """The committed schema ``name``: a key of :data:`PUBLISHED`."""
    committed = resources.files("schemas").joinpath("json", f"{name}.schema.json")
    return msgspec.json.decode(committed.read_bytes())


def generated_schema(name: str) -> dict:
    message_type, title = PUBLISHED[name]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://streamrec.dev/schemas/{name}.schema.json",
        "title": title,
        **msgspec.json.schema(message_type),
    }


def schema_text(name: str) -> str:
    """The text of the file for schema ``name``, as committed."""
    return msgspec.json.format(msgspec.json.encode(generated_schema(name)), indent=2).decode() + "\n"


def write_schemas(folder: Path) -> None:
    for name in PUBLISHED:
        (folder / f"{name}.schema.json").write_text(schema_text(name))


if __name__ == "__main__":
    write_schemas(Path(__file__).resolve().parent / "json")

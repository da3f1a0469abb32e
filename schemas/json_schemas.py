"""The JSON Schema files shipped for producers and consumers in other languages."""

import json
from functools import cache
from importlib import resources


@cache
def load_schema(name: str) -> dict:
    """``name`` is ``event``, ``recommendation`` or ``dead-letter``."""
    return json.loads(resources.files("schemas").joinpath("json", f"{name}.schema.json").read_text())

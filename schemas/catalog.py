"""The item catalog: what shops publish on the compacted ``item-catalog`` topic to say which items
may be recommended.

Key: the item id, UTF-8 (the same string as the events' ``item_id``). Value (JSON object)::

    {"available": false, "attributes": {"brand": "acme", "price": 12.5}}

``available`` is required; ``attributes`` is optional (absent or null: none), a flat object of
strings, numbers and booleans. A tombstone (a null value) deletes the item: the catalog no longer
knows it, and an item the catalog does not know is available. Compaction keeps each item's latest
record, so the topic always holds the whole catalog.
"""

from typing import Annotated

import msgspec
from msgspec import Meta

from schemas.codec import decode, encode
from schemas.errors import InvalidMessage
from schemas.fields import Name

MAX_CATALOG_ENTRY_BYTES = 16 * 1024
MAX_ATTRIBUTES = 64

AttributeName = Annotated[str, Meta(min_length=1, max_length=128)]
AttributeValue = Annotated[str, Meta(max_length=1024)] | int | float | bool
Attributes = Annotated[dict[AttributeName, AttributeValue], Meta(max_length=MAX_ATTRIBUTES)]


class CatalogEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """The value of a record on the item-catalog topic, keyed by the item id (UTF-8). A null value
    (tombstone) deletes the item, which makes it available again. attributes: optional, flat."""

    available: Annotated[bool, Meta(description="false: never recommend this item")]
    attributes: Attributes | None = None

    def to_bytes(self) -> bytes:
        return encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> "CatalogEntry":
        """Raises :class:`InvalidMessage` whose ``reason`` is one of ``oversized``,
        ``malformed_json``, ``missing_field``, ``wrong_type``."""
        return decode(data, _DECODER, MAX_CATALOG_ENTRY_BYTES)


_DECODER = msgspec.json.Decoder(CatalogEntry)
_MAX_ITEM_ID_CHARS = Name.__metadata__[0].max_length  # as an event's item_id


def catalog_record(item_id: str, entry: CatalogEntry | None) -> tuple[bytes, bytes | None]:
    """The key and value that publish ``entry`` for ``item_id`` (None: the tombstone that deletes it),
    checked as the workers will read them; raises :class:`InvalidMessage`."""
    try:
        key = item_id.encode()
    except UnicodeEncodeError:
        raise InvalidMessage("bad_key", f"item id {item_id!r} is not valid Unicode") from None
    item_id_of(key)
    if entry is None:
        return key, None
    value = entry.to_bytes()
    CatalogEntry.from_bytes(value)  # constraints are checked when decoding, not when building a Struct
    return key, value


def item_id_of(key: bytes | None) -> str:
    """The item id a record's key names; raises :class:`InvalidMessage` (``missing_key`` or
    ``bad_key``) for a key that names none."""
    if key is None:
        raise InvalidMessage("missing_key", "a catalog record needs the item id as its key")
    try:
        item_id = key.decode()
    except UnicodeDecodeError as exc:
        raise InvalidMessage("bad_key", f"the key is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not 1 <= len(item_id) <= _MAX_ITEM_ID_CHARS:
        detail = f"an item id has 1 to {_MAX_ITEM_ID_CHARS} characters, the key has {len(item_id)}"
        raise InvalidMessage("bad_key", detail)
    return item_id

"""Catalog files, read by ``streamrec catalog load``: item ids with their availability and, optionally,
attributes. The layout is recognised by content:

* JSON lines, one object per line:
  ``{"item_id": "214536502", "available": false, "attributes": {"brand": "acme"}}``
  (``item_id`` a string or a non-negative integer, ``attributes`` optional);
* CSV, or TSV when the header line holds a tab: a header naming the ``item_id`` and ``available``
  columns; ``available`` is true/false, yes/no or 1/0; every other column is an attribute (empty
  cells are left out).

An attribute value written as a JSON number, true or false is published as that, any other as text.
Each file is read whole and checked before anything is published.
"""

import csv
import io
from pathlib import Path

import msgspec

from schemas.catalog import MAX_CATALOG_ENTRY_BYTES, Attributes, AttributeValue, CatalogEntry, catalog_record
from schemas.codec import decode
from schemas.errors import InvalidMessage
from schemas.fields import ExternalId

CatalogRecord = tuple[bytes, bytes | None]  # key (the item id) and value (None: a tombstone)

AVAILABILITY_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
ID_COLUMN, AVAILABLE_COLUMN = "item_id", "available"


class CatalogFileError(ValueError):
    """A catalog file that cannot be published; the message names the file, the line and the problem."""


class CatalogLine(msgspec.Struct, frozen=True):
    """One line of a JSON-lines catalog file."""

    item_id: ExternalId
    available: bool
    attributes: Attributes | None = None


_LINE_DECODER = msgspec.json.Decoder(CatalogLine)


def attribute_value(text: str) -> AttributeValue:
    """``"12.5"`` -> 12.5, ``"true"`` -> True, ``"acme"`` -> ``"acme"``: a JSON number or boolean as
    itself, anything else as the text."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    return value if isinstance(value, bool | int | float) else text


def read_catalog_file(path: Path) -> list[CatalogRecord]:
    """The records that publish ``path``'s items, in file order; raises :class:`CatalogFileError`."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet exports start with a BOM
    except UnicodeDecodeError as exc:
        raise CatalogFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CatalogFileError(f"{path}: {exc.strerror}") from None
    start = text.lstrip()[:1]
    if start == "{":
        records = _json_lines(path, text)
    elif start:
        records = _table(path, text)
    else:
        records = []
    if not records:
        raise CatalogFileError(f"{path}: no items")
    return records


def _json_lines(path: Path, text: str) -> list[CatalogRecord]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = decode(line.encode(), _LINE_DECODER, MAX_CATALOG_ENTRY_BYTES)
            entry = CatalogEntry(parsed.available, parsed.attributes)
            records.append(catalog_record(str(parsed.item_id), entry))
        except InvalidMessage as exc:
            raise CatalogFileError(f"{path} line {number}: {exc.detail}") from None
    return records


def _table(path: Path, text: str) -> list[CatalogRecord]:
    header_line = text.lstrip().partition("\n")[0]
    rows = csv.reader(io.StringIO(text), delimiter="\t" if "\t" in header_line else ",")
    header = [name.strip() for name in next(row for row in rows if row)]
    missing = [name for name in (ID_COLUMN, AVAILABLE_COLUMN) if name not in header]
    if missing:
        raise CatalogFileError(
            f"{path}: the header line has no {' and no '.join(missing)} column "
            f"(it has: {', '.join(header)}); expected a CSV or TSV header with {ID_COLUMN} and "
            f"{AVAILABLE_COLUMN}, or JSON lines"
        )
    records = []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {rows.line_num}"
        if len(row) != len(header):
            raise CatalogFileError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        word = cells.pop(AVAILABLE_COLUMN)
        available = AVAILABILITY_WORDS.get(word.lower())
        if available is None:
            words = "/".join(AVAILABILITY_WORDS)
            raise CatalogFileError(f"{where}: {AVAILABLE_COLUMN} must be one of {words}, got {word!r}")
        item_id = cells.pop(ID_COLUMN)
        attributes = {name: attribute_value(value) for name, value in cells.items() if value}
        try:
            records.append(catalog_record(item_id, CatalogEntry(available, attributes or None)))
        except InvalidMessage as exc:
            raise CatalogFileError(f"{where}: {exc.detail}") from None
    return records

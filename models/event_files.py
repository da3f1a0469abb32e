"""Event files as users have them: session TSVs, gzip-compressed or not, and event exports with other
column names and event-type words, read through a column mapping.

Known layouts are recognised by their header: the session TSV (``SessionId ItemId Time`` and an
optional ``EventType``, tab-separated) and the REES46 export (``user_session``, ``product_id``,
``event_time`` as a date, ``event_type`` ``view``/``cart``/``purchase``, ``user_id``). Anything else
needs a :class:`ColumnMapping` (``--columns`` on the command line). Compression is recognised by the
file's first bytes, not its name. Problems are reported as :class:`DataError` naming the file, the line
and what was expected.
"""

import argparse
import csv
import gzip
import hashlib
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from schemas.events import EventType

GZIP_MAGIC = b"\x1f\x8b"

# Event-type words of common exports (REES46: view/cart/purchase; RetailRocket: view/addtocart/transaction).
EVENT_WORDS: dict[str, EventType] = {
    "click": EventType.CLICK,
    "view": EventType.CLICK,
    "cart": EventType.CART,
    "addtocart": EventType.CART,
    "buy": EventType.BUY,
    "purchase": EventType.BUY,
    "transaction": EventType.BUY,
}


class DataError(ValueError):
    """The event file is malformed."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns hold what. ``event_type`` and ``user`` are optional columns (None: absent).

    A row with an empty session belongs to its user's session when there is a user column.
    """

    session: str = "SessionId"
    item: str = "ItemId"
    time: str = "Time"
    event_type: str | None = "EventType"
    user: str | None = None

    def required(self) -> tuple[str, ...]:
        return (self.session, self.item, self.time)

    def describe(self) -> str:
        optional = [c for c in (self.event_type, self.user) if c]
        return ", ".join(self.required()) + (f" (optional: {', '.join(optional)})" if optional else "")


SESSION_TSV = ColumnMapping()
REES46 = ColumnMapping(
    session="user_session", item="product_id", time="event_time", event_type="event_type", user="user_id"
)
KNOWN_LAYOUTS: dict[str, ColumnMapping] = {"session TSV": SESSION_TSV, "REES46 export": REES46}


@dataclass(frozen=True)
class InputFormat:
    """How to read a file: its columns (None: recognised from the header) and its event-type words
    (compared in lower case)."""

    columns: ColumnMapping | None = None
    event_words: Mapping[str, EventType] = field(default_factory=lambda: dict(EVENT_WORDS))


MAPPING_KEYS = {"session": "session", "item": "item", "time": "time", "type": "event_type", "user": "user"}


def add_input_format_arguments(parser: argparse.ArgumentParser) -> None:
    """``--columns`` and ``--event-words``, for every command that reads event files."""
    parser.add_argument(
        "--columns",
        metavar="KEY=COL,...",
        help="columns of an export in another layout: session=COL,item=COL,time=COL[,type=COL][,user=COL]"
        " (time: unix seconds or an ISO date); default: recognised from the header",
    )
    parser.add_argument(
        "--event-words",
        metavar="WORD=TYPE,...",
        help="more event-type words, each mapped to click, cart or buy (known: "
        + ", ".join(EVENT_WORDS)
        + ")",
    )


def input_format_from_args(args: argparse.Namespace) -> InputFormat:
    return parse_input_format(args.columns, args.event_words)


@dataclass(frozen=True)
class EventTable:
    """A file's rows in file order. ``users`` is None without a user column."""

    sessions: list[str]
    items: list[str]
    times: list[float]
    event_types: list[EventType]
    users: list[str] | None
    fingerprint: str  # sha256 of the (decompressed) content

    def __len__(self) -> int:
        return len(self.items)

    def session_keys(self) -> list[str]:
        """Each row's session; an empty session id falls back to the row's user."""
        if self.users is None:
            return self.sessions
        return [s or u for s, u in zip(self.sessions, self.users, strict=True)]


def read_event_table(path: str | Path, input_format: InputFormat | None = None) -> EventTable:
    path = Path(path)
    return parse_event_table(path.read_bytes(), input_format, source=str(path))


def parse_event_table(
    data: bytes, input_format: InputFormat | None = None, source: str = "input"
) -> EventTable:
    input_format = input_format or InputFormat()
    text = _decode(_decompress(data, source), source)
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{source}: empty file; expected a header line naming {SESSION_TSV.describe()}")
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else 0)
    header = [name.strip() for name in next(rows)]
    columns = input_format.columns or _recognise(header, source)
    missing = [c for c in columns.required() if c not in header]
    if missing:
        raise DataError(f"{source}: header {header} lacks column(s) {missing}; expected {columns.describe()}")
    fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _read_rows(rows, header, columns, input_format.event_words, source, fingerprint)


def parse_input_format(columns: str | None = None, event_words: str | None = None) -> InputFormat:
    """``columns`` as ``"session=user_session,item=product_id,time=event_time,type=event_type"`` (None:
    recognise the header); ``event_words`` as ``"view=click,purchase=buy"``, added to the known words."""
    words = dict(EVENT_WORDS)
    for word, kind in _pairs(event_words, "--event-words"):
        if kind.lower() not in ("click", "cart", "buy"):
            raise ValueError(f"--event-words: {word!r} must map to click, cart or buy, not {kind!r}")
        words[word.lower()] = EventType[kind.upper()]
    if columns is None:
        return InputFormat(None, words)
    given = {}
    for key, column in _pairs(columns, "--columns"):
        if key not in MAPPING_KEYS:
            raise ValueError(f"--columns: unknown key {key!r}; use {', '.join(MAPPING_KEYS)}")
        given[MAPPING_KEYS[key]] = column
    lacking = [k for k in ("session", "item", "time") if k not in given]
    if lacking:
        raise ValueError(f"--columns must name the {', '.join(lacking)} column(s)")
    return InputFormat(ColumnMapping(**{"event_type": None, **given}), words)


def _pairs(text: str | None, what: str) -> list[tuple[str, str]]:
    if not text:
        return []
    pairs = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what}: expected KEY=VALUE pairs separated by commas, got {part!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _decompress(data: bytes, source: str) -> bytes:
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{source}: damaged gzip file ({e})") from None


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{source}: not a UTF-8 text file (byte {data[e.start]:#04x} at offset {e.start}); expected a"
            f" tab-separated file with {SESSION_TSV.describe()} or a CSV export, optionally gzip-compressed"
        ) from None


def _recognise(header: list[str], source: str) -> ColumnMapping:
    """The known layout whose columns the header has; else an error about the closest one."""
    closest_name, closest = max(
        KNOWN_LAYOUTS.items(), key=lambda layout: sum(c in header for c in layout[1].required())
    )
    missing = [c for c in closest.required() if c not in header]
    if not missing:
        return closest
    if len(missing) < len(closest.required()):
        problem = f"lacks column(s) {missing} of a {closest_name} ({closest.describe()})"
    else:
        known = "; ".join(f"{name}: {layout.describe()}" for name, layout in KNOWN_LAYOUTS.items())
        problem = f"matches no known layout ({known})"
    raise DataError(
        f"{source}: header {header[:12]} {problem}; name the columns of another layout with"
        " --columns session=COL,item=COL,time=COL[,type=COL][,user=COL]"
    )


def _read_rows(
    rows: Iterator[list[str]],
    header: list[str],
    columns: ColumnMapping,
    words: Mapping[str, EventType],
    source: str,
    fingerprint: str,
) -> EventTable:
    s_col, i_col, t_col = (header.index(c) for c in columns.required())
    e_col = header.index(columns.event_type) if columns.event_type in header else None
    u_col = header.index(columns.user) if columns.user in header else None
    sessions, items, times, types, users = [], [], [], [], []
    for line_no, fields in enumerate(rows, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            raise DataError(f"{source}: line {line_no}: {len(fields)} fields, header has {len(header)}")
        sessions.append(fields[s_col])
        items.append(fields[i_col])
        times.append(_parse_time(fields[t_col], source, line_no))
        if e_col is None:
            types.append(EventType.CLICK)
        else:
            types.append(_event_type(fields[e_col], words, columns.event_type, source, line_no))
        if u_col is not None:
            users.append(fields[u_col])
    return EventTable(sessions, items, times, types, users if u_col is not None else None, fingerprint)


def _event_type(
    word: str, words: Mapping[str, EventType], column: str, source: str, line_no: int
) -> EventType:
    event_type = words.get(word.strip().lower())
    if event_type is None:
        raise DataError(
            f"{source}: line {line_no}: {column} {word!r} is not one of {sorted(words)}"
            " (add words with --event-words WORD=click|cart|buy)"
        )
    return event_type


def _parse_time(text: str, source: str, line_no: int) -> float:
    """Unix seconds, or an ISO 8601 date (``2019-10-01 00:00:00 UTC``; no zone means UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.strip().removesuffix(" UTC"))
    except ValueError:
        raise DataError(
            f"{source}: line {line_no}: time {text!r} is neither unix seconds nor an ISO date"
        ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()

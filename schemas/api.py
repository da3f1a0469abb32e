"""The query API's contracts: what a worker's web port accepts and answers besides the stream.

``GET /users/{user_id}/recommendations?k=20&exclude=a,b`` -> :class:`ApiRecommendations` of the user's
stored state; the query is :class:`UserQuery` (``user_id`` from the path, ``exclude`` comma-separated
and/or repeated).
``POST /recommendations`` with a :class:`SessionRequest` body -> :class:`ApiRecommendations` of that
anonymous session, without touching any stored state::

    {"items": ["214536502", "214536500"], "event_types": ["click", "cart"], "k": 20, "exclude": ["214536500"]}

Any refusal is an :class:`ApiError` ``{"error": reason, "detail": ...}``; reasons are stable codes
(:data:`ApiErrorReason`). Requests are decoded by msgspec like every message (:mod:`schemas.codec`),
so a field's problem is ``missing_field``, ``wrong_type`` or ``unknown_field``, naming the field.
"""

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schemas.codec import decode
from schemas.errors import InvalidMessage
from schemas.events import EVENT_TYPES, EventType
from schemas.fields import ExternalId, Name
from schemas.reasons import FieldReasons, Problem, from_validation_error
from schemas.recommendations import RankedItem

# The bound of STREAMREC_TOP_K: longer lists are pages of a catalog, not recommendations.
MAX_K = 1000
# A session is re-encoded item by item (one model step each), so its length bounds the request's
# cost; a worker keeps at most STREAMREC_RECENT_ITEMS (default 200) of a user's items anyway.
MAX_SESSION_ITEMS = 1000
# Exclusions are a per-row mask over the catalog: cheap, but bounded like everything a client sends.
MAX_EXCLUDED = 1000
# 1,000 session items and 1,000 exclusions of 256-character ids fit; also aiohttp's default body limit.
MAX_BODY_BYTES = 1 << 20

ApiErrorReason = Literal[
    "unknown_route",  # 404: no such path
    "method_not_allowed",  # 405
    "oversized",  # 413: the body is over MAX_BODY_BYTES
    "malformed_json",  # 400: the body is not one JSON object
    "missing_field",  # 400
    "wrong_type",  # 400: a value of another type or outside its bounds (k, an id's length)
    "unknown_field",  # 400: a body field or query parameter the API does not define
    "too_many_items",  # 400: more session items or exclusions than allowed
    "not_ready",  # 503: the worker holds no assignment yet, or is recovering the user's state
    "not_owner",  # 503: a forwarded request reached a worker that does not hold the user (rebalancing)
    "owner_unreachable",  # 503: the worker holding the user did not answer the forwarded request
    "internal_error",  # 500: a fault of the worker, not of the request (logged there)
]

Basis = Literal["model", "popularity"]
EventTypeValue = Annotated[
    Literal["click", "buy", "cart", 0, 1, 2],
    Meta(description="click, buy or cart, or the model's index of it: 0 click, 1 buy, 2 cart"),
]
ListLength = Annotated[
    int, Meta(ge=1, le=MAX_K, description="items in the answer (default: STREAMREC_TOP_K)")
]
Excluded = Annotated[
    list[ExternalId], Meta(max_length=MAX_EXCLUDED, description="item ids never to recommend")
]

_LIMIT_REASONS: FieldReasons = {
    ("items", Problem.BAD_VALUE): "too_many_items",
    ("exclude", Problem.BAD_VALUE): "too_many_items",
}


class UserQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """GET /users/{user_id}/recommendations: the user id of the path and the query parameters."""

    user_id: Name
    k: ListLength | UnsetType = UNSET
    exclude: Excluded = msgspec.field(default_factory=list)


class SessionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The body of POST /recommendations: an anonymous session, oldest event first. Without
    event_types every event is a click; with them, one per item. No items: the popularity fallback."""

    items: Annotated[tuple[ExternalId, ...], Meta(max_length=MAX_SESSION_ITEMS, description="oldest first")]
    event_types: tuple[EventTypeValue, ...] | UnsetType = UNSET
    k: ListLength | UnsetType = UNSET
    exclude: Excluded = msgspec.field(default_factory=list)


class ApiRecommendations(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """The answer of both routes: items best first. basis says what ranked them: the model, or the
    popularity fallback (a user with no state, or no item the model knows). served_by is the worker
    that computed the answer (the owner of the user's state, also when another worker forwarded)."""

    user_id: Annotated[Name, Meta(description="absent for an anonymous session")] | None = None
    items: Annotated[tuple[RankedItem, ...], Meta(description="best first")]
    model_version: Name
    basis: Basis
    served_by: Annotated[str, Meta(description="URL of the worker that answered")]


class ApiError(msgspec.Struct, frozen=True):
    """A refused request: a stable reason code and what exactly was wrong."""

    error: ApiErrorReason
    detail: str


_SESSION_DECODER = msgspec.json.Decoder(SessionRequest)


def user_query(user_id: str, parameters: dict[str, list[str]]) -> UserQuery:
    """The GET request from its path's user id and query parameters (name -> values in order).
    ``exclude`` may be repeated and comma-separated; any other parameter given twice is refused.
    Raises :class:`InvalidMessage`."""
    fields: dict[str, object] = {"user_id": user_id}
    for name, values in parameters.items():
        if name == "exclude":
            fields[name] = [item for value in values for item in value.split(",") if item]
        else:
            fields[name] = values[0] if len(values) == 1 else values
    try:
        return msgspec.convert(fields, UserQuery, strict=False)  # not strict: "20" is the integer 20 here
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc, _LIMIT_REASONS) from None


def session_request(body: bytes) -> SessionRequest:
    """The POST body, validated. Raises :class:`InvalidMessage`."""
    request = decode(body, _SESSION_DECODER, MAX_BODY_BYTES, _LIMIT_REASONS)
    types = request.event_types
    if types is not UNSET and len(types) != len(request.items):
        detail = f"'event_types': {len(types)} values for {len(request.items)} items, one per item expected"
        raise InvalidMessage("wrong_type", detail)
    return request


def session_event_types(request: SessionRequest) -> list[int]:
    """The model's event-type index of each session item (all clicks if none were given)."""
    if request.event_types is UNSET:
        return [EventType.CLICK] * len(request.items)
    return [EVENT_TYPES[t] if isinstance(t, str) else EventType(t) for t in request.event_types]


def session_items(request: SessionRequest) -> list[str]:
    """The session's item ids as strings (an integer id is its decimal string, as in events)."""
    return [str(item) for item in request.items]


def excluded_items(request: UserQuery | SessionRequest) -> list[str]:
    return [str(item) for item in request.exclude]

"""What the query API sends back: a status, a JSON body and headers, whatever the web framework."""

from dataclasses import dataclass, field

import msgspec

from schemas.api import ApiError, ApiErrorReason
from schemas.errors import InvalidMessage

# How long a client should wait before asking again while a user's state is moving between workers.
# A rebalance with standby replicas takes a few seconds; a GET is cheap to repeat, so ask again soon.
RETRY_AFTER_S = 1

# The status each error reason is answered with.
STATUS_OF: dict[ApiErrorReason, int] = {
    "unknown_route": 404,
    "method_not_allowed": 405,
    "oversized": 413,
    "malformed_json": 400,
    "missing_field": 400,
    "wrong_type": 400,
    "unknown_field": 400,
    "too_many_items": 400,
    "not_ready": 503,
    "not_owner": 503,
    "owner_unreachable": 503,
    "internal_error": 500,
}

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(message: msgspec.Struct, status: int = 200) -> Reply:
    return Reply(status, _encode(message))


def error_reply(reason: ApiErrorReason, detail: str) -> Reply:
    status = STATUS_OF[reason]
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
    return Reply(status, _encode(ApiError(reason, detail)), headers)


def invalid_request(exc: InvalidMessage) -> Reply:
    """A request that failed its contract (:mod:`schemas.api`): always a 4xx."""
    return error_reply(exc.reason, exc.detail)  # type: ignore[arg-type]  # reasons of schemas.codec

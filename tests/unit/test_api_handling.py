"""The query API's request handling without a broker: who answers (owner, forward, refusal), what the
answer holds, and how every error is mapped to a status and a JSON body."""

import asyncio
import json
from types import SimpleNamespace
from typing import get_args

import msgspec
import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from schemas.api import ApiError, ApiErrorReason, ApiRecommendations
from schemas.events import Event
from streamer.worker.api import QueryApi, errors_as_json_and_timed
from streamer.worker.api_replies import STATUS_OF, Reply
from streamer.worker.engine import Answer
from streamer.worker.owners import StateOwners
from streamer.worker.records import InputRecord
from streamer.worker.sequencing import route
from streamer.worker.state import UserState

ME, PEER = "http://worker-a:6066", "http://worker-b:6066"


class FakeRecommender:
    version = "v1"

    def __init__(self) -> None:
        self.calls: list[tuple[list, int, list]] = []

    def recommend(self, states, k, exclude=None):
        self.calls.append((states, k, exclude))
        items = [("i1", 2.123457), ("i2", 1.5), ("i3", 0.25)][:k]
        return [Answer(items, self.version, "popularity" if s is None else "model") for s in states]

    def session_state(self, items, types):
        return UserState(np.zeros((1, 2), np.float32), self.version, list(items), list(types))


class FakeOwners:
    def __init__(self, owner: str | None = ME, recovered: bool = True) -> None:
        self.me = ME
        self._owner = owner
        self._recovered = recovered

    def partition(self, user_id: str) -> int:
        return 2

    def owner(self, partition: int) -> str | None:
        return self._owner

    def recovered(self) -> bool:
        return self._recovered


class Harness:
    def __init__(self, owners: FakeOwners | None = None, states: dict | None = None) -> None:
        self.recommender = FakeRecommender()
        self.states = states or {}
        self.reads: list[tuple[str, int]] = []
        self.forwards: list[tuple[str, str]] = []
        self.api = QueryApi(lambda: self.recommender, self.read, owners or FakeOwners(), self.forward, 20)

    def read(self, user: str, partition: int):
        self.reads.append((user, partition))
        return self.states.get(user)

    async def forward(self, owner: str, path_and_query: str) -> Reply:
        self.forwards.append((owner, path_and_query))
        return Reply(200, b'{"relayed": true}')

    def session(self, body: bytes) -> Reply:
        return asyncio.run(self.api.session_list(body))

    def get(self, user: str, parameters: dict | None = None, forwarded_by: str | None = None) -> Reply:
        path = f"/users/{user}/recommendations?k=2"
        return asyncio.run(self.api.user_list(user, parameters or {}, path, forwarded_by))


def answer(reply: Reply) -> ApiRecommendations:
    assert reply.status == 200, reply.body
    return msgspec.json.decode(reply.body, type=ApiRecommendations)


def error(reply: Reply) -> ApiError:
    return msgspec.json.decode(reply.body, type=ApiError)


def stored_state() -> UserState:
    return UserState(np.ones((1, 2), np.float32), "v1", ["i9"], [0])


def test_the_owner_answers_from_the_users_stored_state_with_version_basis_and_itself():
    state = stored_state()
    harness = Harness(states={"u-1": state})
    got = answer(harness.get("u-1", {"k": ["2"], "exclude": ["i7,i8"]}))
    assert harness.reads == [("u-1", 2)]
    assert harness.recommender.calls == [([state], 2, [["i7", "i8"]])]
    assert (got.user_id, got.model_version, got.basis, got.served_by) == ("u-1", "v1", "model", ME)
    assert [(item.item_id, item.score) for item in got.items] == [("i1", 2.123457), ("i2", 1.5)]
    assert not harness.forwards


def test_a_user_without_a_state_gets_the_popularity_basis():
    assert answer(Harness().get("nobody")).basis == "popularity"


def test_without_k_the_list_is_as_long_as_the_workers_lists():
    harness = Harness()
    answer(harness.get("u-1"))
    assert harness.recommender.calls[0][1] == 20


def test_a_request_for_a_user_another_worker_holds_is_forwarded_there_once_as_received():
    harness = Harness(FakeOwners(owner=PEER))
    reply = harness.get("u 1/x")
    assert harness.forwards == [(PEER, "/users/u 1/x/recommendations?k=2")]
    assert reply == Reply(200, b'{"relayed": true}')
    assert not harness.reads and not harness.recommender.calls


def test_a_forwarded_request_reaching_a_worker_that_no_longer_holds_the_user_is_refused_not_sent_on():
    harness = Harness(FakeOwners(owner=PEER))
    reply = harness.get("u-1", forwarded_by="http://worker-c:6066")
    assert (reply.status, error(reply).error, reply.headers) == (503, "not_owner", {"Retry-After": "1"})
    assert not harness.forwards


def test_a_forwarded_request_reaching_the_owner_is_answered():
    assert answer(Harness().get("u-1", forwarded_by=PEER)).served_by == ME


def test_while_nobody_holds_the_partition_or_it_is_recovering_the_answer_is_503_with_a_retry_hint():
    for owners in (FakeOwners(owner=None), FakeOwners(recovered=False)):
        harness = Harness(owners)
        reply = harness.get("u-1")
        assert (reply.status, error(reply).error, reply.headers) == (503, "not_ready", {"Retry-After": "1"})
        assert not harness.reads


def test_a_bad_query_is_refused_before_anything_is_read_or_forwarded():
    harness = Harness(FakeOwners(owner=PEER))
    reply = harness.get("u-1", {"k": ["0"]})
    assert (reply.status, error(reply).error) == (400, "wrong_type")
    assert "'k'" in error(reply).detail
    assert not harness.forwards and not harness.reads


def test_a_session_is_scored_from_its_items_without_reading_any_state():
    harness = Harness(FakeOwners(owner=None))  # no partition held: a session needs none
    body = b'{"items": ["i1", 7], "event_types": ["click", "buy"], "k": 1, "exclude": ["i5"]}'
    got = answer(harness.session(body))
    [(states, k, exclude)] = harness.recommender.calls
    assert (states[0].recent_items, states[0].recent_types, k, exclude) == (["i1", "7"], [0, 1], 1, [["i5"]])
    assert (got.user_id, got.basis, [item.item_id for item in got.items]) == (None, "model", ["i1"])
    assert "user_id" not in json.loads(harness.session(body).body)
    assert not harness.reads


def test_an_empty_session_is_answered_as_a_user_without_a_state():
    harness = Harness()
    assert answer(harness.session(b'{"items": []}')).basis == "popularity"
    assert harness.recommender.calls[0][0] == [None]


def test_a_malformed_session_body_is_a_400_naming_the_problem():
    reply = Harness().session(b'{"items": ["a"], "event_types": []}')
    assert (reply.status, error(reply).error) == (400, "wrong_type")
    assert "event_types" in error(reply).detail


def test_every_error_reason_has_a_status_and_only_worker_faults_are_5xx():
    assert set(STATUS_OF) == set(get_args(ApiErrorReason))
    server_side = {reason for reason, status in STATUS_OF.items() if status >= 500}
    assert server_side == {"not_ready", "not_owner", "owner_unreachable", "internal_error"}


async def _middleware_replies() -> dict[str, tuple[int, dict]]:
    async def fails(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def reads_body(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="read")

    app = web.Application(middlewares=[errors_as_json_and_timed], client_max_size=1024)
    app.router.add_get("/fails", fails)
    app.router.add_post("/recommendations", reads_body)
    replies = {}
    async with TestClient(TestServer(app)) as client:
        for name, method, path, body in [
            ("unknown route", "GET", "/users/u-1/recommendation", None),
            ("wrong method", "GET", "/recommendations", None),
            ("body too large", "POST", "/recommendations", b"x" * 2048),
            ("worker fault", "GET", "/fails", None),
        ]:
            response = await client.request(method, path, data=body)
            replies[name] = (response.status, json.loads(await response.read()))
    return replies


def test_unknown_routes_wrong_methods_big_bodies_and_faults_are_answered_in_the_error_format():
    replies = asyncio.run(_middleware_replies())
    assert {name: (status, body["error"]) for name, (status, body) in replies.items()} == {
        "unknown route": (404, "unknown_route"),
        "wrong method": (405, "method_not_allowed"),
        "body too large": (413, "oversized"),
        "worker fault": (500, "internal_error"),
    }
    assert replies["unknown route"][1]["detail"].startswith("GET /users/u-1/recommendation")


class FakeAssignor:
    def __init__(self, distribution: dict) -> None:
        self.distribution = distribution

    def table_metadata(self, topic: str) -> dict:
        return {
            url: {t: p for t, p in topics.items() if t == topic} for url, topics in self.distribution.items()
        }


def test_the_owner_of_a_state_partition_is_the_worker_the_assignment_gives_it_as_active():
    changelog = "app-user-state-changelog"
    app = SimpleNamespace(
        assignor=FakeAssignor({ME: {changelog: [0, 2], "other-topic": [1]}, PEER: {changelog: [1]}}),
        conf=SimpleNamespace(canonical_url=URL(ME)),
    )
    owners = StateOwners(app, changelog, partitions=4)
    assert [owners.owner(p) for p in range(4)] == [ME, PEER, ME, None]
    assert owners.me == ME


def test_a_users_state_is_looked_for_in_the_partition_its_events_are_sequenced_to():
    users = ["u-42", "ü-7", "214536502", "a/b c"]
    records = [
        (InputRecord("click", 0, n, None, Event(f"e{n}", user, "i1", 1.7e9).to_bytes()), None)
        for n, user in enumerate(users)
    ]
    sequenced = [forward[0] for forward in route(records, {"click": "click"}, 7, 1.7e9, 3600).forwards]
    owners = StateOwners(SimpleNamespace(), "changelog", partitions=7)
    assert [owners.partition(user) for user in users] == sequenced
    assert len(set(sequenced)) > 1  # the users are spread, so a wrong partition would show

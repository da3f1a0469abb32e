"""The query API against a real broker and two real workers: each user's list comes from the worker
holding the user's state, whichever worker is asked (the other forwards it); an anonymous session is
scored without creating state; bad requests get 4xx JSON errors from both workers."""

import json
import re
import secrets
from collections.abc import Iterator

import pytest

from models.artifact import load_artifact
from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.tools.worker_process import WorkerProcess
from tests.integration.conftest import StreamerSetup, new_streamer_setup
from tests.support.http import HttpReply, http
from tests.support.kafka_io import TopicReader, produce_events
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

USERS = [f"shopper-{n}" for n in range(12)]
EVENTS_PER_USER = 3


def url(worker: WorkerProcess, path: str) -> str:
    return f"http://127.0.0.1:{worker.env['STREAMREC_WEB_PORT']}{path}"


def get_list(worker: WorkerProcess, user: str, query: str = "", **headers: str) -> HttpReply:
    return http("GET", url(worker, f"/users/{user}/recommendations{query}"), headers=headers)


def post_session(worker: WorkerProcess, body: dict | bytes) -> HttpReply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http("POST", url(worker, "/recommendations"), data, {"Content-Type": "application/json"})


def forwarded_count(worker: WorkerProcess) -> float:
    metrics = http("GET", url(worker, "/metrics")).body.decode()
    return sum(
        float(n) for n in re.findall(r'^streamrec_api_forwarded_total\{status="200"\} (\S+)$', metrics, re.M)
    )


@pytest.fixture(scope="module")
def api_setup(kafka_bootstrap, trained_model, tmp_path_factory) -> StreamerSetup:
    """One deployment for the module's tests: starting two workers is the slow part."""
    name = f"streamrec-query-api-{secrets.token_hex(4)}"
    return new_streamer_setup(kafka_bootstrap, name, trained_model, tmp_path_factory.mktemp("query-api"))


@pytest.fixture(scope="module")
def two_workers(api_setup: StreamerSetup) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    # The address peers forward to: explicit, so the test does not depend on the host name resolving.
    workers = [api_setup.worker(name, STREAMREC_WEB_HOST="127.0.0.1").start() for name in ("a", "b")]
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers[0], workers[1]
    finally:
        for worker in workers:
            worker.stop()


def items_of(answer: dict | Recommendation) -> list[str]:
    """The item ids of an API answer or of a published list."""
    if isinstance(answer, Recommendation):
        return [item.item_id for item in answer.items]
    return [item["item_id"] for item in answer["items"]]


def every_user_answered_alike_by_both(workers: tuple[WorkerProcess, WorkerProcess]) -> dict[str, dict]:
    """Each user's answer, if both workers give the same 200 answer for every user and both workers
    own some of them (the group has settled); otherwise an empty dict."""
    answers = {}
    for user in USERS:
        replies = [get_list(worker, user) for worker in workers]
        if any(reply.status != 200 for reply in replies) or replies[0].json() != replies[1].json():
            return {}
        answers[user] = replies[0].json()
    owners = {answer["served_by"] for answer in answers.values()}
    return answers if owners == {f"http://127.0.0.1:{w.env['STREAMREC_WEB_PORT']}" for w in workers} else {}


def test_each_user_is_answered_by_the_owner_of_its_state_on_both_workers(
    kafka_bootstrap, api_setup, two_workers
):
    setup = api_setup
    artifact = load_artifact(setup.model_path)
    vocab = artifact.item_ids
    events = [
        Event(f"{user}-{n}", user, vocab[(5 * u + 11 * n) % len(vocab)], 1_700_000_000.0 + n)
        for n in range(EVENTS_PER_USER)
        for u, user in enumerate(USERS)
    ]
    lists = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    produce_events(kafka_bootstrap, setup.topics["click"], events)
    last_list = {}
    for message in lists.read(len(events)):
        published = Recommendation.from_bytes(message.value)
        last_list[published.user_id] = published  # in order per user: one partition per user

    answers: dict[str, dict] = {}

    def settled() -> bool:
        # A state is stored just after its list is out (once the changelog has it): until then a
        # worker answers from the state before.
        latest = every_user_answered_alike_by_both(two_workers)
        if any(items_of(answer) != items_of(last_list[user]) for user, answer in latest.items()):
            return False
        answers.update(latest)
        return bool(answers)

    wait_for(settled, timeout_s=120, what="both workers to hold state partitions and answer the last lists")
    for user, answer in answers.items():
        assert (answer["user_id"], answer["basis"], answer["model_version"]) == (
            user,
            "model",
            artifact.version,
        )
        # The stored state is the one the user's last list was ranked from: the same list.
        expected = last_list[user]
        assert [item["score"] for item in answer["items"]] == pytest.approx(
            [item.score for item in expected.items], abs=1e-5
        )
    assert sum(forwarded_count(worker) for worker in two_workers) >= len(USERS)  # half of the GETs, at least

    # Per-request k and exclusions, on the owner and through the forward alike.
    user = USERS[0]
    top = [item["item_id"] for item in answers[user]["items"]]
    for worker in two_workers:
        shorter = get_list(worker, user, f"?k=3&exclude={top[0]},{top[2]}").json()
        assert [item["item_id"] for item in shorter["items"]] == [top[1], *top[3:5]]

    # A forwarded request that lands on a worker not holding the user is refused, not forwarded again.
    owner_port = answers[user]["served_by"].rsplit(":", 1)[1]
    other = next(w for w in two_workers if w.env["STREAMREC_WEB_PORT"] != owner_port)
    refused = get_list(other, user, **{"X-Streamrec-Forwarded-By": "http://127.0.0.1:1"})
    assert (refused.status, refused.json()["error"], refused.headers.get("Retry-After")) == (
        503,
        "not_owner",
        "1",
    )

    # An unknown user: the popularity fallback, labelled as such, from either worker.
    for worker in two_workers:
        stranger = get_list(worker, "never-seen-before").json()
        assert (stranger["basis"], len(stranger["items"])) == ("popularity", setup.top_k)

    # An anonymous session of a user's items ranks as that user's stored state does, and stores nothing.
    changelog = TopicReader(kafka_bootstrap, setup.changelog_topic)
    changelog.read(len(USERS))
    session = [e.item_id for e in events if e.user_id == user]
    for worker in two_workers:
        anonymous = post_session(worker, {"items": session, "event_types": ["click"] * len(session)}).json()
        assert "user_id" not in anonymous and anonymous["basis"] == "model"
        assert [item["item_id"] for item in anonymous["items"]] == top
    assert changelog.read_quiet(2.0) == [], "a session query wrote a state"
    assert lists.read_quiet(0.5) == [], "a query published a list"


def test_bad_requests_get_4xx_json_errors_from_every_worker(two_workers):
    for worker in two_workers:
        cases = {
            "k=0": get_list(worker, "someone", "?k=0"),
            "k=abc": get_list(worker, "someone", "?k=abc"),
            "unknown parameter": get_list(worker, "someone", "?count=5"),
            "user id too long": get_list(worker, "u" * 257),
            "unknown route": http("GET", url(worker, "/users/someone/recommendation")),
            "wrong method": http("GET", url(worker, "/recommendations")),
            "malformed body": post_session(worker, b'{"items": ["a"'),
            "body not an object": post_session(worker, b'["a"]'),
            "items missing": post_session(worker, {"k": 5}),
            "too many items": post_session(worker, {"items": ["a"] * 1001}),
            "types not one per item": post_session(worker, {"items": ["a", "b"], "event_types": ["buy"]}),
        }
        got = {name: (reply.status, reply.json()["error"]) for name, reply in cases.items()}
        assert got == {
            "k=0": (400, "wrong_type"),
            "k=abc": (400, "wrong_type"),
            "unknown parameter": (400, "unknown_field"),
            "user id too long": (400, "wrong_type"),
            "unknown route": (404, "unknown_route"),
            "wrong method": (405, "method_not_allowed"),
            "malformed body": (400, "malformed_json"),
            "body not an object": (400, "malformed_json"),
            "items missing": (400, "missing_field"),
            "too many items": (400, "too_many_items"),
            "types not one per item": (400, "wrong_type"),
        }
        assert all(reply.json()["detail"] for reply in cases.values())

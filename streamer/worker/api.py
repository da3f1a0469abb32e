"""The query API on every worker's web port (contracts: :mod:`schemas.api`).

* ``GET /users/{user_id}/recommendations?k=20&exclude=a,b``: the user's list from the stored state
  under the serving model, answered by the worker holding the user's state partition; any other
  worker forwards the request there (:mod:`streamer.worker.owners`, :mod:`streamer.worker.forwarding`).
* ``POST /recommendations``: the list of an anonymous session sent in the body; any worker answers,
  and no state is read or written.

Both answer with the serving model's ranking under the business rules, or the popularity fallback
(``basis``). Errors are JSON ``{"error", "detail"}`` with a 4xx for anything the request got wrong,
also for unknown routes and methods; a 500 only for a fault of the worker. Every request is timed
(``streamrec_api_request_seconds{route,status}``) and every forward counted.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import faust
from aiohttp import web as aiohttp_web
from msgspec import UNSET

from schemas.api import (
    ApiRecommendations,
    SessionRequest,
    UserQuery,
    excluded_items,
    session_event_types,
    session_items,
    session_request,
    user_query,
)
from schemas.errors import InvalidMessage
from schemas.recommendations import RankedItem
from streamer.worker.api_replies import Reply, error_reply, invalid_request, json_reply
from streamer.worker.engine import Answer, Recommender
from streamer.worker.forwarding import FORWARDED_HEADER, Forwarder
from streamer.worker.metrics import API_FORWARDED, API_REQUEST_SECONDS
from streamer.worker.owners import StateOwners
from streamer.worker.parts import Worker
from streamer.worker.query_ranking import QueryRanker
from streamer.worker.state import UserState

log = logging.getLogger(__name__)

USER_ROUTE = "/users/{user_id}/recommendations"
SESSION_ROUTE = "/recommendations"
# aiohttp's own refusals, answered in the API's error format.
_HTTP_REASONS = {404: "unknown_route", 405: "method_not_allowed", 413: "oversized"}


class QueryApi:
    """The API's request handling, apart from the web framework: parse, find who answers, answer."""

    def __init__(
        self,
        serving: Callable[[], Recommender | None],
        read_state: Callable[[str, int], UserState | None],
        owners: StateOwners,
        forward: Callable[[str, str], Awaitable[Reply]],
        default_k: int,
    ) -> None:
        self.serving = serving
        self.read_state = read_state
        self.owners = owners
        self.forward = forward
        self.default_k = default_k
        self.ranker = QueryRanker()

    async def user_list(
        self, user_id: str, parameters: Mapping[str, list[str]], path_and_query: str, forwarded_by: str | None
    ) -> Reply:
        try:
            query = user_query(user_id, dict(parameters))
        except InvalidMessage as exc:
            return invalid_request(exc)
        partition = self.owners.partition(query.user_id)
        owner = self.owners.owner(partition)
        if owner is None:
            return error_reply("not_ready", f"no worker holds partition {partition} of the state yet")
        if owner != self.owners.me:
            if forwarded_by is not None:
                detail = f"{forwarded_by} forwarded this here, but {owner} holds partition {partition} now"
                return error_reply("not_owner", detail)
            reply = await self.forward(owner, path_and_query)
            API_FORWARDED.labels(reply.status).inc()
            return reply
        if not self.owners.recovered():
            return error_reply("not_ready", f"partition {partition} of the state is being recovered")
        recommender = self.serving()
        if recommender is None:
            return error_reply("not_ready", "no model or popularity is loaded yet")
        state = self.read_state(query.user_id, partition)
        return await self._answer(recommender, state, query, query.user_id)

    async def session_list(self, body: bytes) -> Reply:
        try:
            request = session_request(body)
        except InvalidMessage as exc:
            return invalid_request(exc)
        recommender = self.serving()
        if recommender is None:
            return error_reply("not_ready", "no model or popularity is loaded yet")
        items = session_items(request)
        # No items: nothing to encode, the visitor gets what a user without a state gets.
        state = recommender.session_state(items, session_event_types(request)) if items else None
        return await self._answer(recommender, state, request, None)

    async def _answer(
        self,
        recommender: Recommender,
        state: UserState | None,
        request: UserQuery | SessionRequest,
        user_id: str | None,
    ) -> Reply:
        k = self.default_k if request.k is UNSET else request.k
        answer = await self.ranker.rank(recommender, state, k, excluded_items(request))
        return json_reply(recommendations(answer, user_id, self.owners.me))


def recommendations(answer: Answer, user_id: str | None, served_by: str) -> ApiRecommendations:
    return ApiRecommendations(
        user_id=user_id,
        items=tuple(RankedItem(item, score) for item, score in answer.items),
        model_version=answer.model_version,
        basis=answer.basis,  # type: ignore[arg-type]  # MODEL or POPULARITY
        served_by=served_by,
    )


def register_api(worker: Worker) -> None:
    """Add the API's routes to the worker's web server, with its error format and timing."""
    app = worker.app
    owners = StateOwners(app, worker.states.changelog_topic, worker.settings.topics.partitions)
    forwarder = Forwarder(lambda: app.http_client, owners.me)  # type: ignore[arg-type, return-value]
    api = QueryApi(
        worker.models.holder.serving,
        lambda user, partition: worker.states.read({user: partition})[user],
        owners,
        forwarder.forward,
        worker.settings.worker.top_k,
    )

    @app.page(USER_ROUTE, name="user_recommendations")
    class UserRecommendations(faust.web.View):
        async def get(self, request: faust.web.Request, user_id: str) -> faust.web.Response:
            reply = await api.user_list(
                user_id, _parameters(request), request.raw_path, request.headers.get(FORWARDED_HEADER)
            )
            return _response(reply)

    @app.page(SESSION_ROUTE, name="session_recommendations")
    class SessionRecommendations(faust.web.View):
        async def post(self, request: faust.web.Request) -> faust.web.Response:
            return _response(await api.session_list(await request.read()))

    app.web.web_app.middlewares.append(errors_as_json_and_timed)


def _parameters(request: aiohttp_web.Request) -> dict[str, list[str]]:
    query = request.query
    return {name: query.getall(name) for name in query}


@aiohttp_web.middleware
async def errors_as_json_and_timed(
    request: aiohttp_web.Request,
    handler: Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]],
) -> aiohttp_web.StreamResponse:
    """Every web response timed by route and status; aiohttp's own refusals (unknown route, wrong
    method, body too large) and faults of the worker answered in the API's error format."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except aiohttp_web.HTTPException as exc:
        if exc.status not in _HTTP_REASONS:
            raise
        detail = f"{request.method} {request.path}: {exc.reason}"
        response = _response(error_reply(_HTTP_REASONS[exc.status], detail))  # type: ignore[arg-type]
    except Exception:
        log.exception("query API: %s %s failed", request.method, request.path)
        response = _response(error_reply("internal_error", "the worker failed; see its log"))
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    API_REQUEST_SECONDS.labels(route, response.status).observe(time.perf_counter() - started)
    return response


def _response(reply: Reply) -> aiohttp_web.Response:
    return aiohttp_web.Response(
        body=reply.body, status=reply.status, headers=reply.headers, content_type="application/json"
    )

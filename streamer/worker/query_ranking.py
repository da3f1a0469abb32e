"""Queries that arrive together are ranked together, in one ``Recommender.recommend`` call.

Ranking one state costs about as much as ranking a block of 32: the model computes on fixed blocks of
rows (``models/serving_blocks.py``), ~1.7 ms per call for rsc15 on this machine with 1 to 32 states.
While a micro-batch holds the event loop, queries queue up; ranked one by one afterwards, the last of
them would also wait for all the others. No query waits for company: the ones queued in the same turn
of the event loop are ranked as soon as that turn ends.
"""

import asyncio
import dataclasses
from dataclasses import dataclass

from streamer.worker.engine import Answer, Recommender
from streamer.worker.state import UserState


@dataclass(frozen=True)
class _Query:
    recommender: Recommender
    state: UserState | None
    k: int
    exclude: list[str]
    answer: asyncio.Future[Answer]


class QueryRanker:
    def __init__(self) -> None:
        self._queued: list[_Query] = []

    async def rank(
        self, recommender: Recommender, state: UserState | None, k: int, exclude: list[str]
    ) -> Answer:
        """The ``k`` best items for ``state`` under ``recommender``, leaving out ``exclude``."""
        loop = asyncio.get_running_loop()
        query = _Query(recommender, state, k, exclude, loop.create_future())
        self._queued.append(query)
        if len(self._queued) == 1:
            loop.call_soon(self._rank_queued)
        return await query.answer

    def _rank_queued(self) -> None:
        queued, self._queued = self._queued, []
        by_recommender: dict[int, list[_Query]] = {}  # one, unless a model was swapped in between
        for query in queued:
            by_recommender.setdefault(id(query.recommender), []).append(query)
        for queries in by_recommender.values():
            try:
                # The longest list asked for; each query keeps its own first k (a top-k is a prefix
                # of any longer top-k, and a row's ranking does not depend on the others).
                answers = queries[0].recommender.recommend(
                    [query.state for query in queries],
                    max(query.k for query in queries),
                    [query.exclude for query in queries],
                )
            except Exception as exc:  # every query of the call gets the error, as a lone one would
                for query in queries:
                    if not query.answer.done():  # done: the client went away, its request was cancelled
                        query.answer.set_exception(exc)
                continue
            for query, answer in zip(queries, answers, strict=True):
                if not query.answer.done():
                    query.answer.set_result(dataclasses.replace(answer, items=answer.items[: query.k]))

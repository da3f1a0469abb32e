"""Queries queued in the same turn of the event loop are ranked in one call, each getting its own
answer, its own length and its own error."""

import asyncio

from streamer.worker.engine import Answer, Recommender
from streamer.worker.policy import ServingPolicy
from streamer.worker.query_ranking import QueryRanker
from tests.support.artifacts import make_artifact


class CountingRecommender:
    def __init__(self, version: str = "v1", fail: bool = False) -> None:
        self.version = version
        self.fail = fail
        self.calls: list[tuple[list, int, list]] = []

    def recommend(self, states, k, exclude):
        self.calls.append((states, k, exclude))
        if self.fail:
            raise RuntimeError("scorer broke")
        return [Answer([(f"{state}-{n}", -n) for n in range(k)], self.version, "model") for state in states]


async def rank_together(ranker: QueryRanker, queries: list[tuple]) -> list:
    return await asyncio.gather(*(ranker.rank(*query) for query in queries), return_exceptions=True)


def test_queries_of_one_turn_are_ranked_in_one_call_and_each_keeps_its_own_k():
    recommender = CountingRecommender()
    queries = [(recommender, "a", 2, []), (recommender, "b", 5, ["x"]), (recommender, "c", 1, [])]
    answers = asyncio.run(rank_together(QueryRanker(), queries))
    assert recommender.calls == [(["a", "b", "c"], 5, [[], ["x"], []])]
    assert [[item for item, _ in answer.items] for answer in answers] == [
        ["a-0", "a-1"],
        ["b-0", "b-1", "b-2", "b-3", "b-4"],
        ["c-0"],
    ]


def test_queries_for_two_models_are_ranked_by_each_model():
    old, new = CountingRecommender("old"), CountingRecommender("new")
    answers = asyncio.run(
        rank_together(QueryRanker(), [(old, "a", 1, []), (new, "b", 1, []), (old, "c", 1, [])])
    )
    assert [answer.model_version for answer in answers] == ["old", "new", "old"]
    assert (old.calls[0][0], new.calls[0][0]) == (["a", "c"], ["b"])


def test_a_failed_ranking_fails_each_of_its_queries_and_the_next_turn_ranks_again():
    broken, sound = CountingRecommender(fail=True), CountingRecommender()
    ranker = QueryRanker()

    async def two_turns():
        first = await rank_together(ranker, [(broken, "a", 1, []), (broken, "b", 1, []), (sound, "c", 1, [])])
        return first, await ranker.rank(sound, "d", 1, [])

    first, later = asyncio.run(two_turns())
    assert [type(outcome).__name__ for outcome in first] == ["RuntimeError", "RuntimeError", "Answer"]
    assert later.items == [("d-0", 0)]


def test_a_query_ranked_with_others_gets_the_list_it_gets_alone():
    artifact = make_artifact()
    recommender = Recommender(artifact, ServingPolicy())
    items = artifact.item_ids
    states = [recommender.session_state(items[n : n + 3], [0, 2, 0]) for n in range(0, 12, 3)]
    alone = [asyncio.run(QueryRanker().rank(recommender, state, 4, [items[0]])) for state in states]
    together = asyncio.run(rank_together(QueryRanker(), [(recommender, s, 4, [items[0]]) for s in states]))
    assert together == alone
    assert len({tuple(answer.items) for answer in alone}) > 1  # different states, different lists

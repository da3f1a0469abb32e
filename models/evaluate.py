"""Next-item evaluation: Recall@K and MRR@K for a model and two baselines.

Protocol (the reference GRU4Rec's): events of items unseen in training are dropped; each test
session starts from a zero state; every event after a session's first is one prediction, made from
the events before it; the true item is ranked against all training items. Recall@K is the share of
predictions ranked in the top K, MRR@K the mean of 1/rank, counting 0 beyond K. A model with a
seen bonus ranks with it, the session's items so far being those of the prediction's prefix.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from models.contract import Scorer, SequenceModel
from models.data import EncodedSessions, EventLog, build_vocabulary, encode_sessions, item_counts
from models.data import session_parallel_schedule as plan_batches
from models.scoring import ExactScorer, latest_seen, seen_bonuses

DEFAULT_CUTOFFS = (1, 5, 10, 20)
# The seen bonuses `streamrec tune` tries on the validation sessions after each epoch: scores of
# both losses are logits of order 1, and a bonus beyond a few units lists every seen item first.
SEEN_BONUS_GRID = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
# And the decays per event since the item's latest (ModelConfig.seen_decay), with each bonus.
SEEN_DECAY_GRID = (1.0, 0.95, 0.9, 0.8)

SeenBonus = tuple[float, float]  # (seen_bonus, seen_decay)


def pessimistic_ranks(scores: Tensor, targets: Tensor) -> Tensor:
    """Rank of each row's target item: the number of items scoring >= the target's score.

    Ties count against the target (an item tied with it ranks ahead), so constant scores rank every
    target last instead of first.
    """
    return (scores >= scores.gather(1, targets.unsqueeze(1))).sum(1)


class MetricAccumulator:
    def __init__(self, cutoffs: Iterable[int]):
        self.cutoffs = sorted(set(cutoffs))
        self.hits = dict.fromkeys(self.cutoffs, 0.0)
        self.reciprocal_ranks = dict.fromkeys(self.cutoffs, 0.0)
        self.n = 0

    def add(self, ranks: Tensor) -> None:
        ranks = ranks.double()
        for k in self.cutoffs:
            within = ranks <= k
            self.hits[k] += within.sum().item()
            self.reciprocal_ranks[k] += (within / ranks).sum().item()
        self.n += len(ranks)

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        metrics: dict[str, float] = {}
        for k in self.cutoffs:
            metrics[f"recall@{k}"] = self.hits[k] / n
            metrics[f"mrr@{k}"] = self.reciprocal_ranks[k] / n
        metrics["n_predictions"] = self.n
        return metrics


# Floats of one score matrix at most (256 MB): a batch of 512 states against a 1M-item catalog would
# otherwise take 2 GB; the exact ranks are computed a slice of rows at a time instead.
SCORE_BUDGET = 1 << 26


@torch.inference_mode()
def evaluate_model(
    model: SequenceModel,
    item_ids: Sequence[str],
    log: EventLog,
    cutoffs: Iterable[int] = DEFAULT_CUTOFFS,
    batch_size: int = 512,
    scorer: Scorer | None = None,
) -> dict[str, float]:
    """Step with :meth:`step` as the streamer does. Without ``scorer``, rank every target against all
    items; with one, rank it within the scorer's top-K lists (K the largest cutoff; a target beyond
    counts as missed) and also report ``overlap@K`` of those lists with the exact ones."""
    if scorer is None:
        table = model.item_table()
        bonus = (table.seen_bonus, table.seen_decay)
        return evaluate_seen_bonuses(model, item_ids, log, [bonus], cutoffs, batch_size)[0]
    metrics = MetricAccumulator(cutoffs)
    k = max(metrics.cutoffs)
    exact = ExactScorer(model.item_table())
    shared = 0
    for hidden, targets, seen in _predictions(model, item_ids, log, batch_size):
        _, listed = scorer.top_k(model.query(hidden), k, seen=seen)
        metrics.add(_ranks_in_lists(listed, targets))
        _, best = exact.top_k(model.query(hidden), k, seen=seen)
        shared += int((listed.unsqueeze(2) == best.unsqueeze(1)).any(2).sum())
    result = metrics.result()
    result[f"overlap@{k}"] = shared / max(1, metrics.n * min(k, model.n_items))
    return result


@torch.inference_mode()
def evaluate_seen_bonuses(
    model: SequenceModel,
    item_ids: Sequence[str],
    log: EventLog,
    bonuses: Sequence[SeenBonus],
    cutoffs: Iterable[int] = DEFAULT_CUTOFFS,
    batch_size: int = 512,
) -> list[dict[str, float]]:
    """The exact metrics of ``model`` with each of ``bonuses`` as its seen bonus and decay, from one
    pass."""
    metrics = [MetricAccumulator(cutoffs) for _ in bonuses]
    for hidden, targets, seen in _predictions(model, item_ids, log, batch_size):
        ranks = _exact_ranks(model, hidden, targets, seen, bonuses)
        for accumulator, ranks_with_bonus in zip(metrics, ranks, strict=True):
            accumulator.add(ranks_with_bonus)
    return [accumulator.result() for accumulator in metrics]


def _predictions(
    model: SequenceModel, item_ids: Sequence[str], log: EventLog, batch_size: int
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Session-parallel steps: each active session's state after its latest event, the item that
    follows, and the session's items so far (``[n, width]``, right-aligned, padded with -1)."""
    sessions = encode_sessions(log, {item: i for i, item in enumerate(item_ids)})
    schedule = plan_batches(sessions.offsets, batch_size)
    items = torch.from_numpy(sessions.items)
    event_types = torch.from_numpy(sessions.event_types)
    session_starts = torch.from_numpy(np.repeat(sessions.offsets[:-1], np.diff(sessions.offsets)))
    hidden = model.zero_state(schedule.inputs.shape[1])
    for t, n in enumerate(schedule.n_active.tolist()):
        hidden = hidden[:n]
        resets = torch.from_numpy(schedule.resets[t, :n])
        if resets.any():
            hidden = hidden.masked_fill(resets[:, None, None], 0.0)
        positions = torch.from_numpy(schedule.inputs[t, :n])
        hidden = model.step(hidden, items[positions], event_types[positions])
        yield hidden, items[positions + 1], _session_so_far(items, session_starts[positions], positions)


def _session_so_far(items: Tensor, firsts: Tensor, positions: Tensor) -> Tensor:
    width = int((positions - firsts).max()) + 1
    at = positions.unsqueeze(1) - torch.arange(width - 1, -1, -1)
    return torch.where(at >= firsts.unsqueeze(1), items[at.clamp(min=0)], -1)


def _exact_ranks(
    model: SequenceModel, hidden: Tensor, targets: Tensor, seen: Tensor, bonuses: Sequence[SeenBonus]
) -> list[Tensor]:
    """The targets' ranks among all items with each of ``bonuses``."""
    rows = max(1, SCORE_BUDGET // model.n_items)
    ranks: list[list[Tensor]] = [[] for _ in bonuses]
    for i in range(0, len(hidden), rows):
        part = slice(i, i + rows)
        scores = model.scores(hidden[part])
        for out, ranked in zip(
            ranks, ranks_with_bonuses(scores, targets[part], seen[part], bonuses), strict=True
        ):
            out.append(ranked)
    return [torch.cat(parts) for parts in ranks]


def ranks_with_bonuses(
    scores: Tensor, targets: Tensor, seen: Tensor, bonuses: Sequence[SeenBonus]
) -> list[Tensor]:
    """:func:`pessimistic_ranks` of the targets with each seen bonus and decay added to ``scores``,
    from one pass over all items plus one per bonus over the rows whose target is a seen item: a
    bonus moves only the few seen items, and the target's own score where it is one of them. (Adding
    each bonus to a copy of the scores and ranking that took 2.5 times as long: tuning ranks with 40.)"""
    own, ages = latest_seen(seen)
    listed = own >= 0
    target_scores = scores.gather(1, targets.unsqueeze(1))
    own_scores = scores.gather(1, own.clamp(min=0)).masked_fill_(~listed, float("-inf"))
    is_target = (own == targets.unsqueeze(1)) & listed
    others_ahead = (scores >= target_scores).sum(1) - (own_scores >= target_scores).sum(1)
    again = torch.nonzero(is_target.any(1)).squeeze(1)  # rows whose threshold moves with the bonus
    ranks = []
    for bonus, decay in bonuses:
        added = seen_bonuses(own, ages, bonus, decay).to(scores.dtype)
        threshold = target_scores + (added * is_target).sum(1, keepdim=True)
        ahead = others_ahead.clone()
        if bonus and len(again):
            moved = threshold[again]
            ahead[again] = (scores[again] >= moved).sum(1) - (own_scores[again] >= moved).sum(1)
        ranks.append(ahead + (own_scores + added >= threshold).sum(1))
    return ranks


def _ranks_in_lists(listed: Tensor, targets: Tensor) -> Tensor:
    """Each target's 1-based place in its row's list, or one past the list's end if absent."""
    hit = listed == targets.unsqueeze(1)
    return torch.where(hit.any(1), hit.int().argmax(1) + 1, listed.shape[1] + 1)


def evaluate_most_popular(
    train: EventLog, test: EventLog, cutoffs: Iterable[int] = DEFAULT_CUTOFFS
) -> dict[str, float]:
    """Baseline: always rank items by their number of training events."""
    item_ids = build_vocabulary(train)
    counts = torch.from_numpy(item_counts(encode_sessions(train, _index(item_ids)), len(item_ids))).double()
    return _evaluate_pairs(lambda previous: counts.expand(len(previous), -1), item_ids, test, cutoffs)


def evaluate_last_item(
    train: EventLog, test: EventLog, cutoffs: Iterable[int] = DEFAULT_CUTOFFS
) -> dict[str, float]:
    """Baseline: rank items by how often they followed the current item in the training sessions.

    Items with equal counts (most of them: zero) are ordered by popularity, which only breaks ties.
    """
    item_ids = build_vocabulary(train)
    sessions = encode_sessions(train, _index(item_ids))
    popularity = torch.from_numpy(item_counts(sessions, len(item_ids))).double()
    tie_breaker = popularity / (popularity.max() + 1)  # < 1: never outweighs one transition
    previous, following = _consecutive_pairs(sessions)
    n = len(item_ids)
    transitions = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([previous, following])),
        torch.ones(len(previous), dtype=torch.float64),
        (n, n),
        check_invariants=True,
    ).coalesce()
    return _evaluate_pairs(
        lambda prev: transitions.index_select(0, prev).to_dense() + tie_breaker, item_ids, test, cutoffs
    )


def _evaluate_pairs(
    score: Callable[[Tensor], Tensor],
    item_ids: Sequence[str],
    test: EventLog,
    cutoffs: Iterable[int],
    batch_size: int = 1024,
) -> dict[str, float]:
    previous, following = _consecutive_pairs(encode_sessions(test, _index(item_ids)))
    previous, following = torch.from_numpy(previous), torch.from_numpy(following)
    metrics = MetricAccumulator(cutoffs)
    for start in range(0, len(previous), batch_size):
        batch = slice(start, start + batch_size)
        metrics.add(pessimistic_ranks(score(previous[batch]), following[batch]))
    return metrics.result()


def _consecutive_pairs(sessions: EncodedSessions) -> tuple[np.ndarray, np.ndarray]:
    """(item, next item) for every event that has a successor in its session."""
    has_next = np.ones(len(sessions.items), bool)
    last = sessions.offsets[1:] - 1
    has_next[last[last >= 0]] = False  # an empty first session would give -1
    positions = np.flatnonzero(has_next)
    return sessions.items[positions], sessions.items[positions + 1]


def _index(item_ids: Sequence[str]) -> dict[str, int]:
    return {item: i for i, item in enumerate(item_ids)}

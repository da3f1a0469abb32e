"""``streamrec score-stream``: Recall@K and MRR@K of the lists on the recommendations topic.

Each list is scored against the next event of the same user in the replayed dataset, as the offline
evaluator scores the model's prediction after each event. Ties are counted pessimistically, as
offline: a target's rank is the number of listed items scoring at least as high as it.
"""

import argparse
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from schemas.events import Event
from schemas.recommendations import Recommendation
from streamer.common.kafka_config import kafka_python_config
from streamer.common.settings import Settings


@dataclass
class StreamScore:
    cutoff: int
    predictions: int = 0
    hits: int = 0
    reciprocal_rank_sum: float = 0.0
    lists_without_next_event: int = 0

    def add(self, rank: int | None) -> None:
        self.predictions += 1
        if rank is not None and rank <= self.cutoff:
            self.hits += 1
            self.reciprocal_rank_sum += 1.0 / rank

    def as_dict(self) -> dict[str, float | int]:
        n = max(self.predictions, 1)
        return {
            f"recall@{self.cutoff}": self.hits / n,
            f"mrr@{self.cutoff}": self.reciprocal_rank_sum / n,
            "predictions": self.predictions,
            "lists_without_next_event": self.lists_without_next_event,
        }


def next_items(events: list[Event]) -> dict[str, str]:
    """event id -> the item of the same user's next event (within the same session)."""
    following: dict[str, str] = {}
    last_of_user: dict[str, Event] = {}
    for event in events:
        previous = last_of_user.get(event.user_id)
        if previous is not None and previous.session_id == event.session_id:
            following[previous.event_id] = event.item_id
        last_of_user[event.user_id] = event
    return following


def pessimistic_rank(rec: Recommendation, target: str) -> int | None:
    target_score = next((i.score for i in rec.items if i.item_id == target), None)
    if target_score is None:
        return None
    return sum(1 for i in rec.items if i.score >= target_score)


def score_lists(lists: Iterable[Recommendation], following: dict[str, str], cutoff: int) -> StreamScore:
    score = StreamScore(cutoff)
    seen: set[str] = set()
    for rec in lists:
        if rec.event_id in seen:  # a list re-sent after a crash counts once
            continue
        seen.add(rec.event_id)
        target = following.get(rec.event_id)
        if target is None:
            score.lists_without_next_event += 1
        else:
            score.add(pessimistic_rank(rec, target))
    return score


def consume_lists(settings: Settings, expected: int, idle_timeout_s: float) -> list[Recommendation]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topics.recommendations,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
        **kafka_python_config(settings),
    )
    lists: list[Recommendation] = []
    last = time.monotonic()
    try:
        with tqdm(total=expected, unit="list") as bar:
            while len(lists) < expected and time.monotonic() - last < idle_timeout_s:
                for message in consumer:
                    lists.append(Recommendation.from_bytes(message.value))
                    last = time.monotonic()
                    bar.update()
    finally:
        consumer.close()
    return lists


def register(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    parser = subparsers.add_parser(name, help=summary, description=__doc__)
    parser.add_argument("data", type=Path, help="the dataset that was replayed (.tsv or REES46 .csv)")
    parser.add_argument("--topic", default=None, help="default: $STREAMREC_RECOMMENDATIONS_TOPIC")
    parser.add_argument("--bootstrap-servers", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--cutoff", type=int, default=20, help="K of Recall@K and MRR@K")
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="stop after this long without lists")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer.tools.replay import read_events

    settings = Settings.from_env(
        KAFKA_BOOTSTRAP_SERVERS=args.bootstrap_servers, STREAMREC_RECOMMENDATIONS_TOPIC=args.topic
    )
    events = read_events(args.data)
    lists = consume_lists(settings, len(events), args.idle_timeout)
    figures = score_lists(lists, next_items(events), args.cutoff).as_dict()
    figures["lists"] = len(lists)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0

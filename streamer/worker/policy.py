"""How a worker serves, whatever the model: list length, business rules, what a session is and
which scorer ranks the catalog."""

from dataclasses import dataclass, field

from models.ann import AnnParams
from models.scorer_choice import ScorerChoice
from streamer.common.settings import Settings


@dataclass(frozen=True)
class ServingPolicy:
    top_k: int = 20
    exclude_current_item: bool = False
    exclude_session_items: bool = False
    exclude_bought_s: float = 0.0  # 0: bought items are not left out
    bought_items: int = 50
    popularity_half_life_s: float = 21600.0
    session_mode: str = "session"  # "session": zero state after a gap or a new session id; "user": carry over
    session_gap_s: float = 1800.0
    recent_items: int = 200
    recent_event_ids: int = 32
    scorer: ScorerChoice = field(default_factory=ScorerChoice)


def serving_policy(settings: Settings) -> ServingPolicy:
    return ServingPolicy(
        top_k=settings.worker.top_k,
        exclude_current_item=settings.worker.exclude_current_item,
        exclude_session_items=settings.worker.exclude_session_items,
        exclude_bought_s=settings.worker.exclude_bought_s,
        bought_items=settings.worker.bought_items,
        popularity_half_life_s=settings.worker.popularity_half_life_s,
        session_mode=settings.sessions.mode,
        session_gap_s=settings.sessions.gap_s,
        recent_items=settings.worker.recent_items,
        recent_event_ids=settings.worker.recent_event_ids,
        scorer=ScorerChoice(
            kind=settings.worker.scorer,
            ann_from_items=settings.worker.ann_from_items,
            ann=AnnParams(candidates=settings.worker.ann_candidates, nprobe=settings.worker.ann_nprobe),
        ),
    )

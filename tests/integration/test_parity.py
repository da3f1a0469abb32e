"""Online/offline parity: replaying rsc15-100k's test split through the live system gives the
offline evaluator's Recall@20 and MRR@20 (within 0.5% relative): the stream applies the model
exactly as it was evaluated. The worker's own live quality counters (hit rate@20 and MRR@20 from
``streamrec_online_*``) say the same, within 0.005. The model has a decaying seen bonus: the
stream's session items, and their order, are the evaluator's too."""

from pathlib import Path

import pytest

from models.artifact import load_artifact
from models.data import read_events as read_session_log
from models.evaluate import evaluate_model
from schemas.recommendations import Recommendation
from streamer.common.settings import Settings
from streamer.tools.replay import read_events, replay
from streamer.tools.score_stream import next_items, score_lists
from tests.support.kafka_io import TopicReader
from tests.support.training import train_with_cli
from tests.support.worker_metrics import metric_value

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rsc15-100k"


@pytest.fixture(scope="module")
def rsc15_model(tmp_path_factory) -> Path:
    if not (DATA / "train_full.tsv").is_file():
        pytest.skip(f"the rsc15-100k sample is not at {DATA}")
    # With a decaying seen bonus, so that the stream's session items and their ages are checked against
    # the evaluator's too.
    return train_with_cli(
        DATA / "train_full.tsv",
        tmp_path_factory.mktemp("rsc15") / "model",
        "--epochs",
        "1",
        "--seen-bonus",
        "0.5",
        "--seen-decay",
        "0.8",
    )


def test_replayed_test_split_scores_like_the_offline_evaluator(kafka_bootstrap, streamer_setup, rsc15_model):
    artifact = load_artifact(rsc15_model)
    offline = evaluate_model(
        artifact.model, artifact.item_ids, read_session_log(DATA / "test.tsv"), cutoffs=[20]
    )

    setup = streamer_setup
    setup.model_path, setup.top_k = rsc15_model, 20
    events = read_events(DATA / "test.tsv")
    recs = TopicReader(kafka_bootstrap, setup.topics["recommendations"])
    worker = setup.worker().start()
    try:
        worker.wait_ready()
        replay(events, Settings.from_env(setup.env()), progress=False)
        lists = [
            Recommendation.from_bytes(m.value) for m in recs.read(len(events), timeout_s=300, worker=worker)
        ]
        live = {
            name: metric_value(worker, f"streamrec_online_{name}_total", f'version="{artifact.version}"')
            for name in ("predictions", "hits", "reciprocal_rank")
        }
    finally:
        assert worker.stop() == 0, worker.log_tail()
        recs.close()

    online = score_lists(lists, next_items(events), cutoff=20)
    assert online.predictions == offline["n_predictions"] == 10_152
    for metric in ("recall@20", "mrr@20"):
        assert online.as_dict()[metric] == pytest.approx(offline[metric], rel=0.005), metric
    assert live["predictions"] == offline["n_predictions"]
    assert live["hits"] / live["predictions"] == pytest.approx(offline["recall@20"], abs=0.005)
    assert live["reciprocal_rank"] / live["predictions"] == pytest.approx(offline["mrr@20"], abs=0.005)

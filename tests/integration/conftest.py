"""Fixtures for tests that run the streamer against the real broker."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from models.synthetic import write_synthetic_sessions
from streamer.common.admin import ensure_topics
from streamer.common.settings import Settings
from streamer.tools.kafka_local.broker import free_ports
from streamer.tools.worker_process import WorkerProcess
from tests.support.training import train_with_cli

PARTITIONS = 3


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> Path:
    """A small real GRU4Rec, trained by the project's own trainer on synthetic sessions."""
    folder = tmp_path_factory.mktemp("model")
    data = write_synthetic_sessions(folder / "train.tsv", n_items=200, n_sessions=1500)
    return train_with_cli(data, folder / "artifact", "--epochs", "2", "--hidden", "32", "--seed", "1")


@dataclass
class StreamerSetup:
    """One isolated streamer deployment: its own topics, consumer group and state directory."""

    bootstrap: str
    app_id: str
    topics: dict[str, str]
    model_path: Path
    data_dir: Path
    log_path: Path
    web_port: int
    top_k: int = 10
    extra_env: dict[str, str] | None = None

    @property
    def changelog_topic(self) -> str:
        return f"{self.app_id}-user-state-changelog"

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMREC_APP_ID": self.app_id,
            "STREAMREC_CLICK_TOPIC": self.topics["click"],
            "STREAMREC_BUY_TOPIC": self.topics["buy"],
            "STREAMREC_RECOMMENDATIONS_TOPIC": self.topics["recommendations"],
            "STREAMREC_DEAD_LETTER_TOPIC": self.topics["dead_letters"],
            "STREAMREC_TOPIC_PARTITIONS": str(PARTITIONS),
            "STREAMREC_MODEL_PATH": str(self.model_path),
            "STREAMREC_DATA_DIR": str(self.data_dir),
            "STREAMREC_TOP_K": str(self.top_k),
            # A killed worker's partitions move after this long; short, so crash tests stay quick.
            "STREAMREC_KAFKA_SESSION_TIMEOUT_S": "8",
            "STREAMREC_WEB_PORT": str(self.web_port),
            "STREAMREC_MODEL_UPDATES_TOPIC": f"{self.app_id}-model-updates",
            "STREAMREC_CATALOG_TOPIC": f"{self.app_id}-item-catalog",
            "STREAMREC_MODEL_STORE": str(self.data_dir.parent / "model-store"),
            "STREAMREC_RETRAINER_DIR": str(self.data_dir.parent / "retrainer"),
            **(self.extra_env or {}),
        }

    def env_path(self, name: str) -> Path:
        return Path(self.env()[name])

    def worker(self, name: str = "worker", **env: str) -> WorkerProcess:
        """A streamer worker; ``name`` separates the state directory and log of several workers,
        ``env`` overrides settings."""
        overrides = {"STREAMREC_DATA_DIR": str(self.data_dir / name), **env}
        if name != "worker" and "STREAMREC_WEB_PORT" not in env:
            overrides["STREAMREC_WEB_PORT"] = str(free_ports(1)[0])
        return WorkerProcess({**self.env(), **overrides}, self.log_path.with_name(f"{name}.log"))

    def retrainer(self, **env: str) -> WorkerProcess:
        overrides = {"STREAMREC_RETRAINER_METRICS_PORT": str(free_ports(1)[0]), **env}
        return WorkerProcess(
            {**self.env(), **overrides}, self.log_path.with_name("retrainer.log"), "retrainer"
        )


def new_streamer_setup(
    bootstrap: str, app_id: str, model: Path, folder: Path, extra_env: dict[str, str] | None = None
) -> StreamerSetup:
    """A deployment named ``app_id`` with its topics created, its state and logs under ``folder``."""
    topics = {kind: f"{app_id}-{kind}" for kind in ("click", "buy", "recommendations", "dead_letters")}
    setup = StreamerSetup(
        bootstrap,
        app_id,
        topics,
        model,
        folder / "state",
        folder / "worker.log",
        web_port=free_ports(1)[0],
        extra_env=extra_env,
    )
    ensure_topics(Settings.from_env(setup.env()))  # kafka-python's admin client, with the setup's security
    return setup


@pytest.fixture
def streamer_setup(kafka_bootstrap, unique_name, trained_model, tmp_path) -> StreamerSetup:
    return new_streamer_setup(kafka_bootstrap, unique_name("streamrec"), trained_model, tmp_path)

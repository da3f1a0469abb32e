"""Streamer configuration: environment variables, parsed and validated once at start.

Every setting has a default that works against the local broker. A bad value stops the process at
start with a message naming the variable (:class:`ConfigError`), never halfway through a stream.
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} must not be empty")
    return raw.strip()


def _ranged(convert: Callable[[str], Any], kind: str, low: float, high: float) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = convert(raw)
        except ValueError:
            raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        return value

    return parse


def _integer(low: int, high: int) -> Callable[[str, str], int]:
    return _ranged(int, "an integer", low, high)


def _number(low: float, high: float) -> Callable[[str, str], float]:
    return _ranged(float, "a number", low, high)


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if raw not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {raw!r}")
        return raw

    return parse


def _flag(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _bootstrap(name: str, raw: str) -> str:
    servers = [s.strip() for s in raw.split(",") if s.strip()]
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{name} must be a comma-separated list of host:port, got {raw!r}")
    if not servers:
        raise ConfigError(f"{name} must not be empty")
    return ",".join(servers)


def _optional_text(name: str, raw: str) -> str | None:
    return raw.strip() or None


def _optional_path(name: str, raw: str) -> Path | None:
    return Path(raw.strip()).expanduser() if raw.strip() else None


def _path(name: str, raw: str) -> Path:
    return Path(_text(name, raw)).expanduser()


@dataclass(frozen=True)
class Setting:
    env: str
    field: str  # "<group>.<name>": where Settings holds the value
    default: str | None
    parse: Callable[[str, str], Any]
    help: str


# The table the README documents; the order is the order of the README's table.
SETTINGS: dict[str, Setting] = {
    s.env: s
    for s in [
        Setting(
            "KAFKA_BOOTSTRAP_SERVERS",
            "kafka.bootstrap_servers",
            "127.0.0.1:9092",
            _bootstrap,
            "Kafka brokers, host:port[,host:port]",
        ),
        Setting(
            "STREAMREC_APP_ID",
            "worker.app_id",
            "streamrec",
            _text,
            "Faust app id: consumer group and prefix of the changelog topic",
        ),
        Setting("STREAMREC_CLICK_TOPIC", "topics.click", "click", _text, "topic of click (and cart) events"),
        Setting("STREAMREC_BUY_TOPIC", "topics.buy", "buy", _text, "topic of buy events"),
        Setting(
            "STREAMREC_RECOMMENDATIONS_TOPIC",
            "topics.recommendations",
            "recommendations",
            _text,
            "output topic of top-K lists",
        ),
        Setting(
            "STREAMREC_DEAD_LETTER_TOPIC",
            "topics.dead_letters",
            "streamrec-dead-letters",
            _text,
            "where input that cannot be applied goes, with the reason",
        ),
        Setting(
            "STREAMREC_TOPIC_PARTITIONS",
            "topics.partitions",
            "4",
            _integer(1, 10_000),
            "partitions of the sequencing topic and the state changelog (input topics: any count)",
        ),
        Setting(
            "STREAMREC_MODEL_UPDATES_TOPIC",
            "topics.model_updates",
            "model-updates",
            _text,
            "compacted topic on which the retrainer announces promoted models",
        ),
        Setting(
            "STREAMREC_CATALOG_TOPIC",
            "topics.catalog",
            "item-catalog",
            _text,
            "compacted topic of item availability (key: item id); unavailable items are never listed",
        ),
        Setting(
            "STREAMREC_MODEL_STORE",
            "models.store",
            "var/models/store",
            _path,
            "directory shared by the retrainer and the streamers holding promoted artifacts",
        ),
        Setting(
            "STREAMREC_MODEL_PATH",
            "models.fallback",
            "var/models/current",
            _path,
            "artifact served when no announced model verifies",
        ),
        Setting(
            "STREAMREC_DATA_DIR",
            "worker.data_dir",
            "var/streamer",
            _path,
            "where the worker keeps its RocksDB state",
        ),
        Setting("STREAMREC_TOP_K", "worker.top_k", "20", _integer(1, 1000), "items per recommendation list"),
        Setting(
            "STREAMREC_EXCLUDE_CURRENT_ITEM",
            "worker.exclude_current_item",
            "false",
            _flag,
            "leave the item just interacted with out of its list",
        ),
        Setting(
            "STREAMREC_EXCLUDE_SESSION_ITEMS",
            "worker.exclude_session_items",
            "false",
            _flag,
            "leave the items of the user's current session out of its lists",
        ),
        Setting(
            "STREAMREC_EXCLUDE_BOUGHT_S",
            "worker.exclude_bought_s",
            "0",
            _number(0, 10 * 365 * 86400),
            "leave items the user bought within this many seconds (event time) out of its lists; 0: off",
        ),
        Setting(
            "STREAMREC_BOUGHT_ITEMS",
            "worker.bought_items",
            "50",
            _integer(1, 10_000),
            "most recent bought items kept per user for STREAMREC_EXCLUDE_BOUGHT_S",
        ),
        Setting(
            "STREAMREC_POPULARITY_HALF_LIFE_S",
            "worker.popularity_half_life_s",
            "21600",
            _number(1, 365 * 86400),
            "half-life (event time) of the popularity the worker counts from the stream, served when no "
            "model is loaded and the model carries none",
        ),
        Setting(
            "STREAMREC_SCORER",
            "worker.scorer",
            "auto",
            _choice("auto", "exact", "ann"),
            "exact: rank the whole catalog; ann: faiss candidates re-ranked exactly; auto: ann from "
            "STREAMREC_ANN_FROM_ITEMS items",
        ),
        Setting(
            "STREAMREC_ANN_FROM_ITEMS",
            "worker.ann_from_items",
            "100000",
            _integer(1, 1_000_000_000),
            "catalog size from which the auto scorer is the approximate one",
        ),
        Setting(
            "STREAMREC_ANN_CANDIDATES",
            "worker.ann_candidates",
            "64",
            _integer(1, 100_000),
            "approximate scorer: items retrieved per list before the exact re-ranking",
        ),
        Setting(
            "STREAMREC_ANN_NPROBE",
            "worker.ann_nprobe",
            "16",
            _integer(1, 1_000_000),
            "approximate scorer: index lists searched per list (more: closer to exact, slower)",
        ),
        Setting(
            "STREAMREC_BATCH_MAX",
            "worker.batch_max",
            "256",
            _integer(1, 100_000),
            "most events applied in one micro-batch",
        ),
        Setting(
            "STREAMREC_BATCH_WITHIN_MS",
            "worker.batch_within_ms",
            "5",
            _number(0.1, 60_000),
            "longest wait to fill a micro-batch before applying what has arrived",
        ),
        Setting(
            "STREAMREC_SESSION_MODE",
            "sessions.mode",
            "session",
            _choice("session", "user"),
            "session: a new session starts from a zero state; user: the state carries over",
        ),
        Setting(
            "STREAMREC_SESSION_GAP_S",
            "sessions.gap_s",
            "1800",
            _number(1, 365 * 86400),
            "inactivity after which the next event starts a new session (session mode)",
        ),
        Setting(
            "STREAMREC_RECENT_ITEMS",
            "worker.recent_items",
            "200",
            _integer(1, 10_000),
            "most recent items kept per user, used to re-encode the state under new weights",
        ),
        Setting(
            "STREAMREC_RECENT_EVENT_IDS",
            "worker.recent_event_ids",
            "32",
            _integer(1, 10_000),
            "most recent event ids kept per user: an event sent again with one of them is not applied twice",
        ),
        Setting(
            "STREAMREC_ROCKSDB_BLOCK_CACHE_MB",
            "worker.rocksdb_block_cache_mb",
            "128",
            _integer(1, 1_000_000),
            "RocksDB read cache per state partition on this worker",
        ),
        Setting(
            "STREAMREC_ROCKSDB_WRITE_BUFFER_MB",
            "worker.rocksdb_write_buffer_mb",
            "64",
            _integer(1, 100_000),
            "RocksDB write buffer per state partition (up to 3 are kept in memory)",
        ),
        Setting(
            "STREAMREC_MAX_FUTURE_SKEW_S",
            "worker.max_future_skew_s",
            "3600",
            _number(0, 365 * 86400),
            "events stamped further than this in the future are dead-lettered",
        ),
        Setting(
            "STREAMREC_REPLICATION_FACTOR",
            "topics.replication_factor",
            "1",
            _integer(1, 10),
            "replication factor of the topics the streamer creates (3 in production)",
        ),
        Setting(
            "STREAMREC_STANDBY_REPLICAS",
            "worker.standby_replicas",
            "1",
            _integer(0, 10),
            "standby copies of each state partition kept warm on other workers",
        ),
        Setting(
            "STREAMREC_KAFKA_SESSION_TIMEOUT_S",
            "worker.session_timeout_s",
            "60",
            _number(6, 1800),
            "a worker silent this long leaves the group and its partitions move to others",
        ),
        Setting(
            "STREAMREC_CONSUMER_INSTANCE_ID",
            "worker.consumer_instance_id",
            "",
            _optional_text,
            "static group membership id (e.g. the pod name): a restart within the session "
            "timeout does not rebalance",
        ),
        Setting(
            "STREAMREC_KAFKA_SECURITY_PROTOCOL",
            "kafka.security_protocol",
            "PLAINTEXT",
            _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
            "how clients talk to Kafka",
        ),
        Setting(
            "STREAMREC_KAFKA_SASL_MECHANISM",
            "kafka.sasl_mechanism",
            "PLAIN",
            _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
            "SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)",
        ),
        Setting("STREAMREC_KAFKA_SASL_USERNAME", "kafka.sasl_username", "", _optional_text, "SASL user name"),
        Setting(
            "STREAMREC_KAFKA_SASL_PASSWORD",
            "kafka.sasl_password",
            "",
            _optional_text,
            "SASL password (mount it from a Secret)",
        ),
        Setting(
            "STREAMREC_KAFKA_SSL_CAFILE",
            "kafka.ssl_cafile",
            "",
            _optional_text,
            "CA bundle to verify the brokers (with SSL or SASL_SSL; default: the system's)",
        ),
        Setting(
            "STREAMREC_KAFKA_PROBE_TIMEOUT_S",
            "kafka.probe_timeout_s",
            "5",
            _number(0.1, 300),
            "at start, the longest wait per bootstrap server to connect, authenticate and get metadata",
        ),
        Setting(
            "STREAMREC_RETRAINER_DIR",
            "retrainer.dir",
            "var/retrainer",
            _path,
            "retrainer: where it keeps its rolling window of recent events (RocksDB)",
        ),
        Setting(
            "STREAMREC_RETRAIN_WINDOW_EVENTS",
            "retrainer.window_events",
            "500000",
            _integer(100, 100_000_000),
            "retrainer: most recent events kept for training",
        ),
        Setting(
            "STREAMREC_RETRAIN_EVERY_EVENTS",
            "retrainer.every_events",
            "50000",
            _integer(0, 100_000_000),
            "retrainer: train after this many new events (0: never by count)",
        ),
        Setting(
            "STREAMREC_RETRAIN_EVERY_S",
            "retrainer.every_s",
            "3600",
            _number(0, 30 * 86400),
            "retrainer: train after this many seconds with new events (0: never by time)",
        ),
        Setting(
            "STREAMREC_RETRAIN_EPOCHS",
            "retrainer.epochs",
            "3",
            _integer(1, 100),
            "retrainer: epochs per training, warm-started",
        ),
        Setting(
            "STREAMREC_RETRAIN_PRESET_FILE",
            "retrainer.preset_file",
            "",
            _optional_path,
            "retrainer: train with this preset file (from `streamrec tune`); default: the serving "
            "model's settings",
        ),
        Setting(
            "STREAMREC_RETRAIN_HOLDOUT",
            "retrainer.holdout",
            "0.1",
            _number(0.01, 0.5),
            "retrainer: share of the most recent sessions held out to compare candidate and current",
        ),
        Setting(
            "STREAMREC_RETRAIN_MARGIN",
            "retrainer.margin",
            "0.005",
            _number(0, 1),
            "retrainer: promote unless the candidate's recall@20 is worse than the current's by more",
        ),
        Setting(
            "STREAMREC_RETRAINER_METRICS_PORT",
            "retrainer.metrics_port",
            "6067",
            _integer(1, 65535),
            "retrainer: HTTP port of its Prometheus /metrics",
        ),
        Setting(
            "STREAMREC_RETRAIN_FIRST_MODEL_EVENTS",
            "retrainer.first_model_events",
            "10000",
            _integer(100, 100_000_000),
            "retrainer: with no model serving, train the first one once the window holds this many "
            "events (at most the window)",
        ),
        Setting(
            "STREAMREC_SHUTDOWN_TIMEOUT_S",
            "worker.shutdown_timeout_s",
            "30",
            _number(1, 3600),
            "after SIGTERM the worker flushes, commits and closes within this, else exits non-zero",
        ),
        Setting(
            "STREAMREC_BROKER_GRACE_S",
            "worker.broker_grace_s",
            "10",
            _number(1, 3600),
            "/readyz answers 503 once Kafka has not answered the worker for this long",
        ),
        Setting(
            "STREAMREC_WEB_PORT",
            "worker.web_port",
            "6066",
            _integer(1, 65535),
            "HTTP port for health, metrics and the query API",
        ),
        Setting(
            "STREAMREC_WEB_HOST",
            "worker.web_host",
            "",
            _optional_text,
            "host name or address at which the other workers reach this one's web port (queries for "
            "its users are forwarded there); default: the machine's host name",
        ),
        Setting(
            "STREAMREC_LOG_LEVEL",
            "log.level",
            "info",
            _choice("debug", "info", "warning", "error"),
            "log level",
        ),
        Setting(
            "STREAMREC_LOG_FORMAT",
            "log.format",
            "text",
            _choice("text", "json"),
            "text, or one JSON object per line",
        ),
    ]
}


@dataclass(frozen=True)
class KafkaSettings:
    """How every client reaches and authenticates to Kafka (both services)."""

    bootstrap_servers: str
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str | None
    sasl_password: str | None
    ssl_cafile: str | None
    probe_timeout_s: float


@dataclass(frozen=True)
class TopicsSettings:
    """The topics both services read or write, and how the streamer creates them."""

    click: str
    buy: str
    recommendations: str
    dead_letters: str
    partitions: int
    model_updates: str
    replication_factor: int
    catalog: str


@dataclass(frozen=True)
class ModelsSettings:
    """Where promoted model artifacts live (written by the retrainer, read by workers)."""

    store: Path
    fallback: Path


@dataclass(frozen=True)
class SessionsSettings:
    """What a session is, for serving and for training alike."""

    mode: str
    gap_s: float


@dataclass(frozen=True)
class WorkerSettings:
    """The streamer worker."""

    app_id: str
    data_dir: Path
    top_k: int
    exclude_current_item: bool
    exclude_session_items: bool
    exclude_bought_s: float
    bought_items: int
    popularity_half_life_s: float
    scorer: str
    ann_from_items: int
    ann_candidates: int
    ann_nprobe: int
    batch_max: int
    batch_within_ms: float
    recent_items: int
    recent_event_ids: int
    rocksdb_block_cache_mb: int
    rocksdb_write_buffer_mb: int
    max_future_skew_s: float
    standby_replicas: int
    session_timeout_s: float
    consumer_instance_id: str | None
    shutdown_timeout_s: float
    broker_grace_s: float
    web_port: int
    web_host: str | None


@dataclass(frozen=True)
class RetrainerSettings:
    """The retrainer service."""

    dir: Path
    window_events: int
    every_events: int
    every_s: float
    epochs: int
    preset_file: Path | None
    holdout: float
    margin: float
    metrics_port: int
    first_model_events: int


@dataclass(frozen=True)
class LogSettings:
    """Logging of both services."""

    level: str
    format: str


@dataclass(frozen=True)
class Settings:
    """Every setting, grouped by who uses it; built by :meth:`from_env`, one group per keyword."""

    kafka: KafkaSettings
    topics: TopicsSettings
    models: ModelsSettings
    sessions: SessionsSettings
    worker: WorkerSettings
    retrainer: RetrainerSettings
    log: LogSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str | None) -> "Settings":
        """Read every setting from ``env`` (default: the process environment) updated with
        ``overrides`` (variable name -> value; None leaves the variable alone); raise ConfigError."""
        env = dict(os.environ if env is None else env)
        env.update({k: v for k, v in overrides.items() if v is not None})
        groups: dict[str, dict[str, Any]] = {name: {} for name in _GROUPS}
        for setting in SETTINGS.values():
            group, name = setting.field.split(".")
            groups[group][name] = setting.parse(setting.env, env.get(setting.env, setting.default))
        settings = cls(**{group: _GROUPS[group](**values) for group, values in groups.items()})
        settings.check_security()
        return settings

    def check_security(self) -> None:
        kafka = self.kafka
        if kafka.security_protocol.startswith("SASL_") and not (kafka.sasl_username and kafka.sasl_password):
            raise ConfigError(
                "STREAMREC_KAFKA_SASL_USERNAME and STREAMREC_KAFKA_SASL_PASSWORD are required when "
                f"STREAMREC_KAFKA_SECURITY_PROTOCOL is {kafka.security_protocol}"
            )
        if kafka.ssl_cafile and not Path(kafka.ssl_cafile).is_file():
            raise ConfigError(f"STREAMREC_KAFKA_SSL_CAFILE: no file at {kafka.ssl_cafile}")

    def io_topics(self) -> list[str]:
        """The topics the streamer reads and writes (the state changelog is Faust's own)."""
        topics = self.topics
        return [topics.click, topics.buy, topics.recommendations, topics.dead_letters]

    @property
    def sequenced_topic(self) -> str:
        """Where the worker puts every valid input event on its user's partition (internal)."""
        return f"{self.worker.app_id}-sequenced"

    def topic_kinds(self) -> dict[str, str]:
        """Input topic name -> the event kind it carries ("click" or "buy")."""
        return {self.topics.click: "click", self.topics.buy: "buy"}


_GROUPS: dict[str, type] = {
    "kafka": KafkaSettings,
    "topics": TopicsSettings,
    "models": ModelsSettings,
    "sessions": SessionsSettings,
    "worker": WorkerSettings,
    "retrainer": RetrainerSettings,
    "log": LogSettings,
}

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


def _path(name: str, raw: str) -> Path:
    return Path(_text(name, raw)).expanduser()


@dataclass(frozen=True)
class Setting:
    env: str
    default: str | None
    parse: Callable[[str, str], Any]
    help: str


# The table the README documents; the order is the order of the README's table.
SETTINGS: dict[str, Setting] = {
    s.env: s
    for s in [
        Setting(
            "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", _bootstrap, "Kafka brokers, host:port[,host:port]"
        ),
        Setting(
            "STREAMREC_APP_ID",
            "streamrec",
            _text,
            "Faust app id: consumer group and prefix of the changelog topic",
        ),
        Setting("STREAMREC_CLICK_TOPIC", "click", _text, "topic of click (and cart) events"),
        Setting("STREAMREC_BUY_TOPIC", "buy", _text, "topic of buy events"),
        Setting("STREAMREC_RECOMMENDATIONS_TOPIC", "recommendations", _text, "output topic of top-K lists"),
        Setting(
            "STREAMREC_DEAD_LETTER_TOPIC",
            "streamrec-dead-letters",
            _text,
            "where input that cannot be applied goes, with the reason",
        ),
        Setting(
            "STREAMREC_TOPIC_PARTITIONS",
            "4",
            _integer(1, 10_000),
            "partitions of the sequencing topic and the state changelog (input topics: any count)",
        ),
        Setting(
            "STREAMREC_MODEL_UPDATES_TOPIC",
            "model-updates",
            _text,
            "compacted topic on which the retrainer announces promoted models",
        ),
        Setting(
            "STREAMREC_MODEL_STORE",
            "var/models/store",
            _path,
            "directory shared by the retrainer and the streamers holding promoted artifacts",
        ),
        Setting(
            "STREAMREC_MODEL_PATH",
            "var/models/current",
            _path,
            "artifact served when no announced model verifies",
        ),
        Setting("STREAMREC_DATA_DIR", "var/streamer", _path, "where the worker keeps its RocksDB state"),
        Setting("STREAMREC_TOP_K", "20", _integer(1, 1000), "items per recommendation list"),
        Setting(
            "STREAMREC_EXCLUDE_CURRENT_ITEM",
            "false",
            _flag,
            "leave the item just interacted with out of its list",
        ),
        Setting("STREAMREC_BATCH_MAX", "256", _integer(1, 100_000), "most events applied in one micro-batch"),
        Setting(
            "STREAMREC_BATCH_WITHIN_MS",
            "5",
            _number(0.1, 60_000),
            "longest wait to fill a micro-batch before applying what has arrived",
        ),
        Setting(
            "STREAMREC_SESSION_MODE",
            "session",
            _choice("session", "user"),
            "session: a new session starts from a zero state; user: the state carries over",
        ),
        Setting(
            "STREAMREC_SESSION_GAP_S",
            "1800",
            _number(1, 365 * 86400),
            "inactivity after which the next event starts a new session (session mode)",
        ),
        Setting(
            "STREAMREC_RECENT_ITEMS",
            "200",
            _integer(1, 10_000),
            "most recent items kept per user, used to re-encode the state under new weights",
        ),
        Setting(
            "STREAMREC_RECENT_EVENT_IDS",
            "32",
            _integer(1, 10_000),
            "most recent event ids kept per user: an event sent again with one of them is not applied twice",
        ),
        Setting(
            "STREAMREC_ROCKSDB_BLOCK_CACHE_MB",
            "128",
            _integer(1, 1_000_000),
            "RocksDB read cache per state partition on this worker",
        ),
        Setting(
            "STREAMREC_ROCKSDB_WRITE_BUFFER_MB",
            "64",
            _integer(1, 100_000),
            "RocksDB write buffer per state partition (up to 3 are kept in memory)",
        ),
        Setting(
            "STREAMREC_MAX_FUTURE_SKEW_S",
            "3600",
            _number(0, 365 * 86400),
            "events stamped further than this in the future are dead-lettered",
        ),
        Setting(
            "STREAMREC_REPLICATION_FACTOR",
            "1",
            _integer(1, 10),
            "replication factor of the topics the streamer creates (3 in production)",
        ),
        Setting(
            "STREAMREC_STANDBY_REPLICAS",
            "1",
            _integer(0, 10),
            "standby copies of each state partition kept warm on other workers",
        ),
        Setting(
            "STREAMREC_KAFKA_SESSION_TIMEOUT_S",
            "60",
            _number(6, 1800),
            "a worker silent this long leaves the group and its partitions move to others",
        ),
        Setting(
            "STREAMREC_CONSUMER_INSTANCE_ID",
            "",
            _optional_text,
            "static group membership id (e.g. the pod name): a restart within the session "
            "timeout does not rebalance",
        ),
        Setting(
            "STREAMREC_KAFKA_SECURITY_PROTOCOL",
            "PLAINTEXT",
            _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
            "how clients talk to Kafka",
        ),
        Setting(
            "STREAMREC_KAFKA_SASL_MECHANISM",
            "PLAIN",
            _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
            "SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)",
        ),
        Setting("STREAMREC_KAFKA_SASL_USERNAME", "", _optional_text, "SASL user name"),
        Setting(
            "STREAMREC_KAFKA_SASL_PASSWORD", "", _optional_text, "SASL password (mount it from a Secret)"
        ),
        Setting(
            "STREAMREC_KAFKA_SSL_CAFILE",
            "",
            _optional_text,
            "CA bundle to verify the brokers (with SSL or SASL_SSL; default: the system's)",
        ),
        Setting(
            "STREAMREC_KAFKA_PROBE_TIMEOUT_S",
            "5",
            _number(0.1, 300),
            "at start, the longest wait per bootstrap server to connect, authenticate and get metadata",
        ),
        Setting(
            "STREAMREC_RETRAINER_DIR",
            "var/retrainer",
            _path,
            "retrainer: where it keeps its rolling window of recent events (RocksDB)",
        ),
        Setting(
            "STREAMREC_RETRAIN_WINDOW_EVENTS",
            "500000",
            _integer(100, 100_000_000),
            "retrainer: most recent events kept for training",
        ),
        Setting(
            "STREAMREC_RETRAIN_EVERY_EVENTS",
            "50000",
            _integer(0, 100_000_000),
            "retrainer: train after this many new events (0: never by count)",
        ),
        Setting(
            "STREAMREC_RETRAIN_EVERY_S",
            "3600",
            _number(0, 30 * 86400),
            "retrainer: train after this many seconds with new events (0: never by time)",
        ),
        Setting(
            "STREAMREC_RETRAIN_EPOCHS", "3", _integer(1, 100), "retrainer: epochs per training, warm-started"
        ),
        Setting(
            "STREAMREC_RETRAIN_HOLDOUT",
            "0.1",
            _number(0.01, 0.5),
            "retrainer: share of the most recent sessions held out to compare candidate and current",
        ),
        Setting(
            "STREAMREC_RETRAIN_MARGIN",
            "0.005",
            _number(0, 1),
            "retrainer: promote unless the candidate's recall@20 is worse than the current's by more",
        ),
        Setting(
            "STREAMREC_RETRAINER_METRICS_PORT",
            "6067",
            _integer(1, 65535),
            "retrainer: HTTP port of its Prometheus /metrics",
        ),
        Setting(
            "STREAMREC_SHUTDOWN_TIMEOUT_S",
            "30",
            _number(1, 3600),
            "after SIGTERM the worker flushes, commits and closes within this, else exits non-zero",
        ),
        Setting(
            "STREAMREC_BROKER_GRACE_S",
            "10",
            _number(1, 3600),
            "/readyz answers 503 once Kafka has not answered the worker for this long",
        ),
        Setting("STREAMREC_WEB_PORT", "6066", _integer(1, 65535), "HTTP port for health and metrics"),
        Setting("STREAMREC_LOG_LEVEL", "info", _choice("debug", "info", "warning", "error"), "log level"),
        Setting("STREAMREC_LOG_FORMAT", "text", _choice("text", "json"), "text, or one JSON object per line"),
    ]
}


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    app_id: str
    click_topic: str
    buy_topic: str
    recommendations_topic: str
    dead_letter_topic: str
    topic_partitions: int
    model_updates_topic: str
    model_store: Path
    model_path: Path
    data_dir: Path
    top_k: int
    exclude_current_item: bool
    batch_max: int
    batch_within_ms: float
    session_mode: str
    session_gap_s: float
    recent_items: int
    recent_event_ids: int
    rocksdb_block_cache_mb: int
    rocksdb_write_buffer_mb: int
    max_future_skew_s: float
    replication_factor: int
    standby_replicas: int
    kafka_session_timeout_s: float
    consumer_instance_id: str | None
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str | None
    kafka_sasl_password: str | None
    kafka_ssl_cafile: str | None
    kafka_probe_timeout_s: float
    retrainer_dir: Path
    retrain_window_events: int
    retrain_every_events: int
    retrain_every_s: float
    retrain_epochs: int
    retrain_holdout: float
    retrain_margin: float
    retrainer_metrics_port: int
    shutdown_timeout_s: float
    broker_grace_s: float
    web_port: int
    log_level: str
    log_format: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str | None) -> "Settings":
        """Read every setting from ``env`` (default: the process environment) updated with
        ``overrides`` (variable name -> value; None leaves the variable alone); raise ConfigError."""
        env = dict(os.environ if env is None else env)
        env.update({k: v for k, v in overrides.items() if v is not None})
        values = []
        for setting in SETTINGS.values():
            raw = env.get(setting.env, setting.default)
            values.append(setting.parse(setting.env, raw))
        settings = cls(*values)
        settings.check_security()
        return settings

    def check_security(self) -> None:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ConfigError(
                "STREAMREC_KAFKA_SASL_USERNAME and STREAMREC_KAFKA_SASL_PASSWORD are required when "
                f"STREAMREC_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}"
            )
        if self.kafka_ssl_cafile and not Path(self.kafka_ssl_cafile).is_file():
            raise ConfigError(f"STREAMREC_KAFKA_SSL_CAFILE: no file at {self.kafka_ssl_cafile}")

    def io_topics(self) -> list[str]:
        """The topics the streamer reads and writes (the state changelog is Faust's own)."""
        return [self.click_topic, self.buy_topic, self.recommendations_topic, self.dead_letter_topic]

    @property
    def sequenced_topic(self) -> str:
        """Where the worker puts every valid input event on its user's partition (internal)."""
        return f"{self.app_id}-sequenced"

    def topic_kinds(self) -> dict[str, str]:
        """Input topic name -> the event kind it carries ("click" or "buy")."""
        return {self.click_topic: "click", self.buy_topic: "buy"}

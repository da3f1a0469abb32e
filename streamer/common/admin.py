"""Creating topics before anything produces to them, so partition counts and cleanup policies are
ours, not the broker's defaults (the state table's changelog must have as many partitions as the
input topics; model announcements must be compacted)."""

import contextlib
import time
from collections.abc import Iterator

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamer.common.kafka_config import kafka_python_config
from streamer.common.settings import Settings

COMPACTED = {"cleanup.policy": "compact"}


def ensure_topics(settings: Settings, names: list[str] | None = None) -> None:
    """Create the missing topics of ``names`` (default: the streamer's input and output topics)
    with ``STREAMREC_TOPIC_PARTITIONS`` partitions. Existing ones keep their partition count: records
    reach their user's partition of the sequencing topic whatever the input topics' count."""
    names = settings.io_topics() if names is None else names
    create_missing_topics(settings, _partitioned_topics(settings, names), check_partitions=False)


def ensure_worker_topics(settings: Settings, changelogs: list[str], timeout_s: float = 30.0) -> None:
    """Create the worker's missing topics (its input and output topics, the sequencing topic and the
    state changelogs, compacted as Faust makes them) and wait until the broker's metadata lists them all.

    Faust creates a missing internal topic itself, but just before its consumer joins the group, and
    a group leader whose metadata did not list the new topic yet assigned the group without it (seen on
    a first start: no partition of the sequencing topic consumed for minutes, so no list)."""
    specs = _partitioned_topics(settings, [*settings.io_topics(), settings.sequenced_topic])
    specs += _partitioned_topics(settings, changelogs, COMPACTED)
    with _admin(settings) as admin:
        _create_missing(admin, specs, check_partitions=False)
        _wait_until_listed(admin, [spec.name for spec in specs], timeout_s)


def _partitioned_topics(settings: Settings, names: list[str], configs: dict | None = None) -> list[NewTopic]:
    partitions, replicas = settings.topics.partitions, settings.topics.replication_factor
    return [NewTopic(name, partitions, replicas, topic_configs=configs) for name in names]


def _wait_until_listed(admin: KafkaAdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        described = admin.describe_topics(names)
        missing = [t["name"] for t in described if t["error_code"] or not _led(t["partitions"])]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {missing} not in the broker's metadata after {timeout_s:g} s")
        time.sleep(0.1)


def _led(partitions: list[dict]) -> bool:
    return bool(partitions) and all(partition["leader_id"] >= 0 for partition in partitions)


def ensure_model_updates_topic(settings: Settings) -> None:
    """One compacted partition: announcements are totally ordered and the latest is always kept."""
    create_missing_topics(settings, [_compacted_topic(settings, settings.topics.model_updates)])


def ensure_catalog_topic(settings: Settings) -> None:
    """Compacted, so each item's latest record is always kept; one partition when created here. An
    existing topic may have more: its readers follow every partition."""
    spec = _compacted_topic(settings, settings.topics.catalog)
    create_missing_topics(settings, [spec], check_partitions=False)


def _compacted_topic(settings: Settings, name: str) -> NewTopic:
    return NewTopic(name, 1, settings.topics.replication_factor, topic_configs=COMPACTED)


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    with _admin(settings) as admin:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}


@contextlib.contextmanager
def _admin(settings: Settings) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(client_id="streamrec-admin", **kafka_python_config(settings))
    try:
        yield admin
    finally:
        admin.close()


def create_missing_topics(settings: Settings, specs: list[NewTopic], check_partitions: bool = True) -> None:
    """Create the topics of ``specs`` that do not exist; raise if an existing one has another
    partition count than its spec (unless ``check_partitions`` is off)."""
    with _admin(settings) as admin:
        _create_missing(admin, specs, check_partitions)


def _create_missing(admin: KafkaAdminClient, specs: list[NewTopic], check_partitions: bool) -> None:
    existing = set(admin.list_topics())
    missing = [spec for spec in specs if spec.name not in existing]
    if missing:
        # Another client may create one concurrently; the partition check below still applies.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(missing)
    if not check_partitions:
        return
    wanted = {spec.name: spec.num_partitions for spec in specs if spec.name in existing}
    for topic in admin.describe_topics(list(wanted)):
        count = len(topic["partitions"])
        if count != wanted[topic["name"]]:
            raise ValueError(
                f"topic {topic['name']!r} has {count} partitions, {wanted[topic['name']]} are needed "
                "(see STREAMREC_TOPIC_PARTITIONS)"
            )

"""Create every topic streamrec uses before its first worker starts, with the deployment's partition
counts and cleanup policies rather than the broker's defaults, so the workers need no permission to
create topics. Topics that exist are kept; one with the wrong partition count fails the run.

* click, buy, recommendations, dead letters: STREAMREC_TOPIC_PARTITIONS partitions if missing
  (existing input topics may have any count)
* ``<app id>-sequenced`` (every valid event on its user's partition): as many partitions
* ``<app id>-user-state-changelog`` (Faust's table changelog): as many partitions, compacted
* ``<app id>-__assignor-__leader`` (Faust's leader election): 1 partition
* model updates: 1 partition, compacted
* item catalog: 1 partition, compacted (an existing one may have more)

Configured by the same environment as the workers (ConfigMap and Secret). Run by the create-topics
Job, or by hand: ``python deploy/create_topics.py``.
"""

from kafka.admin import NewTopic

from streamer.common.admin import (
    create_missing_topics,
    ensure_catalog_topic,
    ensure_model_updates_topic,
    ensure_topics,
)
from streamer.common.settings import Settings


def faust_topics(settings: Settings) -> list[NewTopic]:
    """The internal topics the Faust app would otherwise create at its first start."""
    replicas = settings.topics.replication_factor
    return [
        NewTopic(settings.sequenced_topic, settings.topics.partitions, replicas),
        NewTopic(
            f"{settings.worker.app_id}-user-state-changelog",
            settings.topics.partitions,
            replicas,
            topic_configs={"cleanup.policy": "compact"},
        ),
        NewTopic(f"{settings.worker.app_id}-__assignor-__leader", 1, replicas),
    ]


def main() -> None:
    settings = Settings.from_env()
    ensure_topics(settings)
    create_missing_topics(settings, faust_topics(settings))
    ensure_model_updates_topic(settings)
    ensure_catalog_topic(settings)
    print("streamrec topics are in place")


if __name__ == "__main__":
    main()

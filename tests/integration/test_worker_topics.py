"""A worker creates its topics before its consumer joins the group, and returns only once the broker's
metadata lists them: a group leader that assigned the group before the new sequencing topic was in
its metadata left that topic unconsumed for minutes on a first start."""

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from streamer.common.admin import _admin, ensure_worker_topics
from streamer.common.settings import Settings

pytestmark = pytest.mark.integration


def test_a_first_start_creates_every_topic_of_the_worker_with_the_changelog_compacted(
    kafka_bootstrap, unique_name
):
    app_id = unique_name("app")
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "STREAMREC_APP_ID": app_id,
            "STREAMREC_TOPIC_PARTITIONS": "3",
            "STREAMREC_CLICK_TOPIC": unique_name("click"),
            "STREAMREC_BUY_TOPIC": unique_name("buy"),
            "STREAMREC_RECOMMENDATIONS_TOPIC": unique_name("lists"),
            "STREAMREC_DEAD_LETTER_TOPIC": unique_name("dead"),
        }
    )
    changelog = f"{app_id}-user-state-changelog"
    names = [*settings.io_topics(), settings.sequenced_topic, changelog]

    ensure_worker_topics(settings, [changelog])
    ensure_worker_topics(settings, [changelog])  # a restart: nothing to create, nothing refused

    with _admin(settings) as admin:
        described = {topic["name"]: topic for topic in admin.describe_topics(names)}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, changelog)])
    assert sorted(described) == sorted(names)
    for name, topic in described.items():
        assert topic["error_code"] == 0, name
        assert len(topic["partitions"]) == 3, name
        assert all(partition["leader_id"] >= 0 for partition in topic["partitions"]), name
    assert configs["topic"][changelog]["cleanup.policy"]["value"] == "compact"

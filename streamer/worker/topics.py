"""The topics the streamer reads and writes. Keys and values are raw bytes: decoding and
validation happen in :mod:`streamer.worker.records`, so bad input becomes a dead letter, not a crash."""

from dataclasses import dataclass

import faust

from streamer.common.settings import Settings


@dataclass(frozen=True)
class Topics:
    events: faust.TopicT  # click and buy, consumed together and forwarded to ``sequenced``
    sequenced: faust.TopicT  # every valid event on its user's partition (streamer.worker.sequencing)
    recommendations: faust.TopicT
    dead_letters: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    def raw_topic(*names: str, internal: bool) -> faust.TopicT:
        # internal=True lets Faust create the topic with our partition count if it is missing.
        return app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topics.partitions,
            internal=internal,
        )

    return Topics(
        events=raw_topic(settings.topics.click, settings.topics.buy, internal=True),
        sequenced=raw_topic(settings.sequenced_topic, internal=True),
        recommendations=raw_topic(settings.topics.recommendations, internal=True),
        dead_letters=raw_topic(settings.topics.dead_letters, internal=True),
    )

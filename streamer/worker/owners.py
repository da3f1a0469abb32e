"""Which worker holds a user's state, as the group's last assignment says.

A user's state lives in partition ``user_partition(user_id)`` of the ``user-state`` table (the
partition of the user's sequenced events, :mod:`streamer.worker.sequencing`), and only the worker
assigned that partition of the table's changelog as active has it. Faust's assignor shares the web
URL of the worker holding each changelog partition with every member (``canonical_url``, built from
``STREAMREC_WEB_HOST`` and ``STREAMREC_WEB_PORT``); that is what a query for another worker's user is
forwarded to. The partition is computed here, not by Faust's table router: the store writes a user's
state to the partition of its events, murmur2 of the user id's bytes.
"""

import faust

from streamer.worker.sequencing import user_partition


def state_recovered(app: faust.App) -> bool:
    """Whether this worker's table partitions are fully recovered from their changelog and no
    rebalance is moving them: only then do its stored states answer for their users."""
    return app.tables.recovery.completed.is_set() and not app.in_recovery and not app.rebalancing


class StateOwners:
    def __init__(self, app: faust.App, changelog_topic: str, partitions: int) -> None:
        self.app = app
        self.changelog_topic = changelog_topic
        self.partitions = partitions

    @property
    def me(self) -> str:
        """This worker's web URL, as the assignor publishes it to the group."""
        return str(self.app.conf.canonical_url)

    def partition(self, user_id: str) -> int:
        return user_partition(user_id, self.partitions)

    def owner(self, partition: int) -> str | None:
        """The web URL of the worker holding ``partition`` of the state (None: nobody yet)."""
        topic = self.changelog_topic
        for url, partitions_by_topic in self.app.assignor.table_metadata(topic).items():
            if partition in partitions_by_topic.get(topic, ()):
                return url
        return None

    def recovered(self) -> bool:
        return state_recovered(self.app)

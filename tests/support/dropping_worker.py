"""A streamer worker whose consumer loses one fetched record the way Faust 0.15 does when a rebalance
interrupts a fetch, never carries out the seek back to it, and is SIGKILLed after two more offset
commits: the crash between a gap and its re-read. Run as ``python -m tests.support.dropping_worker
worker`` with ``DROP_TOPIC``, ``DROP_PARTITION`` and ``DROP_OFFSET`` set."""

import os
import signal
import sys

from faust.types import TP, Message

from streamer.worker import cli as worker_cli
from streamer.worker import consumer, routing

DROP = (os.environ["DROP_TOPIC"], int(os.environ["DROP_PARTITION"]), int(os.environ["DROP_OFFSET"]))


class DroppingConsumer(consumer.FetchDeliveringConsumer):
    dropped = False
    commits_to_crash: int | None = None  # Faust loses the events at its second commit past a gap

    async def seek(self, partition: TP, offset: int) -> None:
        if self.dropped and (partition.topic, partition.partition, offset) == DROP:
            self.commits_to_crash = 2
            return  # the re-read never comes
        await super().seek(partition, offset)

    async def commit(self, *args: object, **kwargs: object) -> bool:
        committed = await super().commit(*args, **kwargs)
        if self.commits_to_crash is not None:
            self.commits_to_crash -= 1
            if self.commits_to_crash == 0:
                os.kill(os.getpid(), signal.SIGKILL)
        return committed


class DroppingRouter(routing.Router):
    async def submit(self, messages: list[Message]) -> None:
        kept = [m for m in messages if (m.topic, m.partition, m.offset) != DROP or DroppingConsumer.dropped]
        DroppingConsumer.dropped = DroppingConsumer.dropped or len(kept) < len(messages)
        await super().submit(kept)  # fetched, never delivered: the consumer's position is past it


consumer.Transport.Consumer = DroppingConsumer
routing.Router = DroppingRouter

if __name__ == "__main__":  # run as the `worker` command is
    sys.exit(worker_cli.run(worker_cli.argparse.Namespace(loglevel=None)))

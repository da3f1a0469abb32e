"""A local broker that can crash (SIGKILL) and come back on the same ports with the same data.

A stand-in until ``LocalBroker`` has ``kill()`` and ``restart()`` of its own (another branch adds
them); it reaches into ``LocalBroker``'s launch details, which that change makes unnecessary.
"""

import dataclasses
import subprocess

from streamer.kafka_local.broker import _JVM_OPTIONS, LocalBroker, _java_command
from streamer.kafka_local.jars import ensure_kafka_jars, require_tool


class KillableBroker(LocalBroker):
    def kill(self) -> None:
        """kill -9 the broker's JVM: no controlled shutdown, connections drop at once."""
        assert self._proc is not None, "the broker is not running"
        self._proc.kill()
        self._proc.wait()

    def restart(self) -> None:
        """Start the killed broker again on its ports and log dirs; return once it answers."""
        state_dir = self._require_state_dir()
        command = _java_command(
            require_tool("java"),
            ensure_kafka_jars(self._progress),
            state_dir,
            *_JVM_OPTIONS,
            "kafka.Kafka",
            str(state_dir / "server.properties"),
        )
        with open(state_dir / "logs" / "stdout.log", "ab") as output:
            self._proc = subprocess.Popen(
                command,
                cwd=state_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._info = dataclasses.replace(self.info, pid=self._proc.pid)
        self._wait_until_ready()

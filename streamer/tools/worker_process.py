"""A streamrec service (``streamrec worker`` or ``streamrec retrainer``) in a child process, as it
runs in production. Used by the demo, the benchmarks and the end-to-end tests."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self


class WorkerProcess:
    def __init__(
        self, env: dict[str, str], log_path: Path, command: str = "worker", module: str = "streamer.cli"
    ) -> None:
        self.env = {**os.environ, **env}
        self.command = command
        self.module = module  # tests run a worker with a fault injected through their own module
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Self:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop the worker
            )
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> dict:
        """Poll ``/readyz`` until it answers 200; return its body. Raise if the worker dies first."""
        url = f"http://127.0.0.1:{self.env['STREAMREC_WEB_PORT']}/readyz"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the worker exited; its log ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return json.load(response)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)  # poll interval between readiness probes
        raise TimeoutError(f"the worker was not ready within {timeout_s}s; its log ends:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int:
        """Clean stop (SIGTERM: Faust flushes and commits); SIGKILL after ``timeout_s``. Exit code."""
        assert self.process is not None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> None:
        """Crash: SIGKILL, no flush, no commit."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

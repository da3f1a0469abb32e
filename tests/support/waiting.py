"""Polling for a condition with a deadline, instead of sleeping for a guessed time."""

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout_s: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # poll interval

"""Work done in steps: a generator that yields between slices of a few milliseconds and returns the
result. A serving worker runs the steps on its event loop between micro-batches (building a million
Python objects in one go would stop the loop, or, in a thread, make it wait on the GIL); anything
else runs them straight through with :func:`drain`."""

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")
Steps = Generator[None, None, T]


def drain(steps: Steps[T]) -> T:
    """Run ``steps`` through and return their result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value

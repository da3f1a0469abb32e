"""Repeated warnings and errors are held back and counted, in text and JSON output alike."""

import io
import json
import logging

import pytest

from streamer.common.logs import TEXT_FORMAT, JsonFormatter, RepeatLimiter

T0 = 1_800_000_000.0


class Scheduled:
    """Stands in for the limiter's timer: records the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, delay_s: float, action) -> None:
        self.delays.append(delay_s)


@pytest.fixture
def logger(request):
    logger = logging.getLogger(f"streamrec.test.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.handlers.clear()


def attach(logger: logging.Logger, limiter: RepeatLimiter, formatter: logging.Formatter) -> io.StringIO:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(limiter)
    logger.addHandler(handler)
    return out


def log_at(logger: logging.Logger, created: float, level: int, msg: str, *args: object) -> None:
    record = logger.makeRecord(logger.name, level, __file__, 0, msg, args, None)
    record.created = created
    logger.handle(record)


def test_the_first_error_passes_its_repeats_are_held_and_then_counted_in_one_line(logger):
    scheduled = Scheduled()
    limiter = RepeatLimiter(window_s=10, schedule=scheduled)
    out = attach(logger, limiter, logging.Formatter("%(levelname)s %(message)s"))
    for n in range(500):
        log_at(logger, T0 + n / 100, logging.ERROR, "Unable connect to node with id %s: %s", 1, f"try {n}")
    assert out.getvalue() == "ERROR Unable connect to node with id 1: try 0\n"
    assert scheduled.delays == [pytest.approx(10 - 0.01)]  # one timer, for the end of the window

    limiter.flush(now=T0 + 10)

    assert out.getvalue().splitlines()[1:] == [
        "ERROR Unable connect to node with id 1: try 499 (repeated 499 times in the last 10 s)"
    ]


def test_repeats_that_go_on_give_one_line_per_window(logger):
    limiter = RepeatLimiter(window_s=10, schedule=Scheduled())
    out = attach(logger, limiter, logging.Formatter("%(message)s"))
    for second in range(30):
        log_at(logger, T0 + second, logging.WARNING, "Unable to update metadata from %s", [1])
        limiter.flush(now=T0 + second + 0.5)
    assert out.getvalue().splitlines() == [
        "Unable to update metadata from [1]",
        "Unable to update metadata from [1] (repeated 10 times in the last 10 s)",
        "Unable to update metadata from [1] (repeated 10 times in the last 10 s)",
    ]


def test_templates_loggers_and_levels_are_limited_separately_and_info_never(logger):
    limiter = RepeatLimiter(window_s=10, schedule=Scheduled())
    out = attach(logger, limiter, logging.Formatter("%(name)s %(levelname)s %(message)s"))
    other = logging.getLogger(f"{logger.name}.other")
    for n in range(3):
        log_at(logger, T0 + n, logging.ERROR, "fetch failed: %s", n)
        log_at(logger, T0 + n, logging.WARNING, "fetch failed: %s", n)
        log_at(logger, T0 + n, logging.ERROR, "coordinator dead: %s", n)
        log_at(other, T0 + n, logging.ERROR, "fetch failed: %s", n)
        log_at(logger, T0 + n, logging.INFO, "joining group")
    lines = out.getvalue().splitlines()
    assert lines.count(f"{logger.name} INFO joining group") == 3
    assert [line for line in lines if "INFO" not in line] == [
        f"{logger.name} ERROR fetch failed: 0",
        f"{logger.name} WARNING fetch failed: 0",
        f"{logger.name} ERROR coordinator dead: 0",
        f"{other.name} ERROR fetch failed: 0",
    ]


def test_json_and_text_handlers_sharing_a_limiter_write_the_same_lines(logger):
    limiter = RepeatLimiter(window_s=10, schedule=Scheduled())
    as_json = attach(logger, limiter, JsonFormatter())
    as_text = attach(logger, limiter, logging.Formatter(TEXT_FORMAT))
    for n in range(5):
        log_at(logger, T0 + n, logging.ERROR, "Failed fetch messages from %s", 1)
    limiter.flush(now=T0 + 10)

    entries = [json.loads(line) for line in as_json.getvalue().splitlines()]
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("error", logger.name, "Failed fetch messages from 1"),
        ("error", logger.name, "Failed fetch messages from 1 (repeated 4 times in the last 10 s)"),
    ]
    assert [line.split(": ", 1)[1] for line in as_text.getvalue().splitlines()] == [
        e["message"] for e in entries
    ]

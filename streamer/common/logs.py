"""Log output: Faust's readable text by default, or one JSON object per line for log pipelines.
Either way, repeated warnings and errors are rate-limited (:class:`RepeatLimiter`)."""

import json
import logging
import logging.config
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """A ``dictConfig`` for ``log_format`` "json"; None keeps Faust's own text logging."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure_logging(log_format: str, level: str) -> None:
    """For processes that are not Faust workers (the retrainer)."""
    config = logging_config(log_format, level)
    if config is None:
        logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
    else:
        logging.config.dictConfig(config)
    for chatty in ("kafka", "aiokafka"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    install_repeat_limiter()


REPEAT_WINDOW_S = 10.0
_DECISION = "streamrec_repeat_pass"  # the limiter's verdict, kept on the record for further handlers


@dataclass
class _Window:
    start: float
    held: int = 0
    last_message: str = ""


def _start_timer(delay_s: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(delay_s, action)
    timer.daemon = True
    timer.start()


class RepeatLimiter(logging.Filter):
    """Lets the first warning or error of a kind (logger, level and message template) through, holds
    back its repeats for ``window_s``, then logs one line with the last of them and their count:
    ``<message> (repeated N times in the last 10 s)``. While repeats go on, a line per window.

    A broker outage made the worker log ~3,800 lines in 20 s, four templates of aiokafka's
    connection errors; with this, a few lines per template. Info and debug lines pass untouched.
    Install one instance on several handlers: a record gets one verdict, whichever handler asks first.
    """

    def __init__(
        self,
        window_s: float = REPEAT_WINDOW_S,
        schedule: Callable[[float, Callable[[], None]], None] = _start_timer,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self._schedule = schedule
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        verdict = getattr(record, _DECISION, None)
        if verdict is None:
            verdict = self._first_of_its_kind(record)
            setattr(record, _DECISION, verdict)
        return verdict

    def _first_of_its_kind(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            window = self._windows.get(key)
            # A window with repeats held stays open until flush() reports them, even if a timer is late.
            if window is None or (not window.held and record.created >= window.start + self.window_s):
                self._windows[key] = _Window(record.created)
                return True
            window.held += 1
            window.last_message = record.getMessage()
            first_held = window.held == 1
            end = window.start + self.window_s
        if first_held:
            self._schedule(max(0.0, end - record.created), self.flush)
        return False

    def flush(self, now: float | None = None) -> None:
        """Log the count of every window that has ended with repeats held back, and open a new window
        for each (the repeats may go on); forget the windows that ended without repeats."""
        now = time.time() if now is None else now
        summaries = []
        with self._lock:
            for key, window in list(self._windows.items()):
                if now < window.start + self.window_s:
                    continue
                if window.held:
                    summaries.append((key, window))
                    self._windows[key] = _Window(now)
                else:
                    del self._windows[key]
        for (name, level, _), window in summaries:
            logging.getLogger(name).log(
                level,
                "%s (repeated %d times in the last %g s)",
                window.last_message,
                window.held,
                self.window_s,
                extra={_DECISION: True},
            )


def install_repeat_limiter() -> None:
    """Put one :class:`RepeatLimiter` on every handler of the root logger (once logging is set up)."""
    limiter = RepeatLimiter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(limiter)

"""Log output: Faust's readable text by default, or one JSON object per line for log pipelines."""

import json
import logging
import logging.config
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

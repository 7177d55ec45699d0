"""How ``serve`` logs: plain text lines, or one JSON object a line (``--log-format json``, ``log_format: json``).

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``event``, plus what the service attached
to the line: ``service``, ``hookInstance``, ``status``, ``duration_ms``, ``cards``, ``method`` and ``path``. The
service's own lines name ids only (the hookInstance, the CDS service, never patient data); every line passes
through the credential scrubber (cds.service.redact) before it is written, exceptions included.

The configuration is given to uvicorn, which applies it in each worker process; the library itself never
configures logging (create_app does not).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from cds.service.redact import scrub_text

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# what the service attaches to its lines with ``extra=``; anything else on a record is left out
FIELDS = ("service", "hookInstance", "status", "duration_ms", "cards", "method", "path")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: the time, level, logger, ``event`` and the service's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or scrub_text(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = scrub_text(self.formatException(record.exc_info))
        elif record.exc_text:  # the scrubber replaced an exception that held a credential by this text
            line["traceback"] = scrub_text(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn's own loggers, in the given format."""
    formatter: dict[str, Any] = (
        {"()": "cds.service.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"scrub": {"()": "cds.service.redact.ScrubCredentials"}},
        "formatters": {"line": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["scrub"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        # uvicorn's loggers write through the same handler (uvicorn's own configuration gives them handlers)
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }

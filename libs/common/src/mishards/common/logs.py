"""The one logging setup of every service: LOG_LEVEL, LOG_PATH/LOG_NAME, rotation, text or JSON lines.

Every record carries the id of the request being served (`request_id`, the client's
`client-request-id` when it sent one) and the trace id when tracing is on, so the lines
of one request can be found together and next to its trace in Jaeger. Request payloads
(vectors) and credentials are never logged: handlers log names and counts only.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import logging.handlers
import os
import sys
import zoneinfo
from typing import Any

from mishards.common.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] [%(request_id)s] %(message)s"

# The id of the request this task serves; "-" outside of a request.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("mishards_request_id", default="-")


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits, "" when there is no recording span."""
    from opentelemetry import trace  # imported lazily: logging must work before tracing is set up

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


class RequestContextFilter(logging.Filter):
    """Adds `request_id` and `trace_id` to every record (a handler filter, so third-party loggers get them too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.trace_id = current_trace_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, request_id, trace_id, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            out["trace_id"] = trace_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def _zoned_converter(timezone: str) -> Any:
    try:
        zone = zoneinfo.ZoneInfo(timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")

    def convert(seconds: float | None) -> Any:
        return datetime.datetime.fromtimestamp(seconds or 0, zone).timetuple()

    return convert


def make_formatter(settings: Settings) -> logging.Formatter:
    """The formatter LOG_FORMAT asks for, with timestamps in TIMEZONE."""
    formatter: logging.Formatter = JsonFormatter() if settings.LOG_FORMAT == "json" else logging.Formatter(FORMAT)
    formatter.converter = _zoned_converter(settings.TIMEZONE)  # type: ignore[method-assign]
    return formatter


def setup_logging(settings: Settings, service: str) -> None:
    """Log to stderr and to LOG_PATH/LOG_NAME-<service>.log, rotated at LOG_MAX_BYTES, LOG_BACKUP_COUNT kept."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if settings.DEBUG else settings.LOG_LEVEL)
    formatter = make_formatter(settings)
    context = RequestContextFilter()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    stream.addFilter(context)
    root.addHandler(stream)
    if settings.LOG_PATH:
        os.makedirs(settings.LOG_PATH, exist_ok=True)
        path = os.path.join(settings.LOG_PATH, f"{settings.LOG_NAME}-{service}.log")
        rotating = logging.handlers.RotatingFileHandler(
            path, maxBytes=settings.LOG_MAX_BYTES, backupCount=settings.LOG_BACKUP_COUNT
        )
        rotating.setFormatter(formatter)
        rotating.addFilter(context)
        root.addHandler(rotating)
    # grpc and sqlalchemy are chatty at DEBUG; keep them at INFO unless SQL_ECHO asks.
    logging.getLogger("sqlalchemy").setLevel(logging.INFO if settings.SQL_ECHO else logging.WARNING)

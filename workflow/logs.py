"""Structured logging: one JSON object per line (python-json-logger), each carrying the ids
of what it is about (request, task, deal, bank) from a context variable every entry point sets.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _Base

# The ids in scope now (request_id, task_id, task_name, deal_id, bank_id, exporter): set by the
# web for a request, by the worker for a task; every log record gets them (ContextFilter).
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "xinbao_log_context", default=None
)

# An incoming X-Request-ID is kept only if it is this short and plain: it is written into
# every log line and sent on to the workers, so nothing a client sends may forge a line.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(raw: str | None) -> str | None:
    """``raw`` if it is an acceptable request id, else None."""
    return raw if raw and REQUEST_ID.fullmatch(raw) else None


def context() -> dict[str, str]:
    """The ids in scope now (a copy)."""
    return dict(_context.get() or {})


def current_request_id() -> str | None:
    return (_context.get() or {}).get("request_id")


def bind(**ids: Any) -> contextvars.Token:
    """Add ids to the context (None values are left out); undo with :func:`unbind`."""
    merged = {**(_context.get() or {}), **{k: str(v) for k, v in ids.items() if v is not None}}
    return _context.set(merged)


def unbind(token: contextvars.Token) -> None:
    try:
        _context.reset(token)
    except ValueError:
        # Set in another context (a signal handler run elsewhere): clear rather than leak.
        _context.set(None)


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """The ids added to the context for the duration of a ``with`` block."""
    token = bind(**ids)
    try:
        yield
    finally:
        unbind(token)


class ContextFilter(logging.Filter):
    """Copies the context's ids onto each record (an explicit ``extra`` of the same name wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(_Base):
    """``ts`` (UTC, ISO 8601 to the millisecond), ``level``, ``logger``, ``msg``, then every
    extra and context id; ``exc`` with the traceback."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                "message": "msg",
                "exc_info": "exc",
            },
            # Python 3.12 sets taskName (asyncio) on every record; it is never ours.
            reserved_attrs=[*RESERVED_ATTRS, "taskName"],
            json_ensure_ascii=False,
            json_default=str,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def configure_logging(level: str | None = None) -> None:
    """Send JSON lines to stderr; idempotent, so every entry point may call it."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        if level:
            root.setLevel(level)  # an explicit level wins (celery --loglevel); else left as is
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    # Python warnings (Celery's SecurityWarning, deprecations) as JSON lines too.
    logging.captureWarnings(True)

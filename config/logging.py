"""Logging for the whole server: readable text on a terminal, JSON lines otherwise."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeAlias

ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

#: Loggers that say too much at INFO: aioice and aiortc log every STUN exchange, Alembic its
#: plug-in set-up and dialect on every start.
NOISY = ("aioice", "aiortc", "engineio", "socketio", "alembic")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call gave with ``extra=``."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RESERVED and not key.startswith("_")
    }


def withheld_traceback(exc_info: ExcInfo) -> str:
    """A traceback's frames and exception classes, chained causes included, without any
    exception's message: a message may carry clinical text, chat, a token or an SDP."""
    error = exc_info[1]
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    lines: list[str] = []
    for error in reversed(chain):
        if lines:
            lines.append("\nThe exception above led to:\n\n")
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(error.__traceback__))
        kind = type(error)
        lines.append(f"{kind.__module__}.{kind.__qualname__} (message withheld)\n")
    return "".join(lines).rstrip("\n")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object a line; ``extra=`` fields become keys; tracebacks
    without exception messages (:func:`withheld_traceback`)."""

    def formatException(self, ei: Any) -> str:
        return withheld_traceback(ei)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **extra_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Formats a record as one line for a person: time, level, logger, message, ``key=value``;
    tracebacks without exception messages (:func:`withheld_traceback`)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatException(self, ei: Any) -> str:
        return withheld_traceback(ei)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = " ".join(f"{key}={value}" for key, value in extra_fields(record).items())
        return f"{line}  {fields}" if fields else line


def configure_logging(level: str = "INFO", fmt: Literal["auto", "json", "text"] = "auto") -> None:
    """Send every logger to stderr: as text when ``fmt`` is ``text``, or ``auto`` and stderr is a
    terminal; as JSON lines otherwise."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

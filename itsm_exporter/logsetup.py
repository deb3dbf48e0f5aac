"""Logging: key=value lines by default (logfmt, as Prometheus' own tools write), JSON on request."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from itsm_exporter.config import redact_urls

_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """Fields passed with `extra=`: structured context beside the message."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES and not k.startswith("_")}


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=... msg="..." key=value`: greppable, one line per event."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extra(record),
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return redact_urls(" ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items()))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines that parse JSON."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extra(record),
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return redact_urls(json.dumps(fields, default=str, ensure_ascii=False))


def configure_logging(level: str = "info", fmt: str = "logfmt", stream: TextIO | None = None) -> None:
    """Route every logger to stderr (stdout carries the exposition of `once`) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # urllib3 logs every retry and connection at INFO/DEBUG, with URLs: keep it quiet.
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))

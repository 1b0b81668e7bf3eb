"""One JSON object per line on stdout: the structured format Cloud Logging reads.

Cloud Logging takes `severity` and `message` from each line and keeps the other
fields as the entry's jsonPayload (`httpRequest` becomes the request summary),
so no logging client library is needed. Every line passes through a scrubber
that replaces any known secret (the DSN, the password) with "[redacted]",
whatever code wrote the line.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import threading
from urllib.parse import quote

REDACTED = "[redacted]"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def redact(value: str) -> None:
    """Never let `value` appear in a log line: as is, percent-encoded (inside a
    DSN), or escaped for JSON (lines are scrubbed after encoding)."""
    if value:
        forms = {value, quote(value, safe="")}
        forms |= {json.dumps(form, ensure_ascii=False)[1:-1] for form in forms}
        with _secrets_lock:
            _secrets.update(forms)


def scrub(text: str) -> str:
    # Longest first, so a DSN is replaced whole before the password inside it.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            # Only for bugs (500): faults are logged without a traceback.
            entry["stack_trace"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str, ensure_ascii=False))


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time, not the one at start-up
    (test runners and the framework's legacy mode replace it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure() -> None:
    """Send every logger's records to stdout as JSON lines (idempotent)."""
    root = logging.getLogger()
    if not any(isinstance(h, StdoutHandler) for h in root.handlers):
        handler = StdoutHandler()
        handler.setFormatter(CloudLoggingFormatter())
        root.addHandler(handler)
    level = logging.getLevelName(os.environ.get("LOG_LEVEL", "INFO").strip().upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)

"""One JSON object per line on standard output: the structured format Cloud Logging reads.

Cloud Logging takes `severity` and `message` from each line, groups lines under
their request by `logging.googleapis.com/trace`, takes labels from
`logging.googleapis.com/labels`, and keeps the other fields as the entry's
jsonPayload, so no logging client library is needed. Every value passes
through a scrubber that replaces any known secret (the DSN, the password) with
"[redacted]", whatever code wrote the line.

Lines go to the process's own standard output (`sys.__stdout__`): under
LOG_EXECUTION_ID functions-framework swaps `sys.stdout`, during each request,
for a wrapper that rewrites JSON lines and sets a decimal spanId where Cloud
Logging wants hex. This module adds the execution id label itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import quote

REDACTED = "[redacted]"
TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"
LABELS_FIELD = "logging.googleapis.com/labels"
# functions-framework gives each request an id in this header (the caller's, or
# one it generates) and, with LOG_EXECUTION_ID, labels its lines with it.
EXECUTION_ID_HEADER = "Function-Execution-Id"
# W3C Trace Context: version-traceid-parentid-flags, lower-case hex.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# Google's own header: TRACE_ID/SPAN_ID;o=OPTIONS, the span id in decimal.
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([0-9]+))?$")

# Every string value of a line is cut to this many characters (the cut is said),
# so a line's size is bounded whatever a request holds: a 10 MiB path is not logged whole.
MAX_VALUE_CHARS = 4096
# A secret is scrubbed before a value is cut; this much past the cut is scrubbed, so a
# secret that straddles it cannot survive in part.
_SCRUB_MARGIN = 4096

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Every known secret in one pattern, longest first, so a DSN is replaced whole
# before the password inside it.
_secrets_pattern: re.Pattern[str] | None = None
# The current request's fields (trace, execution id), added to every line written while serving it.
_request_fields: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("request_log_fields")
# The platform's id of the current invocation (Lambda's request id), on every line written during it.
_invocation_fields: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("invocation_log_fields")


class HeaderLookup(Protocol):
    def get(self, key: str, default: str) -> str: ...


def redact(value: str) -> None:
    """Never let `value` appear in a log line: as is, percent-encoded (inside a DSN),
    or escaped as JSON (a library may log a JSON document holding it)."""
    if not value:
        return
    # surrogateescape: bytes from the environment that are not UTF-8 are kept as
    # lone surrogates; percent-encoded, they are the original bytes.
    forms = {value, quote(value, safe="", errors="surrogateescape")}
    forms |= {
        json.dumps(form, ensure_ascii=ascii_only)[1:-1] for form in forms for ascii_only in (False, True)
    }
    global _secrets_pattern
    with _secrets_lock:
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_pattern = re.compile("|".join(map(re.escape, ordered)))


def scrub(text: str) -> str:
    pattern = _secrets_pattern
    return pattern.sub(REDACTED, text) if pattern is not None else text


def shortened(text: str, limit: int, length: int | None = None) -> str:
    """`text`, or its first `limit` characters and how long it was (`length`, when `text`
    is already a part of the original)."""
    total = len(text) if length is None else length
    if total <= limit:
        return text
    return f"{text[:limit]}... [cut: {total} characters in all]"


def _bounded(text: str) -> str:
    """Scrubbed, then cut: a secret is never cut in part before it is scrubbed."""
    if len(text) <= MAX_VALUE_CHARS:
        return scrub(text)
    return shortened(scrub(text[: MAX_VALUE_CHARS + _SCRUB_MARGIN]), MAX_VALUE_CHARS, len(text))


def _scrub_values(value: Any) -> Any:
    """Every string value scrubbed and bounded; keys are names the code chose, and stay."""
    if isinstance(value, str):
        return _bounded(value)
    if isinstance(value, dict):
        return {key: _scrub_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_values(item) for item in value]
    return _bounded(str(value)) if not isinstance(value, (int, float, bool, type(None))) else value


def trace_fields(headers: HeaderLookup, project: str) -> dict[str, Any]:
    """Cloud Logging's trace fields from `traceparent`, else `X-Cloud-Trace-Context`.

    Without a project the trace cannot be named (`projects/P/traces/T`), so no
    field is written rather than a wrong one; all-zero ids are invalid (W3C).
    """
    if not project:
        return {}
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip())
    if match and not _all_zero(match.group(1)) and not _all_zero(match.group(2)):
        trace_id, span_id, flags = match.groups()
        sampled = bool(int(flags, 16) & 1)
    else:
        match = _CLOUD_TRACE.match(headers.get("X-Cloud-Trace-Context", "").strip())
        if not match or _all_zero(match.group(1)):
            return {}
        trace_id, span_decimal, options = match.groups()
        trace_id = trace_id.lower()
        # Cloud Logging wants the span id as 16 hex digits; this header has it in decimal.
        span_id = f"{int(span_decimal):016x}" if span_decimal and 0 < int(span_decimal) < 2**64 else None
        sampled = options == "1"
    fields: dict[str, Any] = {TRACE_FIELD: f"projects/{project}/traces/{trace_id}", SAMPLED_FIELD: sampled}
    if span_id:
        fields[SPAN_FIELD] = span_id
    return fields


def _all_zero(hex_digits: str) -> bool:
    return not hex_digits.strip("0")


@contextlib.contextmanager
def request_scope(headers: HeaderLookup, project: str, *, label_execution_id: bool = False) -> Iterator[None]:
    """Every line written inside carries the request's trace fields (and, with
    `label_execution_id`, its execution id), and only its own."""
    fields = trace_fields(headers, project)
    execution_id = headers.get(EXECUTION_ID_HEADER, "").strip()
    if label_execution_id and execution_id:
        fields[LABELS_FIELD] = {"execution_id": execution_id}
    token = _request_fields.set(fields)
    try:
        yield
    finally:
        _request_fields.reset(token)


@contextlib.contextmanager
def invocation_scope(**fields: str) -> Iterator[None]:
    """Every line written inside carries `fields`: on Lambda, `requestId`, the name
    Lambda's own JSON log lines give the invocation's id, so CloudWatch can join them."""
    token = _invocation_fields.set(fields)
    try:
        yield
    finally:
        _invocation_fields.reset(token)


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "logger": record.name,
            **_invocation_fields.get({}),
            **_request_fields.get({}),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            # Only for bugs (500): faults are logged without a traceback.
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(_scrub_values(entry), ensure_ascii=False)


class StdoutHandler(logging.StreamHandler):
    """The function's handler: JSON lines on the process's standard output."""

    def __init__(self) -> None:
        super().__init__(sys.__stdout__)
        self.setFormatter(CloudLoggingFormatter())


def log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """An exception Python cannot raise (one in a finalizer: a dead connection's socket
    buffer flushed as it is collected) as one scrubbed line, not a traceback on stderr,
    which Cloud Logging would split into one entry per line."""
    error = unraisable.exc_value
    logging.getLogger("python").warning(
        "%s %r: %s: %s",
        unraisable.err_msg or "Exception ignored in",
        unraisable.object,
        type(error).__name__,
        error,
    )


def configure(level: str = "INFO") -> None:
    """Send every logger's records, and Python's unraisable exceptions, to stdout as
    JSON lines, each once (idempotent)."""
    sys.unraisablehook = log_unraisable
    root = logging.getLogger()
    for handler in list(root.handlers):
        # A bare StreamHandler on the root is what functions-framework's dictConfig
        # (LOG_EXECUTION_ID) and logging.basicConfig() install: it would write each
        # record a second time, unscrubbed. Handlers made for a purpose are kept.
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    if not any(isinstance(handler, StdoutHandler) for handler in root.handlers):
        root.addHandler(StdoutHandler())
    root.setLevel(level)

"""One JSON object per line on stdout: the structured format Cloud Logging reads.

Cloud Logging takes `severity` and `message` from each line, groups lines under
their request by `logging.googleapis.com/trace`, takes the entry's labels from
`logging.googleapis.com/labels`, and keeps the other fields as the entry's
jsonPayload, so no logging client library is needed. Every value passes through
a scrubber that replaces any known secret (the DSN, the password) with
"[redacted]", whatever code wrote the line; keys are never touched, so a
password that happens to be a field name ("status") damages nothing and gives
nothing away.

Each record is written once: `configure` makes this module's handler the only
one on the root logger that writes to a standard stream (functions-framework
installs its own when LOG_EXECUTION_ID is set), and the execution id that
handler would have added is on this module's lines instead.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TextIO
from urllib.parse import quote

REDACTED = "[redacted]"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Every known secret in one pattern, longest first (so a DSN is replaced whole
# before the password inside it): one scan of each value, however many secrets.
_secrets_pattern: re.Pattern[str] | None = None
# Every known secret as it appears inside a JSON string of an encoded line. JSON
# escapes character by character, so a value that holds a secret gives a line
# that holds its encoded form: looking for these few substrings in the finished
# line (C's substring search) tells whether any value needs scrubbing, for a
# fifth of what walking the values and running the pattern over them cost.
_secrets_in_line: tuple[str, ...] = ()
# Built once: json.dumps with any argument builds a new encoder on every call.
_LINE_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)

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

# The current request's trace fields, added to every line written while serving it.
_NO_FIELDS: dict[str, Any] = {}  # never changed: the fields outside any request
_request_fields: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "request_log_fields", default=_NO_FIELDS
)  # noqa: B039 - read-only default


class HeaderLookup(Protocol):
    def get(self, name: str, default: str = "") -> str: ...


def redact(value: str) -> None:
    """Never let `value` appear in a log line: as is, percent-encoded (inside a
    DSN), or escaped for JSON (a library may log a JSON document, with or
    without non-ASCII characters escaped as \\uXXXX)."""
    if value:
        # surrogateescape: a value read from the environment keeps bytes that are not
        # UTF-8 as lone surrogates, which strict encoding refuses; percent-encoded,
        # they are the original bytes, as a library re-encoding the value would print them.
        forms = {value, quote(value, safe="", errors="surrogateescape")}
        forms |= {
            json.dumps(form, ensure_ascii=ascii_only)[1:-1] for form in forms for ascii_only in (False, True)
        }
        global _secrets_pattern, _secrets_in_line
        with _secrets_lock:
            _secrets.update(forms)
            ordered = sorted(_secrets, key=len, reverse=True)
            _secrets_pattern = re.compile("|".join(map(re.escape, ordered)))
            _secrets_in_line = tuple({_LINE_ENCODER.encode(secret)[1:-1] for secret in ordered})


def scrub(text: str) -> str:
    pattern = _secrets_pattern
    return pattern.sub(REDACTED, text) if pattern is not None else text


def _scrub_values(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_values(item) for item in value]
    return value


def trace_fields(headers: HeaderLookup, project: str) -> dict[str, Any]:
    """Cloud Logging's trace fields from `traceparent`, else `X-Cloud-Trace-Context`.

    Without a project the trace cannot be named (`projects/P/traces/T`), so no
    field is written rather than a wrong one.
    """
    if not project:
        return {}
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip())
    if match and set(match.group(1)) != {"0"}:
        trace_id, span_id, flags = match.groups()
        sampled = bool(int(flags, 16) & 1)
    else:
        match = _CLOUD_TRACE.match(headers.get("X-Cloud-Trace-Context", "").strip())
        if not match:
            return {}
        trace_id, span_decimal, options = match.groups()
        trace_id = trace_id.lower()
        # Cloud Logging wants the span id as 16 hex digits; this header has it in decimal.
        span_id = f"{int(span_decimal):016x}" if span_decimal and int(span_decimal) < 2**64 else None
        sampled = options == "1"
    fields: dict[str, Any] = {TRACE_FIELD: f"projects/{project}/traces/{trace_id}", SAMPLED_FIELD: sampled}
    if span_id:
        fields[SPAN_FIELD] = span_id
    return fields


def execution_id_labels(headers: HeaderLookup) -> dict[str, Any]:
    """The `execution_id` label functions-framework would add under LOG_EXECUTION_ID."""
    execution_id = headers.get(EXECUTION_ID_HEADER, "").strip()
    return {LABELS_FIELD: {"execution_id": execution_id}} if execution_id else {}


def request_scope(headers: HeaderLookup, project: str, *, label_execution_id: bool = False) -> RequestScope:
    """Every line written inside carries the request's trace fields (and, with
    `label_execution_id`, its execution id), and only its own."""
    fields = trace_fields(headers, project)
    if label_execution_id:
        fields.update(execution_id_labels(headers))
    return RequestScope(fields)


class RequestScope:
    """The context manager request_scope returns (a class: cheaper per request than a generator)."""

    __slots__ = ("_fields", "_token")

    def __init__(self, fields: dict[str, Any]):
        self._fields = fields

    def __enter__(self) -> None:
        self._token = _request_fields.set(self._fields)

    def __exit__(self, *exc_info: object) -> None:
        _request_fields.reset(self._token)


# The last second formatted, and its text: lines written in the same second
# share it, so a line formats only its microseconds (a fifth of the formatter's CPU otherwise).
_second_text: tuple[int, str] = (-1, "")


def _rfc3339(created: float) -> str:
    """`created` (seconds since the epoch) in UTC, as datetime.isoformat() writes it."""
    global _second_text
    second = int(created)
    cached = _second_text
    if cached[0] != second:
        text = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _second_text = (second, text)
    return f"{cached[1]}.{int((created - second) * 1_000_000):06d}+00:00"


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": _rfc3339(record.created),
            "logger": record.name,
        }
        entry.update(_request_fields.get())
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            # Only for bugs (500): faults are logged without a traceback.
            entry["stack_trace"] = self.formatException(record.exc_info)
        line = _LINE_ENCODER.encode(entry)
        for secret in _secrets_in_line:
            if secret in line:
                # Scrub the values, never the keys. (A match may also be a key, or
                # span an escape: the values decide, and are scrubbed, not the line.)
                return json.dumps(
                    _scrub_values(entry), default=lambda value: scrub(str(value)), ensure_ascii=False
                )
        return line  # the usual case: nothing to scrub


def current_stdout() -> TextIO:
    return sys.stdout


class StdoutHandler(logging.StreamHandler):
    """Writes to the stream `find_stream` returns at each record, not the one at
    start-up: test runners replace sys.stdout, and so does functions-framework
    during each request under LOG_EXECUTION_ID."""

    def __init__(self, find_stream: Callable[[], TextIO] = current_stdout):
        super().__init__()
        self.find_stream = find_stream

    @property
    def stream(self):
        return self.find_stream()

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        # StreamHandler.emit, with the stream looked up once per line, not three times.
        try:
            stream = self.find_stream()
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own rule: a failed line never fails the caller
            self.handleError(record)


def _is_bare_stream_handler(handler: logging.Handler) -> bool:
    # A bare StreamHandler on the root is what functions-framework's dictConfig
    # (LOG_EXECUTION_ID) and logging.basicConfig() install: it would write each
    # record a second time, to stderr, unscrubbed. Subclasses made for a purpose
    # (a file, a test runner's capture) are left alone.
    return type(handler) is logging.StreamHandler


def configure(level: str = "INFO", stream: Callable[[], TextIO] = current_stdout) -> None:
    """Send every logger's records to `stream` (stdout) as JSON lines, once each (idempotent)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if _is_bare_stream_handler(h)]:
        root.removeHandler(handler)
    ours = [h for h in root.handlers if isinstance(h, StdoutHandler)]
    if ours:
        for handler in ours:
            handler.find_stream = stream
    else:
        handler = StdoutHandler(stream)
        handler.setFormatter(CloudLoggingFormatter())
        root.addHandler(handler)
    numeric = logging.getLevelName(level.strip().upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    # The line holds none of the process, thread or source-line facts a record
    # gathers by default: not collecting them is a third of a log call's cost
    # (the logging HOWTO's "Optimization" section lists these switches).
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12+, not yet in typeshed
    logging._srcfile = None  # no findCaller: the line names the logger, not the source line

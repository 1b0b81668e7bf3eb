"""The use case: a request in, an Outcome out. Knows nothing of Flask or HTTP servers.

    POST /   record an empty body, one event, or a batch of up to 500
    GET  /   health: one round trip to the database (HEAD too)
    other paths answer 404 and other methods 405, without touching the database

An entry point (main.py for the Functions Framework; a CloudEvent trigger or
another platform's handler would be a few lines more) turns its request into a
`Request`, calls `handle`, and sends the Outcome back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from core import logs
from core.body import MAX_BODY_BYTES
from core.events import parse_events
from core.outcomes import Outcome, RequestRejected, outcome_for_error
from core.runtime import Runtime
from core.scheduler import SchedulerDelivery, delivery_from_headers
from db.events import EventRecord, insert_events
from db.stats import RunStats

logger = logging.getLogger("events")

PATH = "/"
ALLOWED_METHODS = ("GET", "HEAD", "POST")


class RequestHeaders(Protocol):
    """What the core asks of a request's headers: values by case-insensitive name."""

    def get(self, name: str, default: str = "") -> str: ...

    def getlist(self, name: str) -> list[str]: ...


class Headers:
    """Request headers by case-insensitive name, every value of a repeated header kept."""

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name.lower(), []).append(value)

    def getlist(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), []))

    def get(self, name: str, default: str = "") -> str:
        values = self._values.get(name.lower())
        return values[0] if values else default


# A NamedTuple, not a dataclass: a dataclass's methods are generated and compiled
# at import, about 5 M instructions each, which every cold start pays (README, "Cold start").
class Request(NamedTuple):
    method: str
    path: str
    headers: RequestHeaders
    # Called only for a request that has a body to store (POST to the path), so
    # no other request waits for one.
    read_body: Callable[[], bytes] = lambda: b""
    # For the request's log line (Cloud Logging's httpRequest): the URL as the
    # server saw it, and the address of the peer that connected.
    url: str = ""
    remote_ip: str = ""
    delivery: SchedulerDelivery | None = None


def handle(runtime: Runtime, request: Request) -> Outcome:
    """Answer one request; never raises. Writes the request's one log line."""
    started = time.perf_counter()
    run_stats = RunStats()
    with logs.request_scope(
        request.headers, runtime.project(), label_execution_id=runtime.labels_execution_id()
    ):
        try:
            outcome = _route(runtime, request, run_stats)
        except Exception as exc:  # noqa: BLE001 - the one place errors become answers
            outcome = outcome_for_error(exc, statement_sent=run_stats.statement_sent)
        _log_request(request, outcome, run_stats, time.perf_counter() - started)
    return outcome


def health(runtime: Runtime, run_stats: RunStats | None = None) -> Outcome:
    # Checking a connection out of the pool pre-pings it, or opens a new one:
    # that single round trip is the health check, so nothing more is sent.
    runtime.database().run(lambda connection: None, run_stats)
    return Outcome(200, {"status": "ok"})


def ingest(
    runtime: Runtime,
    body: bytes,
    headers: RequestHeaders,
    run_stats: RunStats | None = None,
    delivery: SchedulerDelivery | None = None,
) -> Outcome:
    """Validate and store a body's events; repeated ids are stored once and counted as duplicates."""
    records = parse_events(body, delivery or delivery_from_headers(headers))
    # An id repeated inside one request is stored once (the first occurrence).
    first_by_id: dict[str, EventRecord] = {}
    for record in records:
        first_by_id.setdefault(record.id, record)
    unique = list(first_by_id.values())
    inserted = runtime.database().run(lambda connection: insert_events(connection, unique), run_stats)
    ids = [record.id for record in unique if record.id in inserted]
    body_out = {"inserted": len(ids), "duplicates": len(records) - len(ids), "ids": ids}
    return Outcome(201 if ids else 200, body_out, rows=len(ids))


def _route(runtime: Runtime, request: Request, run_stats: RunStats) -> Outcome:
    if request.path != PATH:
        raise RequestRejected(404, f"there is nothing at {request.path}; the function answers at {PATH}")
    if request.method in ("GET", "HEAD"):
        return health(runtime, run_stats)
    if request.method == "POST":
        body = request.read_body()
        if len(body) > MAX_BODY_BYTES:
            raise RequestRejected(413, f"the body is larger than the limit of {MAX_BODY_BYTES} bytes")
        return ingest(runtime, body, request.headers, run_stats, request.delivery)
    raise RequestRejected(
        405,
        f"method {request.method} is not allowed; use POST to record events, GET for health",
        headers={"Allow": ", ".join(ALLOWED_METHODS)},
    )


def _log_request(request: Request, outcome: Outcome, run_stats: RunStats, seconds: float) -> None:
    duration_ms = round(seconds * 1000, 2)
    logger.info(
        "%s %s %d",
        request.method,
        request.path,
        outcome.status,
        extra={
            "fields": {
                "status": outcome.status,
                "rows": outcome.rows,
                "duration_ms": duration_ms,
                "new_connection": run_stats.new_connection,
                "pool_wait_ms": run_stats.pool_wait_ms,
                "httpRequest": {
                    "requestMethod": request.method,
                    "requestUrl": _caller_url(request),
                    "status": outcome.status,
                    "userAgent": request.headers.get("User-Agent"),
                    "remoteIp": _caller_ip(request),
                    "latency": f"{seconds:.6f}s",
                },
            }
        },
    )


def _caller_ip(request: Request) -> str:
    # On Cloud Run the peer is Google's front end; it puts the caller's address
    # last in X-Forwarded-For (entries before it are whatever the caller sent).
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.remote_ip


def _caller_url(request: Request) -> str:
    # Google's front end ends TLS and forwards plain HTTP: the caller's scheme
    # is in X-Forwarded-Proto.
    url = request.url or request.path
    scheme = request.headers.get("X-Forwarded-Proto").strip().lower()
    if scheme in ("http", "https") and "://" in url:
        url = f"{scheme}://{url.split('://', 1)[1]}"
    return url

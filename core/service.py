"""The use case: a request in, an Outcome out. Knows nothing of Flask, HTTP servers or SQLAlchemy.

    POST /   record an empty body, one event, or a batch of up to 500
    GET  /   health: the INSERT can be prepared; one round trip when warm (HEAD too)
    other paths answer 404 and other methods 405, without touching the database

An entry point (main.py for the Functions Framework, aws/lambda_function.py for
AWS Lambda) turns its request into a `Request`, has runtime.py's Runtime call
`handle` with the instance's EventStore, and sends the Outcome back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from core import logs
from core.body import check_size, refuse_codings
from core.events import parse_events
from core.outcomes import Outcome, RequestRejected, outcome_for_error
from core.scheduler import SchedulerDelivery, delivery_from_headers
from core.store import EventRecord, EventStore, Receipt

logger = logging.getLogger("events")

PATH = "/"
ALLOWED_METHODS = ("GET", "HEAD", "POST")


class RequestHeaders(Protocol):
    """A request's headers by case-insensitive name, as Flask's and Headers below give them."""

    def get(self, key: str, default: str) -> str: ...

    def getlist(self, name: str) -> list[str]: ...


class Headers:
    """Request headers from (name, value) pairs, for platforms that hand over a plain list or dict."""

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name.lower(), []).append(value)

    def getlist(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), []))

    def get(self, name: str, default: str = "") -> str:
        values = self._values.get(name.lower())
        return values[0] if values else default


class Request(NamedTuple):
    method: str
    path: str
    headers: RequestHeaders
    # Called only for a request whose body is stored (POST to the path), so no
    # other request waits for one; raises RequestRejected for a body it cannot have.
    read_body: Callable[[], bytes] = lambda: b""
    # For the request's log line: the URL as the server saw it, and the peer's address.
    url: str = ""
    remote_ip: str = ""
    # A scheduled delivery the platform describes itself (not by Cloud Scheduler's headers).
    delivery: SchedulerDelivery | None = None


class Settings(NamedTuple):
    """What the use case reads of the configuration: how it labels its log lines."""

    google_cloud_project: str = ""
    log_execution_id: bool = False


def handle(store: EventStore, request: Request, settings: Settings) -> Outcome:
    """Answer one request; never raises. Writes the request's one log line."""
    started = time.perf_counter()
    with logs.request_scope(
        request.headers, settings.google_cloud_project, label_execution_id=settings.log_execution_id
    ):
        facts: dict[str, object] = {}
        try:
            outcome = _route(store, request, facts)
        except Exception as exc:  # noqa: BLE001 - the one place errors become answers
            outcome = outcome_for_error(exc)
        _log_request(request, outcome, facts, time.perf_counter() - started)
    return outcome


def _route(store: EventStore, request: Request, facts: dict[str, object]) -> Outcome:
    if request.path != PATH:
        # A long path is not echoed whole (a client may send megabytes of it).
        shown = logs.shortened(request.path, 100)
        raise RequestRejected(404, f"there is nothing at {shown}; the function answers at {PATH}")
    if request.method in ("GET", "HEAD"):
        return health(store, facts)
    if request.method == "POST":
        delivery = request.delivery or delivery_from_headers(request.headers)
        refuse_codings(request.headers)  # on every platform, before the body is read
        return ingest(store, check_size(request.read_body()), delivery, facts)
    raise RequestRejected(
        405,
        f"method {request.method} is not allowed; use POST to record events, GET for health",
        headers={"Allow": ", ".join(ALLOWED_METHODS)},
    )


def health(store: EventStore, facts: dict[str, object]) -> Outcome:
    """200 only if an event could be stored now: the store is reached and accepts the INSERT."""
    _note(facts, store.check())
    return Outcome(200, {"status": "ok"})


def ingest(
    store: EventStore, body: bytes, delivery: SchedulerDelivery | None, facts: dict[str, object]
) -> Outcome:
    """Validate and store a body's events; repeated ids are stored once and counted as duplicates."""
    records = parse_events(body, delivery)
    # An id repeated inside one request is stored once (the first occurrence).
    first_by_id: dict[str, EventRecord] = {}
    for record in records:
        first_by_id.setdefault(record.id, record)
    unique = list(first_by_id.values())
    receipt = _note(facts, store.store(unique))
    ids = [record.id for record in unique if record.id in receipt.new_ids]
    body_out = {"inserted": len(ids), "duplicates": len(records) - len(ids), "ids": ids}
    return Outcome(201 if ids else 200, body_out, rows=len(ids))


def _note(facts: dict[str, object], receipt: Receipt) -> Receipt:
    facts.update(new_connection=receipt.new_connection, checkout_ms=receipt.checkout_ms)
    return receipt


def _log_request(request: Request, outcome: Outcome, facts: dict[str, object], seconds: float) -> None:
    logger.info(
        "%s %s %d",
        request.method,
        request.path,
        outcome.status,
        extra={
            "fields": {
                "status": outcome.status,
                "rows": outcome.rows,
                "duration_ms": round(seconds * 1000, 2),
                "new_connection": facts.get("new_connection", False),
                "checkout_ms": facts.get("checkout_ms", 0.0),
                "httpRequest": {
                    "requestMethod": request.method,
                    "requestUrl": _caller_url(request),
                    "status": outcome.status,
                    "userAgent": request.headers.get("User-Agent", ""),
                    "remoteIp": _caller_ip(request),
                    "latency": f"{seconds:.6f}s",
                },
            }
        },
    )


def _caller_ip(request: Request) -> str:
    # On Cloud Run the peer is Google's front end; it puts the caller's address
    # last in X-Forwarded-For (entries before it are whatever the caller sent).
    forwarded = request.headers.get("X-Forwarded-For", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    return last or request.remote_ip


def _caller_url(request: Request) -> str:
    # Google's front end ends TLS and forwards plain HTTP: the caller's scheme
    # is in X-Forwarded-Proto.
    url = request.url or request.path
    scheme = request.headers.get("X-Forwarded-Proto", "").strip().lower()
    if scheme in ("http", "https") and "://" in url:
        url = f"{scheme}://{url.split('://', 1)[1]}"
    return url

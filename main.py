"""The events function: HTTP in, rows in CockroachDB out.

    POST /   record an empty body, one event, or a batch of up to 500
    GET  /   health: one round trip to the database

The database engine is a module-level global, built on the first request that
needs it and reused by every later request on this instance (CockroachDB's
serverless best practice: a pool that persists across invocations).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import flask
import functions_framework

from app import logs
from app.events import MAX_BODY_BYTES, parse_events
from app.rejection import RequestRejected
from app.scheduler import delivery_from_headers
from db import errors
from db.database import Database
from db.events import EventRecord, insert_events
from db.secret import DsnSource, SecretUnavailable
from db.settings import ConfigurationError, Settings

logs.configure()
logger = logging.getLogger("events")

# Seconds a caller should wait before retrying after a 503.
RETRY_AFTER_SECONDS = 5

_database: Database | None = None
_database_lock = threading.Lock()


def get_database() -> Database:
    """The instance's Database, created on first use (not at import, not per request)."""
    global _database
    if _database is None:
        with _database_lock:
            if _database is None:
                settings = Settings.from_environment()
                source = DsnSource.from_environment(settings.secret_timeout)
                _database = Database(settings, source, on_secret=logs.redact)
    return _database


@functions_framework.http
def handler(request: flask.Request) -> flask.Response:
    started = time.perf_counter()
    status, body, rows = _respond(request)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
    if status == 405:
        headers["Allow"] = "GET, HEAD, POST"
    database = _database
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    logger.info(
        "%s %s %d", request.method, request.path, status,
        extra={"fields": {
            "status": status,
            "rows": rows,
            "duration_ms": duration_ms,
            "new_connection": bool(database and database.opened_connection()),
            "httpRequest": {"requestMethod": request.method, "status": status,
                            "latency": f"{duration_ms / 1000:.6f}s"},
        }},
    )
    return flask.Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


def _respond(request: flask.Request) -> tuple[int, dict, int]:
    """(status, JSON body, rows inserted) for a request; never raises."""
    try:
        if request.method in ("GET", "HEAD"):
            return _health()
        if request.method == "POST":
            return _ingest(request)
        return 405, {"error": f"method {request.method} is not allowed; use POST to record events, GET for health"}, 0
    except RequestRejected as rejection:
        logger.warning("rejected request: %s", rejection.message)
        return rejection.status, {"error": rejection.message}, 0
    except (ConfigurationError, SecretUnavailable) as fault:
        logger.error("database configuration unavailable: %s", fault)
        return 503, {"error": "the database is unavailable; retry later"}, 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: classify, never leak
        if errors.is_unavailable(exc):
            logger.error("database unavailable: %s: %s", type(exc).__name__, errors.server_message(exc))
            return 503, {"error": "the database is unavailable; retry later"}, 0
        if errors.is_data_exception(exc):
            message = errors.server_message(exc)
            logger.warning("the database refused a value: %s", message)
            return 400, {"error": f"the database refused a value: {message}"}, 0
        logger.exception("unexpected error")
        return 500, {"error": "internal error"}, 0


def _health() -> tuple[int, dict, int]:
    # Checking a connection out of the pool pre-pings it, or opens a new one:
    # that single round trip is the health check, so nothing more is sent.
    get_database().run(lambda connection: None)
    return 200, {"status": "ok"}, 0


def _ingest(request: flask.Request) -> tuple[int, dict, int]:
    records = parse_events(_read_body(request), delivery_from_headers(request.headers))
    # An id repeated inside one request is stored once (the first occurrence)
    # and counted as a duplicate.
    first_by_id: dict[str, EventRecord] = {}
    for record in records:
        first_by_id.setdefault(record.id, record)
    unique = list(first_by_id.values())
    inserted = get_database().run(lambda connection: insert_events(connection, unique))
    ids = [record.id for record in unique if record.id in inserted]
    body = {"inserted": len(ids), "duplicates": len(records) - len(ids), "ids": ids}
    return (201 if ids else 200), body, len(ids)


def _read_body(request: flask.Request) -> bytes:
    # Parsed as JSON whatever the Content-Type: Cloud Scheduler's HTTP targets
    # send application/octet-stream unless the job sets a header.
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is {request.content_length} bytes; the limit is {MAX_BODY_BYTES}")
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is larger than the limit of {MAX_BODY_BYTES} bytes")
    return body

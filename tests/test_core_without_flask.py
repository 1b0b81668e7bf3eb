"""The core is usable without Flask or any HTTP server: a Request in, an Outcome out.

This is what a second entry point (a CloudEvent trigger, another platform's
handler) builds on: the same validation, statuses, storage and log line.
"""

import io
import json

import pytest

from core import logs, service
from core.body import read_body
from core.outcomes import RequestRejected
from core.runtime import Runtime


def request(method="POST", path="/", body=b"", headers=()):
    return service.Request(method=method, path=path, headers=service.Headers(headers), read_body=lambda: body)


@pytest.fixture
def runtime(events_db):
    runtime = Runtime(environ={"DATABASE_URL": events_db.dsn()})
    yield runtime
    runtime.close()


def test_an_event_is_stored_through_the_core_alone(runtime, events_db, capfd):
    logs.configure()  # what any entry point does once, at import
    outcome = service.handle(runtime, request(body=b'{"kind": "core", "payload": {"n": 1}}'))
    assert outcome.status == 201 and outcome.rows == 1
    [event_id] = outcome.body["ids"]
    assert events_db.rows()[event_id] == {"kind": "core", "payload": {"n": 1}, "scheduled_at": None}
    [line] = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"POST / 201"' in line]
    assert line["rows"] == 1


def test_health_unknown_paths_and_methods(runtime, events_db):
    assert service.handle(runtime, request("GET")).status == 200
    fresh = Runtime(environ={"DATABASE_URL": events_db.dsn()})  # an instance that has not connected
    events_db.reset_connection_log()
    missing = service.handle(fresh, request("GET", path="/other"))
    assert (missing.status, missing.body["error"]) == (
        404,
        "there is nothing at /other; the function answers at /",
    )
    refused = service.handle(fresh, request("PUT"))
    assert refused.status == 405 and refused.headers["Allow"] == "GET, HEAD, POST"
    assert events_db.connections_opened() == 0


def test_faults_become_503_with_retry_after_not_exceptions(events_db):
    runtime = Runtime(environ={"DATABASE_URL": events_db.dsn(database="no_such_database")})
    outcome = service.handle(runtime, request(body=b"{}"))
    runtime.close()
    assert outcome.status == 503 and outcome.headers["Retry-After"] == "5"


def test_the_body_rules_work_on_any_stream():
    assert read_body(io.BytesIO(b'{"a": 1}'), 8, time_limit=1) == b'{"a": 1}'
    with pytest.raises(RequestRejected) as short:
        read_body(io.BytesIO(b"{}"), 100, time_limit=1)
    assert short.value.status == 400 and "ended after 2 of the 100 bytes" in short.value.message
    with pytest.raises(RequestRejected) as large:
        read_body(io.BytesIO(b""), 2 * 1024 * 1024, time_limit=1)
    assert large.value.status == 413

"""The function's HTTP API: served by the real `functions-framework` command, and its core
driven with no web framework at all.

- Only "/" is the function's: any other path is a 404 with a JSON body, answered
  without touching the database (not even building the engine).
- Over HTTP, through the `functions-framework` command: JSON bodies, batches and
  Scheduler deliveries become rows, and the answers carry the documented statuses.
- The core is usable without Flask or any HTTP server: a Request in, an Outcome out.
  This is what a second entry point (a CloudEvent trigger, another platform's
  handler) builds on: the same validation, statuses, storage and log line.
"""

import datetime
import io
import json
import uuid
from decimal import Decimal

import pytest
from function_harness import FunctionServer, free_port

from core import logs, service
from core.body import read_body
from core.events import FIELDS
from core.outcomes import RequestRejected
from devtools.deadlines import scaled
from runtime import Runtime


# First in the module: these count the database's connections, and `server` below holds
# one from its first test to the end of the module.
@pytest.fixture(scope="module")
def untouched_server(events_server, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("not-found") / "function.log"
    with FunctionServer({"DATABASE_URL": events_server.dsn()}, log_path) as running:
        yield running


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/foo"), ("POST", "/foo"), ("GET", "/healthz"), ("HEAD", "/foo/"), ("PUT", "/events")],
)
def test_other_paths_are_404_json_without_a_database_connection(untouched_server, events_db, method, path):
    reply = untouched_server.request(
        method, b'{"kind": "lost"}' if method in ("POST", "PUT") else None, path=path
    )
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json"
    if method != "HEAD":
        assert "the function answers at /" in reply.json()["error"]
    assert events_db.connections_opened() == 0
    assert events_db.connection_count() == 0
    assert events_db.rows() == {}
    assert not [line for line in untouched_server.log_lines() if line.get("logger") == "db.database"]


SCHEDULER_HEADERS = {
    "X-CloudScheduler": "true",
    "X-CloudScheduler-JobName": "nightly-report",
    "X-CloudScheduler-ScheduleTime": "2026-11-25T09:00:00.52Z",
    "Content-Type": "application/octet-stream",
    "User-Agent": "Google-Cloud-Scheduler",
}


@pytest.fixture(scope="module")
def server(events_server, tmp_path_factory):
    db = events_server
    with FunctionServer(
        {"DATABASE_URL": db.dsn()}, tmp_path_factory.mktemp("ff") / "function.log"
    ) as running:
        yield running


def test_scheduler_delivery_with_octet_stream_body_is_recorded(server, events_db):
    reply = server.request(body=b"", headers=SCHEDULER_HEADERS)
    assert reply.status == 201
    [event_id] = reply.json()["ids"]
    row = events_db.rows()[event_id]
    assert row["kind"] == "nightly-report"
    assert row["scheduled_at"].isoformat() == "2026-11-25T09:00:00.520000+00:00"


def test_retried_scheduler_delivery_inserts_nothing_new(server, events_db):
    first = server.request(body=b"", headers=SCHEDULER_HEADERS)
    retry = server.request(body=b"", headers=SCHEDULER_HEADERS)
    assert first.status == 201
    assert retry.status == 200
    assert retry.json() == {"inserted": 0, "duplicates": 1, "ids": []}
    assert len(events_db.rows()) == 1


def test_scheduler_body_sent_as_octet_stream_is_parsed_as_json(server, events_db):
    reply = server.request(body=b'{"payload": {"report": "daily"}}', headers=SCHEDULER_HEADERS)
    assert reply.status == 201
    [row] = events_db.rows().values()
    assert row["payload"] == {"report": "daily"}


def test_batch_is_inserted_in_one_request_with_ids_in_order(server, events_db):
    events = [{"id": str(uuid.uuid4()), "kind": "batch", "payload": {"n": n}} for n in range(500)]
    reply = server.request(body=json.dumps(events).encode(), headers={"Content-Type": "application/json"})
    assert reply.status == 201
    body = reply.json()
    assert body["inserted"] == 500 and body["duplicates"] == 0
    assert body["ids"] == [event["id"] for event in events]
    assert len(events_db.rows()) == 500


def test_batch_with_some_known_ids_reports_them_as_duplicates(server, events_db):
    known = str(uuid.uuid4())
    server.request(body=json.dumps({"id": known}).encode())
    fresh = str(uuid.uuid4())
    reply = server.request(body=json.dumps([{"id": known}, {"id": fresh}, {"id": fresh}]).encode())
    assert reply.status == 201
    assert reply.json() == {"inserted": 1, "duplicates": 2, "ids": [fresh]}


def test_client_supplied_id_makes_a_retry_idempotent(server, events_db):
    event = json.dumps({"id": str(uuid.uuid4()), "kind": "payment", "payload": {"cents": 1250}}).encode()
    assert server.request(body=event).status == 201
    assert server.request(body=event).status == 200
    assert len(events_db.rows()) == 1


# A value, as JSON text, for every field core.events accepts: each must come back
# unchanged from the events column of its name. A field added to core.events.FIELDS
# without a value here fails the test below, and one accepted but not stored fails it too.
FIELD_SAMPLES = {
    "id": '"0b7e3c1d-5a4f-4c2e-9d8b-7f6a5e4d3c2b"',
    "kind": '"read back ✓"',
    "payload": '{"text": "é\\u00e9 ✓", "big": 123456789012345678901234567890, "fraction": 0.1000000000000000055,'
    ' "nested": [true, null, {"empty": []}], "empty": {}}',
}


def stored_row(events_db, event_id: str) -> dict:
    """The event's row, every column by name, numbers exactly as stored."""
    [[text]] = events_db.execute(
        "SELECT to_jsonb(e)::text FROM events e WHERE id = CAST(:id AS UUID)", id=event_id
    )
    return json.loads(text, parse_float=Decimal)


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_the_rules_accept_is_read_back_from_its_row(server, events_db, field):
    sample = FIELD_SAMPLES.get(field)
    assert sample is not None, f"core.events accepts {field!r}: give it a value in FIELD_SAMPLES"
    reply = server.request(body=f'{{"{field}": {sample}}}'.encode())
    assert reply.status == 201, reply.body
    [event_id] = reply.json()["ids"]
    assert stored_row(events_db, event_id).get(field) == json.loads(sample, parse_float=Decimal)


def test_a_scheduler_delivery_stores_the_job_name_as_kind_and_the_schedule_time(server, events_db):
    reply = server.request(body=b"", headers=SCHEDULER_HEADERS)
    [event_id] = reply.json()["ids"]
    row = stored_row(events_db, event_id)
    assert row["kind"] == SCHEDULER_HEADERS["X-CloudScheduler-JobName"]
    scheduled = datetime.datetime.fromisoformat(row["scheduled_at"])
    assert scheduled == datetime.datetime(2026, 11, 25, 9, 0, 0, 520000, tzinfo=datetime.UTC)


def test_health_is_ok(server):
    reply = server.request("GET")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(server, method):
    reply = server.request(method, body=b"{}")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD, POST"


def test_a_request_target_over_8_kib_is_414_without_echoing_it(server, events_db):
    for target in ("/" + "p" * 9000, "/?q=" + "p" * 9000):
        reply = server.request("POST", body=b"{}", path=target)
        assert reply.status == 414
        assert "the limit is 8192" in reply.json()["error"] and "ppp" not in reply.body.decode()
    assert "ppp" not in server.stdout_text()
    assert events_db.rows() == {}


def test_a_long_unknown_path_is_neither_echoed_whole_nor_logged_whole(server, events_db):
    path = "/" + "q" * 8000
    reply = server.request("GET", path=path)
    assert reply.status == 404 and len(reply.body) < 300
    lines = [line for line in server.stdout_text().splitlines() if "qqqq" in line]
    assert lines and all(len(line) < 12_000 and "[cut: " in line for line in lines)


@pytest.mark.parametrize("path", ["//", "//x", "///"])
def test_paths_with_a_doubled_slash_are_404(server, events_db, path):
    assert server.request("POST", body=b'{"kind": "slashes"}', path=path).status == 404
    assert events_db.rows() == {}


@pytest.mark.parametrize(
    "headers, status, names",
    [
        ({"Content-Encoding": "gzip"}, 415, "Content-Encoding is not supported"),
        ({"Transfer-Encoding": "gzip, chunked"}, 400, "Transfer-Encoding may only be chunked"),
    ],
    ids=["content-encoding", "transfer-coding"],
)
def test_a_body_coding_the_function_would_not_undo_is_refused(server, events_db, headers, status, names):
    body = b'{"kind": "encoded"}'
    if "Transfer-Encoding" in headers:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    reply = server.request("POST", body=body, headers=headers)
    assert reply.status == status and names in reply.json()["error"]
    assert "gzip" not in reply.json()["error"]
    assert events_db.rows() == {}


def test_malformed_json_is_400_naming_the_problem(server, events_db):
    reply = server.request(body=b'{"kind": ', headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert "not valid JSON" in reply.json()["error"]
    assert events_db.rows() == {}


def test_each_request_logs_exactly_one_structured_line(server, events_db):
    server.request("GET")  # the pooled connection exists from here on
    before = len(server.log_lines())
    server.request(body=json.dumps({"kind": "logged"}).encode(), headers={"User-Agent": "line-test"})
    new = server.log_lines()[before:]
    [entry] = [e for e in new if e.get("message", "").startswith("POST / ")]
    assert entry["severity"] == "INFO" and entry["message"] == "POST / 201"
    assert entry["status"] == 201 and entry["rows"] == 1
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] > 0
    assert entry["new_connection"] is False  # the connection opened by the GET was reused
    assert entry["httpRequest"]["requestMethod"] == "POST"
    assert entry["httpRequest"]["status"] == 201
    assert entry["httpRequest"]["userAgent"] == "line-test"


def test_database_down_is_a_fast_503_with_retry_after(tmp_path):
    closed = f"postgresql://app:pw@127.0.0.1:{free_port()}/app"
    with FunctionServer({"DATABASE_URL": closed}, tmp_path / "down.log") as down:
        for method in ("POST", "GET"):
            reply = down.request(method, body=b"{}" if method == "POST" else None, timeout=scaled(5))
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "5"
            assert reply.json() == {"error": "the database is unavailable; retry later"}
        log = (tmp_path / "down.log").read_text()
    assert "Traceback" not in log and ":pw@" not in log


def request(method="POST", path="/", body=b"", headers=()):
    return service.Request(method=method, path=path, headers=service.Headers(headers), read_body=lambda: body)


@pytest.fixture
def runtime(events_db):
    runtime = Runtime(environ={"DATABASE_URL": events_db.dsn()})
    yield runtime
    runtime.close()


def test_an_event_is_stored_through_the_core_alone(runtime, events_db, capfd):
    logs.configure()  # what any entry point does once, at import
    outcome = runtime.handle(request(body=b'{"kind": "core", "payload": {"n": 1}}'))
    assert outcome.status == 201 and outcome.rows == 1
    [event_id] = outcome.body["ids"]
    assert events_db.rows()[event_id] == {"kind": "core", "payload": {"n": 1}, "scheduled_at": None}
    [line] = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"POST / 201"' in line]
    assert line["rows"] == 1


def test_health_unknown_paths_and_methods(runtime, events_db):
    assert runtime.handle(request("GET")).status == 200
    fresh = Runtime(environ={"DATABASE_URL": events_db.dsn()})  # an instance that has not connected
    events_db.reset_connection_log()
    missing = fresh.handle(request("GET", path="/other"))
    assert (missing.status, missing.body["error"]) == (
        404,
        "there is nothing at /other; the function answers at /",
    )
    refused = fresh.handle(request("PUT"))
    assert refused.status == 405 and refused.headers["Allow"] == "GET, HEAD, POST"
    assert events_db.connections_opened() == 0


def test_faults_become_503_with_retry_after_not_exceptions(events_db):
    runtime = Runtime(environ={"DATABASE_URL": events_db.dsn(database="no_such_database")})
    outcome = runtime.handle(request(body=b"{}"))
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

"""The function served by the real `functions-framework` command, over HTTP."""

import json
import uuid

import pytest
from function_harness import FunctionServer, free_port

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


def test_health_is_ok(server):
    reply = server.request("GET")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(server, method):
    reply = server.request(method, body=b"{}")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD, POST"


def test_malformed_json_is_400_naming_the_problem(server, events_db):
    reply = server.request(body=b'{"kind": ', headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert "not valid JSON" in reply.json()["error"]
    assert events_db.rows() == {}


def test_body_over_one_mib_is_413(server, events_db):
    reply = server.request(body=b" " * (1024 * 1024 + 1))
    assert reply.status == 413
    assert "limit" in reply.json()["error"]
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
            reply = down.request(method, body=b"{}" if method == "POST" else None, timeout=5)
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "5"
            assert reply.json() == {"error": "the database is unavailable; retry later"}
        log = (tmp_path / "down.log").read_text()
    assert "Traceback" not in log and ":pw@" not in log

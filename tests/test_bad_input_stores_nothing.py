"""Every documented bad input gets a 4xx naming the problem, and stores nothing."""

import json

import pytest
from function_harness import load_function

GOOD = {"kind": "fine", "payload": {"ok": True}}
SCHEDULER = {"X-CloudScheduler-JobName": "job", "X-CloudScheduler-ScheduleTime": "2026-11-25T09:00:00Z"}

BAD_REQUESTS = [
    # (body, headers, status, words in the message)
    (b"{not json", {}, 400, "not valid JSON"),
    (b"\xc3\x28", {}, 400, "not valid UTF-8"),
    (b"true", {}, 400, "must be a JSON object"),
    (b"[]", {}, 400, "1 to 500 events"),
    (json.dumps([GOOD] * 501).encode(), {}, 400, "got 501"),
    (json.dumps([GOOD, {"kind": ""}]).encode(), {}, 400, "events[1].kind"),
    (json.dumps([GOOD, {"id": "123"}]).encode(), {}, 400, "events[1].id must be a UUID"),
    (json.dumps([GOOD, {"payload": []}]).encode(), {}, 400, "events[1].payload must be a JSON object"),
    (json.dumps([GOOD, {"color": "red"}]).encode(), {}, 400, "color is not a known field"),
    (json.dumps([GOOD, {"kind": "x" * 101}]).encode(), {}, 400, "1 to 100 characters"),
    (json.dumps([GOOD, {"payload": {"k": "v" * 70000}}]).encode(), {}, 400, "the limit is 65536"),
    (json.dumps([GOOD, {"payload": {"k": "nul\u0000"}}]).encode(), {}, 400, "NUL character"),
    (b'[{"kind": "ok"}, {"payload": {"k": "\\udc00"}}]', {}, 400, "surrogate"),
    (b'[{"kind": "ok"}, {"payload": {"k": NaN}}]', {}, 400, "NaN"),
    (b"{}", {"X-CloudScheduler-JobName": "job"}, 400, "without X-CloudScheduler-ScheduleTime"),
    (b"{}", {**SCHEDULER, "X-CloudScheduler-ScheduleTime": "now"}, 400, "RFC 3339"),
    (b" " * (1024 * 1024 + 1), {}, 413, "limit"),
]


@pytest.mark.parametrize("body, headers, status, words", BAD_REQUESTS)
def test_bad_request_is_refused_with_a_message_and_nothing_is_stored(
    events_db, monkeypatch, body, headers, status, words
):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    reply = client.post("/", data=body, headers=headers)
    assert reply.status_code == status
    assert words in reply.get_json()["error"]
    assert events_db.rows() == {}


def test_rejected_request_does_not_touch_the_database(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    events_db.reset_connection_log()
    assert client.post("/", data=b"{oops").status_code == 400
    assert events_db.connections_opened() == 0


def test_rejection_is_logged_as_a_warning_with_the_reason(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    client.post("/", data=b'{"kind": 3}')
    warnings = [
        json.loads(line)
        for line in capfd.readouterr().out.splitlines()
        if line.startswith("{") and '"WARNING"' in line
    ]
    assert any("kind must be a string" in entry["message"] for entry in warnings)

"""Values a careful API refuses: placeholder and non-ASCII ids, kinds that are not
readable labels, a body of `null`. Each is a 400 naming the field and the rule, and
stores nothing; a Scheduler job name (which becomes the kind) follows the kind's rule.
The values next to them that are fine are accepted, so the rules are not too broad."""

import uuid

import pytest
from function_harness import load_function

SCHEDULE_TIME = "2026-11-25T09:00:00Z"

REFUSED_IDS = {
    "nil UUID": "00000000-0000-0000-0000-000000000000",
    "max UUID": "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "nil UUID without hyphens": "0" * 32,
    "full-width digits": "１" * 32,
    "Arabic-Indic digits": "٠١٢٣٤٥٦٧" * 4,
    "urn prefix": "urn:uuid:12345678-1234-5678-1234-567812345678",
    "unbalanced brace": "{12345678-1234-5678-1234-567812345678",
}
REFUSED_KINDS = {
    "bell": "alert\x07",
    "line break": "first\nsecond",
    "carriage return": "line\r",
    "right-to-left override": "invoice\u202egpj.exe",
    "left-to-right isolate": "\u2066label\u2069",
    "zero-width space": "a\u200bb",
    "C1 control": "\x85next",
    "only spaces": "   ",
    "only a tab": "\t",
    "only an ideographic space": "\u3000",
    "empty": "",
}
ACCEPTED_KINDS = ["signup", "café ☕", "日本語のイベント", "a b", "x" * 100]


@pytest.fixture
def client(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    return client


def refusal(reply, events_db) -> str:
    assert reply.status_code == 400
    assert events_db.rows() == {}
    return reply.get_json()["error"]


@pytest.mark.parametrize("event_id", REFUSED_IDS.values(), ids=REFUSED_IDS.keys())
def test_id_that_is_a_placeholder_or_not_ascii_hex_is_refused(client, events_db, event_id):
    message = refusal(client.post("/", json=[{"kind": "ok"}, {"id": event_id}]), events_db)
    assert message.startswith("events[1].id must")


def test_placeholder_id_message_says_to_send_a_real_id_or_none(client, events_db):
    message = refusal(client.post("/", json={"id": str(uuid.UUID(int=0))}), events_db)
    assert "placeholder" in message and "send a real id or none" in message


@pytest.mark.parametrize("kind", REFUSED_KINDS.values(), ids=REFUSED_KINDS.keys())
def test_kind_that_is_not_a_readable_label_is_refused(client, events_db, kind):
    message = refusal(client.post("/", json=[{"kind": "ok"}, {"kind": kind}]), events_db)
    assert message.startswith("events[1].kind must")


@pytest.mark.parametrize(
    "job_name", ["nightly\x85", "\x9bjob", "   "], ids=["C1 control", "CSI", "only spaces"]
)
def test_scheduler_job_name_follows_the_kind_rule(client, events_db, job_name):
    headers = {"X-CloudScheduler-JobName": job_name, "X-CloudScheduler-ScheduleTime": SCHEDULE_TIME}
    message = refusal(client.post("/", data=b"", headers=headers), events_db)
    assert message.startswith("X-CloudScheduler-JobName must")


@pytest.mark.parametrize("body", [b"null", b" null\n"])
def test_body_of_json_null_is_refused(client, events_db, body):
    message = refusal(client.post("/", data=body), events_db)
    assert "null" in message


def test_null_event_in_a_batch_is_refused(client, events_db):
    assert "events[1] must be a JSON object" in refusal(client.post("/", data=b"[{}, null]"), events_db)


def test_readable_kinds_and_ids_in_any_hex_form_are_accepted(client, events_db):
    event_id = uuid.uuid4()
    events = [{"kind": kind} for kind in ACCEPTED_KINDS]
    events += [{"id": str(event_id).upper()}, {"id": "{" + str(uuid.uuid4()) + "}"}, {"id": uuid.uuid4().hex}]
    reply = client.post("/", json=events)
    assert reply.status_code == 201, reply.get_json()
    stored = events_db.rows()
    assert set(ACCEPTED_KINDS) <= {row["kind"] for row in stored.values()}
    assert str(event_id) in stored
    assert len(stored) == len(events)

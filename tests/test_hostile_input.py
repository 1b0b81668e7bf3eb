"""Property-based: whatever arrives, the answer is 2xx or 4xx, a refused request
stores nothing, and an accepted payload reads back exactly as it was sent."""

import decimal
import json
import os
import uuid

import pytest
from function_harness import load_function
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Every code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=30,
)
event_fields = st.fixed_dictionaries(
    {},
    optional={
        "kind": json_values | st.text(min_size=1, max_size=100),
        "payload": json_values | st.dictionaries(any_text, json_values, max_size=6),
    },
)
header_value = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)


@pytest.fixture
def instance(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    return client


def count_rows(events_db) -> int:
    return events_db.execute("SELECT count(*) FROM events", database="app")[0][0]


def check_reply(reply, events_db, before: int) -> dict:
    assert reply.status_code < 500, reply.get_data(as_text=True)
    body = reply.get_json()
    if reply.status_code >= 400:
        assert body["error"]
        assert count_rows(events_db) == before
    else:
        assert count_rows(events_db) == before + body["inserted"]
    return body


@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_get_2xx_or_4xx(instance, events_db, body):
    before = count_rows(events_db)
    check_reply(instance.post("/", data=body, content_type="application/octet-stream"), events_db, before)


@given(document=json_values)
def test_arbitrary_json_gets_2xx_or_4xx(instance, events_db, document):
    before = count_rows(events_db)
    check_reply(instance.post("/", data=json.dumps(document)), events_db, before)


@given(events=st.lists(event_fields, min_size=1, max_size=8))
def test_accepted_events_read_back_exactly_as_sent(instance, events_db, events):
    sent = [{**fields, "id": str(uuid.uuid4())} for fields in events]
    before = count_rows(events_db)
    reply = instance.post("/", data=json.dumps(sent))
    body = check_reply(reply, events_db, before)
    if reply.status_code >= 400:
        return
    assert body["ids"] == [event["id"] for event in sent]
    stored = {
        str(row_id): (kind, exact_json(payload))
        for row_id, kind, payload in events_db.execute(
            "SELECT id, kind, payload::text FROM events WHERE id = ANY(CAST(:ids AS UUID[]))",
            database="app",
            ids=body["ids"],
        )
    }
    for event in sent:
        # A null field means "absent": the default applies.
        expected_payload = exact_json(json.dumps(event.get("payload") or {}))
        assert stored[event["id"]] == (event.get("kind") or "event", expected_payload)


def exact_json(text: str):
    """Parse JSON with every number as a Decimal: equal means the same decimal value."""
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


@given(depth=st.integers(min_value=1, max_value=5000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_or_stored_never_a_server_error(instance, events_db, depth, opener):
    closer = "]" if opener == "[" else "}"
    body = '{"payload": {"deep": ' + opener * depth + "1" + closer * depth + "}}"
    before = count_rows(events_db)
    check_reply(instance.post("/", data=body), events_db, before)


@settings(max_examples=20)
@given(text=st.text(min_size=0, max_size=20).map(lambda t: t * 5000))
def test_huge_strings_are_refused_or_stored_never_a_server_error(instance, events_db, text):
    before = count_rows(events_db)
    check_reply(
        instance.post("/", data=json.dumps({"kind": "big", "payload": {"s": text}})), events_db, before
    )


@given(
    job=st.lists(header_value, max_size=3),
    schedule=st.lists(header_value | st.datetimes().map(lambda d: d.isoformat() + "Z"), max_size=3),
    extra=st.dictionaries(
        st.sampled_from(
            ["Content-Type", "Content-Encoding", "X-CloudScheduler", "Transfer-Encoding-Hint", "Accept"]
        ),
        header_value,
        max_size=3,
    ),
)
def test_odd_duplicated_and_forged_headers_get_2xx_or_4xx(instance, events_db, job, schedule, extra):
    headers = [("X-CloudScheduler-JobName", value) for value in job]
    headers += [("X-CloudScheduler-ScheduleTime", value) for value in schedule]
    headers += list(extra.items())
    before = count_rows(events_db)
    check_reply(instance.post("/", data=b"", headers=headers), events_db, before)

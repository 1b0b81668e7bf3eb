"""Cloud Scheduler deliveries: the headers become an event whose id is the same on every
retry, so a run delivered several times, some at once, leaves one row.

- Headers to event: the kind is the job name (sent as UTF-8), the time the schedule time
  to its last fractional digit; a header repeated with one value is that value, forged
  or conflicting headers are refused; a job name without a time (a forced run) is
  stored with fresh ids and a warning that it is not retry-safe.
- Cloud Scheduler delivering one run several times, some at once, leaves one row.
- A Scheduler time whose UTC instant falls outside years 1 to 9999 is a 400 naming the
  header (it was a 500 with OverflowError); the first and last instants inside are stored.
"""

import concurrent.futures
import datetime
import http.client
import json
import uuid

import pytest
from function_harness import FunctionServer, capture, load_function
from werkzeug.datastructures import Headers

from core.events import parse_events
from core.outcomes import RequestRejected
from core.scheduler import DELIVERY_NAMESPACE, delivery_from_headers
from devtools.deadlines import scaled

UTC = datetime.UTC


def scheduler_headers(job="nightly-report", time="2026-11-25T09:00:00.52Z"):
    return Headers(
        {"X-CloudScheduler-JobName": job, "X-CloudScheduler-ScheduleTime": time, "X-CloudScheduler": "true"}
    )


def test_ordinary_request_is_not_a_delivery():
    assert delivery_from_headers(Headers({"Content-Type": "application/json"})) is None


def test_delivery_event_is_kind_job_name_with_schedule_time():
    [record] = parse_events(b"", delivery_from_headers(scheduler_headers()))
    assert record.kind == "nightly-report"
    assert record.scheduled_at == datetime.datetime(2026, 11, 25, 9, 0, 0, 520000, tzinfo=UTC)


def test_retried_delivery_gets_the_same_id():
    first = parse_events(b"", delivery_from_headers(scheduler_headers()))
    retry = parse_events(b"", delivery_from_headers(scheduler_headers()))
    assert first[0].id == retry[0].id


def test_same_instant_in_another_offset_is_the_same_delivery():
    utc = parse_events(b"", delivery_from_headers(scheduler_headers(time="2026-11-25T09:00:00Z")))
    cet = parse_events(b"", delivery_from_headers(scheduler_headers(time="2026-11-25T10:00:00+01:00")))
    assert utc[0].id == cet[0].id


def test_other_run_or_other_job_gets_another_id():
    base = parse_events(b"", delivery_from_headers(scheduler_headers()))[0].id
    later = parse_events(b"", delivery_from_headers(scheduler_headers(time="2026-11-25T10:00:00Z")))[0].id
    other = parse_events(b"", delivery_from_headers(scheduler_headers(job="other")))[0].id
    assert len({base, later, other}) == 3


def test_batch_delivery_ids_differ_per_event_and_repeat_on_retry():
    body = b'[{"kind": "a"}, {"kind": "b"}]'
    first = [r.id for r in parse_events(body, delivery_from_headers(scheduler_headers()))]
    again = [r.id for r in parse_events(body, delivery_from_headers(scheduler_headers()))]
    assert first == again and len(set(first)) == 2


def test_body_fields_override_delivery_defaults():
    body = b'{"kind": "custom", "id": "12345678-1234-5678-1234-567812345678"}'
    [record] = parse_events(body, delivery_from_headers(scheduler_headers()))
    assert (record.kind, record.id) == ("custom", "12345678-1234-5678-1234-567812345678")
    assert record.scheduled_at is not None


def test_many_fractional_digits_are_accepted():
    delivery = delivery_from_headers(scheduler_headers(time="2026-11-25T09:00:00.123456789Z"))
    assert delivery.schedule_time.microsecond == 123456


def event_id_at(time: str) -> str:
    return parse_events(b"", delivery_from_headers(scheduler_headers(time=time)))[0].id


def test_times_that_differ_past_the_sixth_fractional_digit_derive_different_ids():
    ids = {event_id_at(f"2026-11-25T09:00:00.1234567{last}Z") for last in "0123456789"}
    assert len(ids) == 10


def test_trailing_zeros_of_the_fraction_name_the_same_time():
    assert event_id_at("2026-11-25T09:00:00.52Z") == event_id_at("2026-11-25T09:00:00.520000000Z")
    assert event_id_at("2026-11-25T09:00:00Z") == event_id_at("2026-11-25T09:00:00.000Z")


def test_ids_of_times_within_the_microsecond_are_unchanged():
    """The id of a time Python holds whole is what it always was: a retry across an upgrade is one row."""
    name = "nightly-report\n2026-11-25T09:00:00.520000+00:00\n0"
    assert event_id_at("2026-11-25T09:00:00.52Z") == str(uuid.uuid5(DELIVERY_NAMESPACE, name))


def test_a_job_name_without_a_schedule_time_gets_fresh_ids_and_a_warning(caplog):
    headers = Headers({"X-CloudScheduler-JobName": "forced-run"})
    first = parse_events(b"", delivery_from_headers(headers))[0]
    again = parse_events(b"", delivery_from_headers(headers))[0]
    assert (first.kind, first.scheduled_at) == ("forced-run", None)
    assert first.id != again.id
    assert "not retry-safe" in caplog.text


@pytest.mark.parametrize(
    "headers, names",
    [
        (
            Headers({"X-CloudScheduler-ScheduleTime": "2026-11-25T09:00:00Z"}),
            "without X-CloudScheduler-JobName",
        ),
        (scheduler_headers(time="yesterday"), "must be an RFC 3339 time"),
        (scheduler_headers(time="2026-11-25 09:00:00"), "must be an RFC 3339 time"),
        (scheduler_headers(time="2026-13-45T09:00:00Z"), "not a valid date"),
        (scheduler_headers(job=""), "must be a string of 1 to 100 characters"),
        (scheduler_headers(job="j" * 101), "must be a string of 1 to 100 characters"),
        (
            Headers(
                [
                    ("X-CloudScheduler-JobName", "a"),
                    ("X-CloudScheduler-JobName", "b"),
                    ("X-CloudScheduler-ScheduleTime", "2026-11-25T09:00:00Z"),
                ]
            ),
            "more than once",
        ),
    ],
)
def test_forged_or_partial_headers_are_rejected(headers, names):
    with pytest.raises(RequestRejected) as raised:
        delivery_from_headers(headers)
    assert raised.value.status == 400
    assert names in raised.value.message


def test_repeated_header_with_the_same_value_is_accepted():
    headers = scheduler_headers()
    headers.add("X-CloudScheduler-JobName", "nightly-report")
    assert delivery_from_headers(headers).job_name == "nightly-report"


@pytest.fixture(scope="module")
def plain_server(events_server, tmp_path_factory):
    env = {"DATABASE_URL": events_server.dsn()}
    with FunctionServer(env, tmp_path_factory.mktemp("scheduler") / "function.log") as running:
        yield running


def post_raw_headers(server, headers: list[tuple[str, bytes]]) -> tuple[int, dict]:
    """A POST with these header lines as they are, in order (repeats and UTF-8 bytes included)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=scaled(30))
    try:
        connection.putrequest("POST", "/")
        for name, value in [*headers, ("Content-Length", b"0")]:
            connection.putheader(name, value)
        connection.endheaders()
        reply = connection.getresponse()
        body = reply.read().decode()
    finally:
        connection.close()
    capture.add(body)
    return reply.status, json.loads(body)


TIME = ("X-CloudScheduler-ScheduleTime", b"2026-11-25T09:00:00Z")


def test_a_job_name_sent_twice_with_two_values_through_the_server_is_refused(plain_server, events_db):
    """The server joins repeated headers ("a,b"); a job name cannot hold a comma."""
    job = "X-CloudScheduler-JobName"
    status, body = post_raw_headers(plain_server, [(job, b"a"), (job, b"b"), TIME])
    assert status == 400 and "X-CloudScheduler-JobName appears more than once" in body["error"]
    assert events_db.rows() == {}


def test_a_job_name_sent_twice_with_one_value_through_the_server_is_one_delivery(plain_server, events_db):
    job = "X-CloudScheduler-JobName"
    status, body = post_raw_headers(plain_server, [(job, b"twice"), (job, b"twice"), TIME])
    assert status == 201, body
    assert [row["kind"] for row in events_db.rows().values()] == ["twice"]


def test_a_utf8_job_name_is_stored_as_the_text_sent(plain_server, events_db):
    status, body = post_raw_headers(plain_server, [("X-CloudScheduler-JobName", "café-job".encode()), TIME])
    assert status == 201, body
    assert [row["kind"] for row in events_db.rows().values()] == ["café-job"]


def test_a_job_name_without_a_schedule_time_through_the_server_is_stored_not_retry_safe(
    plain_server, events_db
):
    for _ in range(2):
        status, body = post_raw_headers(plain_server, [("X-CloudScheduler-JobName", b"forced")])
        assert status == 201, body
    assert [row["kind"] for row in events_db.rows().values()] == ["forced", "forced"]
    assert any("not retry-safe" in line["message"] for line in plain_server.log_lines())


HEADERS = {
    "X-CloudScheduler": "true",
    "X-CloudScheduler-JobName": "every-minute",
    "X-CloudScheduler-ScheduleTime": "2026-11-25T12:34:00Z",
    "Content-Type": "application/octet-stream",
}


@pytest.fixture
def server(events_db, tmp_path):
    with FunctionServer(
        {"DATABASE_URL": events_db.dsn(), "DB_POOL_SIZE": "2"}, tmp_path / "f.log"
    ) as running:
        yield running


def test_same_run_delivered_three_times_some_concurrently_is_stored_once(server, events_db):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        concurrent_replies = list(pool.map(lambda _: server.request(body=b"", headers=HEADERS), range(2)))
    late_retry = server.request(body=b"", headers=HEADERS)
    statuses = sorted(reply.status for reply in concurrent_replies + [late_retry])
    assert statuses == [200, 200, 201]
    rows = events_db.rows()
    assert len(rows) == 1
    [row] = rows.values()
    assert row["kind"] == "every-minute"


@pytest.fixture
def client(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    return client


def deliver(client, schedule_time: str):
    return client.post(
        "/",
        data=b"",
        headers={"X-CloudScheduler-JobName": "edge", "X-CloudScheduler-ScheduleTime": schedule_time},
    )


@pytest.mark.parametrize(
    "schedule_time",
    [
        "9999-12-31T23:59:59-01:00",  # 10000-01-01T00:59:59Z
        "0001-01-01T00:30:00+01:00",  # 0000-12-31T23:30:00Z
        "9999-12-31T23:59:59.999999-00:01",
    ],
)
def test_time_outside_the_calendar_in_utc_is_a_400(client, events_db, schedule_time):
    reply = deliver(client, schedule_time)
    assert reply.status_code == 400
    assert reply.get_json()["error"].startswith("X-CloudScheduler-ScheduleTime is not a valid date and time")
    assert events_db.rows() == {}


@pytest.mark.parametrize(
    "schedule_time, stored",
    [
        ("9999-12-31T23:59:59Z", "9999-12-31 23:59:59"),
        ("0001-01-01T00:30:00+00:30", "0001-01-01 00:00:00"),
    ],
)
def test_first_and_last_instants_of_the_calendar_are_stored(client, events_db, schedule_time, stored):
    assert deliver(client, schedule_time).status_code == 201
    assert events_db.execute(
        "SELECT (scheduled_at AT TIME ZONE 'UTC')::text FROM events", database="app"
    ) == [[stored]]

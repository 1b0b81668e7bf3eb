"""A Scheduler time whose UTC instant falls outside years 1 to 9999 is a 400 naming the
header (it was a 500 with OverflowError); the first and last instants inside are stored."""

import pytest
from function_harness import load_function


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

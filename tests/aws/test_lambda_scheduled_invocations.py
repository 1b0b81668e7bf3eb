"""EventBridge Scheduler's direct invocations, driven by AWS's runtime interface client:
the kind is the schedule's name, the ids come from the ARN and the scheduled time
(a retry stores nothing new), a fault raises so Scheduler retries, a refusal does not."""

from __future__ import annotations

import json

import pytest
from sample_events import SCHEDULE_ARN, schedule_event

from devtools.postgres import free_port


@pytest.fixture(scope="module")
def function(module_lambda_function, events_server):
    """One warm environment for the module's tests (events_db empties the table for each)."""
    return module_lambda_function({"DATABASE_URL": events_server.dsn()})


def test_a_scheduled_run_stores_one_event_named_for_the_schedule(function, events_db):
    result = function.invoke(schedule_event("2026-12-07T03:00:00Z"))
    assert result.error is None and result.payload["statusCode"] == 201
    (row,) = events_db.rows().values()
    assert row["kind"] == "nightly-report"
    assert row["scheduled_at"].isoformat() == "2026-12-07T03:00:00+00:00"


def test_a_retried_run_stores_nothing_new(function, events_db):
    first = function.invoke(schedule_event(body=[{"payload": {"n": 1}}, {"payload": {"n": 2}}])).payload
    retry = function.invoke(schedule_event(body=[{"payload": {"n": 1}}, {"payload": {"n": 2}}])).payload
    assert first["statusCode"] == 201 and first["body"]["inserted"] == 2
    assert retry["statusCode"] == 200 and retry["body"]["duplicates"] == 2
    assert retry["body"]["ids"] == [] and len(events_db.rows()) == 2
    # The next run is another scheduled time: new ids.
    assert function.invoke(schedule_event("2026-12-07T04:00:00Z")).payload["statusCode"] == 201


def test_schedules_of_one_name_in_two_groups_get_different_ids(function, events_db):
    other_group = SCHEDULE_ARN.replace("/default/", "/reports/")
    function.invoke(schedule_event(arn=SCHEDULE_ARN))
    function.invoke(schedule_event(arn=other_group))
    assert [row["kind"] for row in events_db.rows().values()] == ["nightly-report"] * 2


def test_a_body_sets_its_own_kind_and_payload(function, events_db):
    reply = function.invoke(schedule_event(body={"kind": "cleanup", "payload": {"days": 30}})).payload
    assert reply["statusCode"] == 201
    (row,) = events_db.rows().values()
    assert (row["kind"], row["payload"]) == ("cleanup", {"days": 30})


def test_a_refused_body_is_answered_not_raised(function, events_db):
    result = function.invoke(schedule_event(body={"kind": 5}))
    assert result.error is None
    assert result.payload["statusCode"] == 400 and "kind" in result.payload["body"]["error"]
    assert events_db.rows() == {}


@pytest.mark.parametrize(
    "event",
    [
        {
            "schedule_arn": "arn:aws:lambda:us-east-1:123456789012:function:x",
            "scheduled_time": "2026-12-07T03:00:00Z",
        },
        {"schedule_arn": SCHEDULE_ARN},
        {"schedule_arn": SCHEDULE_ARN, "scheduled_time": "2026-12-07T03:00:00"},
        {"schedule_arn": SCHEDULE_ARN, "scheduled_time": "<aws.scheduler.scheduled-time>"},
        {"schedule_arn": SCHEDULE_ARN, "scheduled_time": "0001-01-01T00:00:00+01:00"},
        {"schedule_arn": SCHEDULE_ARN, "scheduled_time": "9999-12-31T23:59:59-01:00"},
        {"schedule_arn": SCHEDULE_ARN, "scheduled_time": 1765076400},
    ],
    ids=[
        "not-a-schedule-arn",
        "no-time",
        "time-without-offset",
        "placeholder-not-filled",
        "before-year-1-in-utc",
        "after-year-9999-in-utc",
        "time-a-number",
    ],
)
def test_a_malformed_input_is_refused_not_raised(function, events_db, event):
    result = function.invoke(event)
    assert result.error is None and result.payload["statusCode"] == 400
    assert json.loads(result.payload["body"])["error"].startswith(
        ("schedule_arn must", "scheduled_time must")
    )
    assert events_db.rows() == {}


def test_a_fault_raises_so_scheduler_retries(lambda_function, events_db):
    dsn = events_db.dsn().replace(f":{events_db.port}/", f":{free_port()}/")
    function = lambda_function({"DATABASE_URL": dsn, "DB_TIMEOUT": "1"})
    result = function.invoke(schedule_event())
    assert result.error_type is not None
    assert result.error["errorType"] == "DeliveryFailed"
    assert result.error["errorMessage"].startswith("503: ")
    assert events_db.port and dsn not in result.body.decode()

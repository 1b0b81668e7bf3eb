"""Cloud Scheduler deliveries: who sent them, for which scheduled time, and their ids.

Cloud Scheduler's HTTP targets add `X-CloudScheduler-JobName` and
`X-CloudScheduler-ScheduleTime` (RFC 3339) to every attempt of a run, retries
included. An id derived from those two values is therefore the same for every
attempt, and the insert's ON CONFLICT DO NOTHING turns a retried delivery into
a no-op. Google documents ScheduleTime for unix-cron schedules only; a forced
run (`gcloud scheduler jobs run`) may come without it: its events get fresh
ids, and a log line says that such a delivery is not retry-safe.
"""

from __future__ import annotations

import datetime
import logging
import re
import uuid
from typing import NamedTuple, Protocol

from core.outcomes import RequestRejected
from core.rules import kind_problem

JOB_NAME_HEADER = "X-CloudScheduler-JobName"
SCHEDULE_TIME_HEADER = "X-CloudScheduler-ScheduleTime"
# Namespace of the derived ids. Never change it: every derived id would change
# with it, and a retry arriving across the change would be stored twice.
DELIVERY_NAMESPACE = uuid.UUID("7d0c5a52-3b8e-4f0e-9a0b-5f1c2e6d8a41")
logger = logging.getLogger("events")
RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class SchedulerDelivery(NamedTuple):
    """One run of a schedule: `job_name` is the events' default kind; `key` (the job
    name if empty; an EventBridge schedule's ARN) and the schedule time make the ids.
    Without a schedule time (a forced run) every event gets a fresh id."""

    job_name: str
    schedule_time: datetime.datetime | None  # aware, UTC
    key: str = ""
    # The time's fractional digits past the sixth (Python keeps microseconds), so
    # that times differing only there still derive different ids.
    sub_microseconds: str = ""

    def event_id(self, index: int) -> str:
        """The id of the index-th event of this delivery, the same on every retry."""
        if self.schedule_time is None:
            return str(uuid.uuid4())
        # isoformat() always ends with the offset (+00:00), so the digits after it are unambiguous.
        time = self.schedule_time.isoformat() + self.sub_microseconds
        name = f"{self.key or self.job_name}\n{time}\n{index}"
        return str(uuid.uuid5(DELIVERY_NAMESPACE, name))


class HeaderValues(Protocol):
    def getlist(self, name: str) -> list[str]: ...


def delivery_from_headers(headers: HeaderValues) -> SchedulerDelivery | None:
    """The delivery these request headers describe, None for an ordinary request.

    Forged or half-present headers are rejected, not guessed at.
    """
    job_name = _single_header(headers, JOB_NAME_HEADER)
    schedule_time = _single_header(headers, SCHEDULE_TIME_HEADER)
    if job_name is None and schedule_time is None:
        return None
    if job_name is None:
        raise RequestRejected(
            400, f"{SCHEDULE_TIME_HEADER} was sent without {JOB_NAME_HEADER}; Cloud Scheduler sends both"
        )
    # The job name becomes the events' kind, so it follows the kind's rule.
    problem = kind_problem(job_name)
    if problem is not None:
        raise RequestRejected(400, f"{JOB_NAME_HEADER} {problem}")
    if schedule_time is None:
        logger.warning(
            "%s came without %s (a forced run?): its events get fresh ids, so this delivery "
            "is not retry-safe (a retry of it is stored again)",
            JOB_NAME_HEADER,
            SCHEDULE_TIME_HEADER,
        )
        return SchedulerDelivery(job_name=job_name, schedule_time=None)
    time, sub_microseconds = parse_rfc3339(schedule_time)
    return SchedulerDelivery(job_name=job_name, schedule_time=time, sub_microseconds=sub_microseconds)


def parse_rfc3339(value: str) -> tuple[datetime.datetime, str]:
    """The time in UTC (to the microsecond), and its fractional digits past the sixth
    (trailing zeros dropped: .5 and .500000000 are the same time)."""
    match = RFC3339.fullmatch(value.strip())
    if not match:
        raise RequestRejected(
            400, f"{SCHEDULE_TIME_HEADER} must be an RFC 3339 time such as 2026-01-31T09:00:00Z"
        )
    date, time, fraction, offset = match.groups()
    # Python takes at most 6 fractional digits; RFC 3339 allows any number.
    digits = (fraction or ".")[1:].rstrip("0")
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.datetime.fromisoformat(f"{date}T{time}.{digits[:6]:0<6}{offset}")
        # At the calendar's edges (9999-12-31T23:59:59-01:00) the UTC time is
        # outside the years Python (and the database) can hold.
        return parsed.astimezone(datetime.UTC), digits[6:]
    except (ValueError, OverflowError):
        raise RequestRejected(
            400, f"{SCHEDULE_TIME_HEADER} is not a valid date and time in years 1 to 9999 (UTC)"
        ) from None


def _single_header(headers: HeaderValues, name: str) -> str | None:
    # A server may join a repeated header's values with commas (gunicorn does),
    # which neither a job name nor an RFC 3339 time can hold: the same value sent
    # twice (a proxy that repeats a header) is one value; two values are refused.
    values = {part.strip(" \t") for value in headers.getlist(name) for part in value.split(",")}
    if not values:
        return None
    if len(values) > 1:
        raise RequestRejected(
            400, f"{name} appears more than once with different values; Cloud Scheduler sends it once"
        )
    return values.pop()

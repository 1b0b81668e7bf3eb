"""Cloud Scheduler deliveries: who sent them, for which scheduled time, and their ids.

Cloud Scheduler's HTTP targets add `X-CloudScheduler-JobName` and
`X-CloudScheduler-ScheduleTime` (RFC 3339) to every attempt of a run, retries
included. An id derived from those two values is therefore the same for every
attempt, and the insert's ON CONFLICT DO NOTHING turns a retried delivery into
a no-op.
"""

from __future__ import annotations

import datetime
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
RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class SchedulerDelivery(NamedTuple):
    """One run of a schedule: `job_name` is the events' default kind; `key` (the job
    name if empty; an EventBridge schedule's ARN) and the schedule time make the ids."""

    job_name: str
    schedule_time: datetime.datetime  # aware, UTC
    key: str = ""

    def event_id(self, index: int) -> str:
        """The id of the index-th event of this delivery, the same on every retry."""
        name = f"{self.key or self.job_name}\n{self.schedule_time.isoformat()}\n{index}"
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
    if job_name is None or schedule_time is None:
        present, missing = (
            (JOB_NAME_HEADER, SCHEDULE_TIME_HEADER)
            if schedule_time is None
            else (SCHEDULE_TIME_HEADER, JOB_NAME_HEADER)
        )
        raise RequestRejected(400, f"{present} was sent without {missing}; Cloud Scheduler sends both")
    # The job name becomes the events' kind, so it follows the kind's rule.
    problem = kind_problem(job_name)
    if problem is not None:
        raise RequestRejected(400, f"{JOB_NAME_HEADER} {problem}")
    return SchedulerDelivery(job_name=job_name, schedule_time=parse_rfc3339(schedule_time))


def parse_rfc3339(value: str) -> datetime.datetime:
    match = RFC3339.fullmatch(value.strip())
    if not match:
        raise RequestRejected(
            400, f"{SCHEDULE_TIME_HEADER} must be an RFC 3339 time such as 2026-01-31T09:00:00Z"
        )
    date, time, fraction, offset = match.groups()
    # Python takes at most 6 fractional digits; RFC 3339 allows any number.
    fraction = (fraction or ".0")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.datetime.fromisoformat(f"{date}T{time}{fraction}{offset}")
        # At the calendar's edges (9999-12-31T23:59:59-01:00) the UTC time is
        # outside the years Python (and the database) can hold.
        return parsed.astimezone(datetime.UTC)
    except (ValueError, OverflowError):
        raise RequestRejected(
            400, f"{SCHEDULE_TIME_HEADER} is not a valid date and time in years 1 to 9999 (UTC)"
        ) from None


def _single_header(headers: HeaderValues, name: str) -> str | None:
    values = headers.getlist(name)
    if not values:
        return None
    # A server joins a repeated header's values with commas, which neither a job
    # name nor an RFC 3339 time can hold.
    if len(set(values)) > 1 or "," in values[0]:
        raise RequestRejected(400, f"{name} appears more than once; Cloud Scheduler sends it once")
    return values[0]

"""What Lambda delivers, as the core's Request; the core's Outcome, as what Lambda expects back.

Two kinds of event reach the function (docs/aws-lambda.md, "The event contract"):

- HTTP through a function URL or an API Gateway HTTP API, payload format 2.0:
  answered with {"statusCode", "headers", "body"} and the same statuses as on
  Google Cloud.
- A direct invocation by EventBridge Scheduler whose Input is
  {"schedule_arn": ..., "scheduled_time": ..., "body": ...}: the kind defaults to
  the schedule's name and ids derive from the ARN and the scheduled time, so a
  retried invocation stores nothing new. A fault (5xx) raises, so Lambda and
  Scheduler retry; a refusal (4xx) is returned, so it is not retried.

Anything else is refused with a 400 answer and not raised, so Lambda's own
retries of an asynchronous invocation do not repeat it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from core.scheduler import SchedulerDelivery
from core.service import Headers, Outcome, Request

logger = logging.getLogger("events")

# arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/NAME (names: letters, digits, - _ .).
SCHEDULE_ARN = re.compile(r"arn:aws[a-z-]*:scheduler:[a-z0-9-]+:\d{12}:schedule/[\w.-]{1,64}/([\w.-]{1,64})")
SCHEDULER_USER_AGENT = "Amazon EventBridge Scheduler"
JSON_HEADERS = {"Content-Type": "application/json"}

Handle = Callable[[Request], Outcome]


class DeliveryFailed(Exception):
    """A scheduled delivery met a fault (a 5xx): raised so that Scheduler retries it.

    The message is the core's answer, which never holds the payload or the DSN.
    """


class EventRefused(Exception):
    """An event that is neither HTTP nor a schedule's Input, or a malformed Input."""


def answer(event: Any, handle: Handle) -> dict[str, Any]:
    """Lambda's answer to one event, the core's `handle` doing the work."""
    try:
        if _is_http(event):
            return http_answer(event, handle(http_request(event)))
        if isinstance(event, Mapping) and "schedule_arn" in event:
            return scheduled_answer(handle(scheduled_request(event)))
        raise EventRefused(
            "this function answers HTTP (function URL or API Gateway HTTP API, payload format 2.0) "
            "and EventBridge Scheduler invocations whose Input holds schedule_arn and scheduled_time"
        )
    except EventRefused as refused:
        # The event's content is never logged: it may be a payload.
        logger.warning("event refused: %s", refused, extra={"fields": {"status": 400}})
        return {"statusCode": 400, "headers": dict(JSON_HEADERS), "body": json.dumps({"error": str(refused)})}


def _is_http(event: Any) -> bool:
    return isinstance(event, Mapping) and event.get("version") == "2.0" and "requestContext" in event


def http_request(event: Mapping[str, Any]) -> Request:
    """A payload format 2.0 event as the core's Request; EventRefused naming the field
    whose shape is wrong (no value is quoted: it may be a payload)."""
    context = _object(event, "requestContext")
    http = _object(context, "http", "requestContext.")
    method = _text(http, "method", "requestContext.http.")
    if not method:
        raise EventRefused("requestContext.http.method must be a non-empty string")
    headers = _object(event, "headers")
    if not all(isinstance(value, str) for value in headers.values()):
        raise EventRefused("headers must map each name to a string")
    pairs = [(str(name), value) for name, value in headers.items()]
    cookies = event.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(cookie, str) for cookie in cookies):
        raise EventRefused("cookies must be a list of strings")
    if cookies:
        # Payload 2.0 moves the Cookie header into a list of its own.
        pairs.append(("cookie", "; ".join(cookies)))
    body = _body(event)
    path = _text(event, "rawPath") or _text(http, "path", "requestContext.http.") or "/"
    query = _text(event, "rawQueryString")
    host = _text(context, "domainName", "requestContext.") or str(headers.get("host", ""))
    return Request(
        method=method.upper(),
        path=path,
        headers=Headers(pairs),
        read_body=lambda: body,
        url=f"https://{host}{path}" + (f"?{query}" if query else ""),
        remote_ip=_text(http, "sourceIp", "requestContext.http."),
    )


def _object(parent: Mapping[str, Any], name: str, where: str = "") -> Mapping[str, Any]:
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EventRefused(f"{where}{name} must be a JSON object")
    return value


def _text(parent: Mapping[str, Any], name: str, where: str = "") -> str:
    value = parent.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventRefused(f"{where}{name} must be a string")
    return value


def _body(event: Mapping[str, Any]) -> bytes:
    body = _text(event, "body")
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise EventRefused("isBase64Encoded must be true or false")
    if not encoded:
        return body.encode("utf-8", errors="surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise EventRefused("the body is marked isBase64Encoded but is not valid base64") from None


def http_answer(event: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    method = str(event["requestContext"]["http"]["method"]).upper()  # checked by http_request
    return {
        "statusCode": outcome.status,
        "headers": {**JSON_HEADERS, **outcome.headers},
        # A HEAD answer has no body, as on any HTTP server.
        "body": "" if method == "HEAD" else json.dumps(outcome.body),
        "isBase64Encoded": False,
    }


def scheduled_request(event: Mapping[str, Any]) -> Request:
    """A schedule's Input as a POST of its body, with the delivery that derives the ids."""
    arn = event.get("schedule_arn")
    match = SCHEDULE_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise EventRefused(
            "schedule_arn must be a schedule's ARN, arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/NAME "
            "(the schedule's Input sets it from <aws.scheduler.schedule-arn>)"
        )
    delivery = SchedulerDelivery(
        job_name=match.group(1), schedule_time=_scheduled_time(event), key=match.group(0)
    )
    body = json.dumps(event["body"]).encode() if event.get("body") is not None else b""
    return Request(
        method="POST",
        path="/",
        headers=Headers([("user-agent", SCHEDULER_USER_AGENT), ("content-type", "application/json")]),
        read_body=lambda: body,
        delivery=delivery,
    )


def _scheduled_time(event: Mapping[str, Any]) -> datetime.datetime:
    value = event.get("scheduled_time")
    try:
        parsed = datetime.datetime.fromisoformat(value) if isinstance(value, str) else None
        # At the calendar's edges (0001-01-01T00:00:00+01:00) the UTC time is outside the years Python holds.
        utc = parsed.astimezone(datetime.UTC) if parsed is not None and parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        utc = None
    if utc is None:
        raise EventRefused(
            "scheduled_time must be a time with its offset, such as 2026-01-31T09:00:00Z "
            "(the schedule's Input sets it from <aws.scheduler.scheduled-time>), in years 1 to 9999 in UTC"
        )
    return utc


def scheduled_answer(outcome: Outcome) -> dict[str, Any]:
    if outcome.status >= 500:
        raise DeliveryFailed(f"{outcome.status}: {outcome.body.get('error', 'the delivery failed')}")
    return {"statusCode": outcome.status, "body": outcome.body}

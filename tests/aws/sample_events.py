"""Lambda events as AWS delivers them, for the tests: function URL requests (payload
format 2.0) and EventBridge Scheduler's Input."""

from __future__ import annotations

import base64
import json

SCHEDULE_ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly-report"


def http_event(
    method: str = "POST",
    body: bytes | str | None = None,
    *,
    path: str = "/",
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
    query: str = "",
    cookies: list[str] | None = None,
) -> dict:
    """A function URL's event: lower-cased headers, the body as text or base64."""
    raw = body.encode() if isinstance(body, str) else body
    event: dict = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abc123.lambda-url.us-east-1.on.aws",
            "user-agent": "test-client/1.0",
            "x-forwarded-for": "198.51.100.7",
            "x-forwarded-proto": "https",
            "content-type": "application/json",
            **{name.lower(): value for name, value in (headers or {}).items()},
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "test-client/1.0",
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": "07/Dec/2026:03:00:00 +0000",
            "timeEpoch": 1796526000000,
        },
        "isBase64Encoded": base64_body,
    }
    if cookies:
        event["cookies"] = cookies
    if raw is not None:
        event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
    return event


def json_body(document) -> bytes:
    return json.dumps(document).encode()


def schedule_event(scheduled_time: str = "2026-12-07T03:00:00Z", body=None, arn: str = SCHEDULE_ARN) -> dict:
    """The Input deploy.sh gives the schedule, as Scheduler fills it in."""
    event = {"schedule_arn": arn, "scheduled_time": scheduled_time}
    if body is not None:
        event["body"] = body
    return event

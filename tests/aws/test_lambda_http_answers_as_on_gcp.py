"""HTTP through a function URL (payload format 2.0), driven by AWS's runtime interface
client: the same statuses, bodies and log line as the Cloud Functions entry point."""

from __future__ import annotations

import json
import uuid

import pytest
from sample_events import http_event, json_body


@pytest.fixture(scope="module")
def function(module_lambda_function, events_server):
    """One warm environment for the module's tests (events_db empties the table for each)."""
    return module_lambda_function({"DATABASE_URL": events_server.dsn()})


def answer_of(function, event) -> tuple[int, dict, dict]:
    result = function.invoke(event)
    assert result.error is None, result.error
    reply = result.payload
    return reply["statusCode"], reply["headers"], json.loads(reply["body"]) if reply["body"] else {}


def test_a_post_stores_its_event_and_answers_201(function, events_db):
    event_id = str(uuid.uuid4())
    status, headers, body = answer_of(
        function, http_event(body=json_body({"id": event_id, "kind": "signup"}))
    )
    assert (status, body["ids"]) == (201, [event_id])
    assert headers["Content-Type"] == "application/json"
    assert events_db.rows()[event_id]["kind"] == "signup"


def test_a_base64_encoded_body_is_decoded(function, events_db):
    batch = [{"kind": "b64", "payload": {"n": n, "text": "ünïcode"}} for n in range(3)]
    status, _, body = answer_of(function, http_event(body=json_body(batch), base64_body=True))
    assert (status, body["inserted"]) == (201, 3)
    assert sorted(row["payload"]["n"] for row in events_db.rows().values()) == [0, 1, 2]


def test_a_body_that_is_not_base64_is_refused(function, events_db):
    event = http_event(body="{}")
    event.update(isBase64Encoded=True, body="not base64!")
    status, _, body = answer_of(function, event)
    assert status == 400 and "base64" in body["error"]
    assert events_db.rows() == {}


def test_health_and_head(function):
    assert answer_of(function, http_event("GET"))[:1] == (200,)
    result = function.invoke(http_event("HEAD")).payload
    assert (result["statusCode"], result["body"]) == (200, "")


def test_statuses_for_wrong_paths_methods_and_bodies(function, events_db):
    assert answer_of(function, http_event("POST", b"{}", path="/elsewhere"))[0] == 404
    status, headers, _ = answer_of(function, http_event("PUT", b"{}"))
    assert status == 405 and headers["Allow"] == "GET, HEAD, POST"
    assert answer_of(function, http_event(body=b"{not json"))[0] == 400
    assert answer_of(function, http_event(body=b"[" + b" " * (1024 * 1024) + b"]"))[0] == 413
    assert events_db.rows() == {}


def test_a_compressed_body_is_refused_with_415_as_on_gcp(function, events_db):
    gzip_header = {"content-encoding": "gzip"}
    event = http_event(body=b"\x1f\x8b", headers=gzip_header, base64_body=True)
    status, _, body = answer_of(function, event)
    assert status == 415 and "Content-Encoding" in body["error"]
    assert events_db.rows() == {}


def test_cookies_and_query_string_are_accepted(function):
    event = http_event(body=json_body({"kind": "with-cookies"}), query="a=1&b=2", cookies=["s=1", "t=2"])
    assert answer_of(function, event)[0] == 201


def test_each_request_writes_one_log_line_and_the_runtime_adds_none(lambda_function, events_db):
    function = lambda_function({"DATABASE_URL": events_db.dsn()})
    for n in range(3):
        function.invoke(http_event(body=json_body({"kind": "logged", "payload": {"n": n}})))
    lines = function.request_lines()
    assert [line["httpRequest"]["status"] for line in lines] == [201, 201, 201]
    assert lines[0]["httpRequest"]["requestUrl"] == "https://abc123.lambda-url.us-east-1.on.aws/"
    # awslambdaric's own handler on the root logger would repeat each line in its text format.
    text_lines = [line for line in function.process.log_lines() if "POST / 201" in line]
    assert len(text_lines) == 3


def test_each_log_line_carries_the_lambda_request_id(lambda_function, events_db):
    function = lambda_function({"DATABASE_URL": events_db.dsn()})
    ids = [function.invoke(http_event(method="GET", path="/")).request_id for _ in range(2)]
    assert [line["requestId"] for line in function.request_lines()] == ids and len(set(ids)) == 2


def test_the_pool_is_reused_across_invocations(function, events_db):
    assert answer_of(function, http_event("GET"))[0] == 200
    events_db.reset_connection_log()
    for n in range(4):
        assert (
            answer_of(function, http_event(body=json_body({"kind": "warm", "payload": {"n": n}})))[0] == 201
        )
    assert events_db.connections_opened() == 0


def test_a_database_that_is_down_answers_503_with_retry_after(lambda_function, events_db):
    from devtools.postgres import free_port

    dsn = events_db.dsn().replace(f":{events_db.port}/", f":{free_port()}/")
    function = lambda_function({"DATABASE_URL": dsn, "DB_TIMEOUT": "1"})
    status, headers, body = answer_of(function, http_event(body=json_body({"kind": "down"})))
    assert status == 503 and "Retry-After" in headers and body["error"]


def test_an_event_of_another_kind_is_refused_not_raised(function):
    result = function.invoke({"Records": [{"eventSource": "aws:s3"}]})
    assert result.error is None
    assert result.payload["statusCode"] == 400
    assert "EventBridge Scheduler" in json.loads(result.payload["body"])["error"]


def _reshaped(change) -> dict:
    event = http_event(body=json_body({"kind": "shape"}))
    change(event)
    return event


@pytest.mark.parametrize(
    "change, names",
    [
        (lambda e: e.update(requestContext="ctx"), "requestContext must be a JSON object"),
        (lambda e: e["requestContext"].update(http="GET"), "requestContext.http must be a JSON object"),
        (lambda e: e["requestContext"]["http"].pop("method"), "requestContext.http.method must be"),
        (lambda e: e["requestContext"]["http"].update(method=7), "requestContext.http.method must be"),
        (lambda e: e.update(headers=[["host", "x"]]), "headers must be a JSON object"),
        (lambda e: e["headers"].update(accept=1), "headers must map each name to a string"),
        (lambda e: e.update(cookies=[1, 2]), "cookies must be a list of strings"),
        (lambda e: e.update(cookies="a=b"), "cookies must be a list of strings"),
        (lambda e: e.update(body=12345, isBase64Encoded=True), "body must be a string"),
        (lambda e: e.update(isBase64Encoded="yes"), "isBase64Encoded must be true or false"),
        (lambda e: e.update(rawPath=["/"]), "rawPath must be a string"),
    ],
    ids=[
        "context-a-string",
        "http-a-string",
        "no-method",
        "method-a-number",
        "headers-a-list",
        "header-a-number",
        "cookies-numbers",
        "cookies-a-string",
        "base64-body-a-number",
        "base64-flag-a-string",
        "path-a-list",
    ],
)
def test_an_event_of_the_wrong_shape_is_a_400_naming_the_field_never_raised(
    function, events_db, change, names
):
    result = function.invoke(_reshaped(change))
    assert result.error is None, result.error
    assert result.payload["statusCode"] == 400
    assert names in json.loads(result.payload["body"])["error"]
    assert events_db.rows() == {}

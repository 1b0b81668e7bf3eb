"""Every line written while serving a request names that request's trace, and only
that request's; the request's own line is a complete Cloud Logging httpRequest.

Through the `functions-framework` server, one thread, so consecutive requests
share the thread that served them: nothing may carry over from one to the next.
"""

import re

import pytest
from function_harness import FunctionServer

from core.logs import trace_fields
from core.service import Headers

PROJECT = "events-project"
TRACE = "projects/events-project/traces/"
TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"
TRACE_FIELDS = (TRACE_FIELD, SPAN_FIELD, SAMPLED_FIELD)


@pytest.fixture(scope="module")
def server(events_server, tmp_path_factory):
    env = {"DATABASE_URL": events_server.dsn(), "GOOGLE_CLOUD_PROJECT": PROJECT, "THREADS": "1"}
    with FunctionServer(env, tmp_path_factory.mktemp("trace") / "function.log") as running:
        running.request("GET")  # the engine is built: each test sees only its request's lines
        yield running


def lines_of(server, method="POST", body=b"{}", headers=None, path="/"):
    """(response, the log lines written while serving it)."""
    before = len(server.log_lines())
    reply = server.request(method, body, headers or {}, path=path)
    return reply, server.log_lines()[before:]


def test_traceparent_names_the_trace_on_every_line_of_the_request(server):
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    # A 400: a WARNING with the reason, then the request's line.
    reply, lines = lines_of(server, body=b'{"kind": ', headers=headers)
    assert reply.status == 400
    assert [line["severity"] for line in lines] == ["WARNING", "INFO"]
    for line in lines:
        assert line[TRACE_FIELD] == TRACE + "0af7651916cd43dd8448eb211c80319c"
        assert line[SPAN_FIELD] == "b7ad6b7169203331"
        assert line[SAMPLED_FIELD] is True


def test_cloud_trace_context_span_id_is_converted_from_decimal_to_hex(server):
    headers = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1027871334010811884;o=0"}
    reply, [line] = lines_of(server, "GET", None, headers)
    assert reply.status == 200
    assert line[TRACE_FIELD] == TRACE + "105445aa7843bc8bf206b12000100000"
    assert line[SPAN_FIELD] == f"{1027871334010811884:016x}"
    assert line[SAMPLED_FIELD] is False


def test_traceparent_wins_over_cloud_trace_context(server):
    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
    }
    _, [line] = lines_of(server, "GET", None, headers)
    assert line[TRACE_FIELD].endswith("0af7651916cd43dd8448eb211c80319c")
    assert line[SAMPLED_FIELD] is False


def test_a_request_without_trace_headers_carries_none_after_one_with_them(server):
    lines_of(server, "GET", None, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    _, [line] = lines_of(server, "GET", None)
    assert not set(TRACE_FIELDS) & line.keys()


def test_request_line_is_a_complete_http_request(server):
    headers = {
        "User-Agent": "Google-Cloud-Scheduler",
        "X-Forwarded-For": "198.51.100.7, 203.0.113.9",
        "X-Forwarded-Proto": "https",
        "Content-Type": "application/json",
    }
    reply, [line] = lines_of(server, body=b'{"kind": "traced"}', headers=headers, path="/?source=cron")
    assert reply.status == 201
    http = line["httpRequest"]
    assert http["requestMethod"] == "POST"
    assert http["requestUrl"] == f"https://127.0.0.1:{server.port}/?source=cron"
    assert http["status"] == 201
    assert http["userAgent"] == "Google-Cloud-Scheduler"
    # The last X-Forwarded-For entry is the one Google's front end wrote; the first is the caller's claim.
    assert http["remoteIp"] == "203.0.113.9"
    assert re.fullmatch(r"\d+\.\d{6}s", http["latency"])
    assert float(http["latency"][:-1]) * 1000 == pytest.approx(line["duration_ms"], abs=0.01)


def test_without_a_proxy_the_remote_ip_is_the_peer_and_the_url_as_served(server):
    _, [line] = lines_of(server, "GET", None)
    assert line["httpRequest"]["remoteIp"] == "127.0.0.1"
    assert line["httpRequest"]["requestUrl"] == f"http://127.0.0.1:{server.port}/"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {
            "traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"
        },  # an all-zero id is invalid
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"},
        {"X-Cloud-Trace-Context": "00000000000000000000000000000000/123;o=1"},
        {"traceparent": "garbage"},
        {"X-Cloud-Trace-Context": "not-a-trace"},
    ],
    ids=[
        "none",
        "all-zero-trace-id",
        "all-zero-parent-id",
        "all-zero-cloud-trace-id",
        "garbage",
        "not-a-trace",
    ],
)
def test_no_valid_trace_header_means_no_trace_fields(headers):
    assert trace_fields(Headers(headers.items()), PROJECT) == {}


def test_all_zero_ids_reach_no_log_line(server):
    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "X-Cloud-Trace-Context": "00000000000000000000000000000000/7;o=1",
    }
    reply, lines = lines_of(server, headers=headers)
    assert reply.status == 201 and lines
    assert not [line for line in lines if set(TRACE_FIELDS) & line.keys()]


def test_without_a_project_no_trace_is_named():
    headers = Headers([("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
    assert trace_fields(headers, "") == {}

"""Under the platform's environment every log record is written once, to stdout,
structured and scrubbed, and carries the execution id functions-framework gives it.

2nd gen Cloud Functions set LOG_EXECUTION_ID=true, and functions-framework then
installs its own root handler (writing every record again, unscrubbed, to
stderr) and wraps sys.stdout during each request. The server here is the real
`functions-framework` command with the variables the platform sets, its stdout
and stderr read apart; a library beside the function logs the DSN.
"""

import json
import urllib.parse

import pytest
from function_harness import ROOT, FunctionServer, free_port

PROJECT = "events-project"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
LIBRARY = "a.careless.library"
LIBRARY_SOURCE = ROOT / "tests" / "handler_whose_library_logs_the_dsn.py"


def platform_env(dsn: str, port: int, log_execution_id: bool) -> dict[str, str]:
    env = {
        "DATABASE_URL": dsn,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "K_SERVICE": "events",
        "K_REVISION": "events-00007-xuv",
        "K_CONFIGURATION": "events",
        "FUNCTION_TARGET": "handler",
        "FUNCTION_SIGNATURE_TYPE": "http",
        "PORT": str(port),
        # The library's source imports main.py from the project root.
        "PYTHONPATH": str(ROOT),
    }
    if log_execution_id:
        env["LOG_EXECUTION_ID"] = "true"
    return env


@pytest.fixture(scope="module", params=[True, False], ids=["LOG_EXECUTION_ID=true", "LOG_EXECUTION_ID unset"])
def served(request, events_server, tmp_path_factory):
    """(server, LOG_EXECUTION_ID?, what was sent) after three requests and a shutdown."""
    log_execution_id = request.param
    port = free_port()
    log_path = tmp_path_factory.mktemp("served") / "function.log"
    server = FunctionServer(
        platform_env(events_server.dsn(), port, log_execution_id),
        log_path,
        separate_streams=True,
        source=LIBRARY_SOURCE,
    )
    server.port, server.url = port, f"http://127.0.0.1:{port}/"
    sent = [
        (
            "POST",
            b'{"kind": "once"}',
            {"Function-Execution-Id": "exec-post-1", "X-Cloud-Trace-Context": f"{TRACE_ID}/123;o=1"},
        ),
        ("POST", b'{"kind": ', {"Function-Execution-Id": "exec-bad-2"}),
        (
            "GET",
            None,
            {"Function-Execution-Id": "exec-health-3", "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        ),
    ]
    with server:
        statuses = [server.request(method, body, headers).status for method, body, headers in sent]
    assert statuses == [201, 400, 200]
    return server, log_execution_id, sent


def test_stderr_gets_nothing(served):
    server, _, _ = served
    assert server.stderr_text() == ""


def test_every_stdout_line_is_one_structured_entry(served):
    server, _, _ = served
    lines = server.stdout_text().splitlines()
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"severity", "message", "time", "logger"} <= entry.keys(), line


def request_lines(server) -> list[dict]:
    """The one line per request the function writes (the one with httpRequest)."""
    return [entry for entry in server.log_lines() if "httpRequest" in entry]


def test_each_request_line_appears_exactly_once(served):
    server, _, _ = served
    request_messages = [entry["message"] for entry in request_lines(server)]
    assert sorted(request_messages) == sorted(["POST / 201", "POST / 400", "GET / 200"])
    library_lines = [entry for entry in server.log_lines() if entry["logger"] == LIBRARY]
    assert len(library_lines) == 3  # at import, then in the two requests that used the database


def test_lines_carry_the_execution_id_exactly_when_the_platform_asks(served):
    server, log_execution_id, _ = served
    by_message = {entry["message"]: entry for entry in request_lines(server)}
    for message, execution_id in (
        ("POST / 201", "exec-post-1"),
        ("POST / 400", "exec-bad-2"),
        ("GET / 200", "exec-health-3"),
    ):
        labels = by_message[message].get("logging.googleapis.com/labels")
        assert labels == ({"execution_id": execution_id} if log_execution_id else None)
    # The rejection's WARNING is written while serving the request: it carries the id too.
    [warning] = [
        entry for entry in server.log_lines() if entry["severity"] == "WARNING" and entry["logger"] != LIBRARY
    ]
    assert ("logging.googleapis.com/labels" in warning) is log_execution_id


def test_span_id_is_cloud_loggings_hex_not_the_frameworks_decimal(served):
    server, _, _ = served
    by_message = {entry["message"]: entry for entry in request_lines(server)}
    created = by_message["POST / 201"]
    assert created["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert created["logging.googleapis.com/spanId"] == f"{123:016x}"
    assert created["logging.googleapis.com/trace_sampled"] is True
    assert by_message["GET / 200"]["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"


def test_a_library_logging_the_dsn_reaches_neither_stream_in_clear(served, events_server):
    server, _, _ = served
    dsn = events_server.dsn()
    password = events_server.app_password
    for text in (server.stdout_text(), server.stderr_text()):
        assert dsn not in text
        assert password not in text and urllib.parse.quote(password, safe="") not in text
    library_lines = [entry for entry in server.log_lines() if entry["logger"] == LIBRARY]
    assert library_lines[0]["message"] == "imported; will connect to [redacted]"
    assert {entry["message"] for entry in library_lines[1:]} == {"connection checked out from [redacted]"}


def test_a_cold_starts_and_a_librarys_lines_carry_the_trace_of_the_request_they_served(served):
    server, log_execution_id, _ = served
    trace = f"projects/{PROJECT}/traces/{TRACE_ID}"
    [engine_created] = [entry for entry in server.log_lines() if entry["logger"] == "db.database"]
    assert engine_created["logging.googleapis.com/trace"] == trace  # built while serving the first POST
    library_lines = [entry for entry in server.log_lines() if entry["logger"] == LIBRARY]
    traced = [entry.get("logging.googleapis.com/trace") for entry in library_lines]
    # At import (no request: no trace), then while serving the POST and the GET.
    assert traced == [None, trace, trace]
    labels = [entry.get("logging.googleapis.com/labels") for entry in library_lines]
    expected = [None, {"execution_id": "exec-post-1"}, {"execution_id": "exec-health-3"}]
    assert labels == (expected if log_execution_id else [None] * 3)

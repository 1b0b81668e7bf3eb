"""Logging: every line is written once, structured, scrubbed, and belongs to its request;
passwords, DSNs and secret payloads never reach a log line or a response.

- Every line written while serving a request names that request's trace, and only
  that request's; the request's own line is a complete Cloud Logging httpRequest.
  Through the `functions-framework` server, one thread, so consecutive requests
  share the thread that served them: nothing may carry over from one to the next.
- Under the platform's environment every log record is written once, to stdout,
  structured and scrubbed, and carries the execution id functions-framework gives it.
  2nd gen Cloud Functions set LOG_EXECUTION_ID=true, and functions-framework then
  installs its own root handler (writing every record again, unscrubbed, to
  stderr) and wraps sys.stdout during each request. The server here is the real
  `functions-framework` command with the variables the platform sets, its stdout
  and stderr read apart; a library beside the function logs the DSN.
- A request's line reports its own facts: whether it opened a connection, and how
  long getting one took, never what an earlier request on the same thread did.
- The scrubber replaces secrets in values and never touches keys: a password that
  is a common word ("status") costs no field, and the line does not give it away.
- Every test is checked by the autouse `no_secret_leaks` fixture; the last tests here
  prove that check sees real output, and that the scrubber works whoever logs.
"""

import json
import logging
import re
import threading
import time
import urllib.parse

import function_harness
import pytest
from function_harness import ROOT, FunctionServer, HeldConnection, free_port, known_secrets, load_function

from core import logs
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


def request_line(lines: list[dict]) -> dict:
    [line] = [entry for entry in lines if "httpRequest" in entry]
    return line


def test_answers_that_need_no_database_after_a_201_on_the_same_thread_opened_nothing(events_db, tmp_path):
    # One thread: every request below is served by the thread that opened the connection.
    env = {"DATABASE_URL": events_db.dsn(), "THREADS": "1"}
    with FunctionServer(env, tmp_path / "function.log") as server:
        first = server.request(body=b'{"kind": "opens"}')
        assert first.status == 201
        for method, body, path, status in (
            ("POST", b'{"kind": ', "/", 400),
            ("PUT", b"{}", "/", 405),
            ("GET", None, "/foo", 404),
        ):
            before = len(server.log_lines())
            assert server.request(method, body, path=path).status == status
            line = request_line(server.log_lines()[before:])
            assert line["status"] == status
            assert line["new_connection"] is False, line
            assert line["checkout_ms"] == 0
            assert line["rows"] == 0
        lines = [entry for entry in server.log_lines() if "httpRequest" in entry]
    assert [line["new_connection"] for line in lines] == [True, False, False, False]


def test_checkout_time_includes_the_wait_for_the_held_connection(events_db, monkeypatch, capfd):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1")
    assert client.get("/").status_code == 200
    with HeldConnection(module.runtime.database()) as held:  # the pool's only connection
        capfd.readouterr()
        threading.Timer(0.5, held.release).start()
        started = time.monotonic()
        reply = client.post("/", json={"kind": "waited"})
        waited_ms = (time.monotonic() - started) * 1000
    assert reply.status_code == 201
    line = request_line([json.loads(text) for text in capfd.readouterr().out.splitlines()])
    assert 450 <= line["checkout_ms"] <= waited_ms
    assert line["new_connection"] is False


def test_the_first_request_reports_the_connection_it_opened(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1")
    capfd.readouterr()
    assert client.post("/", json={"kind": "first"}).status_code == 201
    assert client.post("/", json={"kind": "second"}).status_code == 201
    lines = [json.loads(text) for text in capfd.readouterr().out.splitlines()]
    first, second = [line for line in lines if "httpRequest" in line]
    assert (first["new_connection"], second["new_connection"]) == (True, False)
    assert first["checkout_ms"] > 0 and second["checkout_ms"] > 0


REQUEST_LINE_KEYS = {
    "severity",
    "message",
    "time",
    "logger",
    "status",
    "rows",
    "duration_ms",
    "new_connection",
    "checkout_ms",
    "httpRequest",
}
HTTP_REQUEST_KEYS = {"requestMethod", "requestUrl", "status", "userAgent", "remoteIp", "latency"}


@pytest.fixture
def common_word_dsn(events_db):
    """A role whose password is "status", a field name of every request line; dropped
    after the test, and its password no longer a secret for the tests that follow."""
    events_db.set_password("plainword", "status")
    yield events_db.dsn(user="plainword", password="status")
    events_db.execute("DROP ROLE plainword", database="postgres")
    known_secrets.retire_after_this_test("status")


def test_password_that_is_a_field_name_leaves_every_field_intact(common_word_dsn, tmp_path):
    env = {"DATABASE_URL": common_word_dsn, "PYTHONPATH": str(ROOT)}
    # A library beside the function logs the DSN: that value must still be scrubbed.
    with FunctionServer(
        env,
        tmp_path / "function.log",
        separate_streams=True,
        source=ROOT / "tests" / "handler_whose_library_logs_the_dsn.py",
    ) as server:
        assert server.request(body=b'{"kind": "common-word password"}').status == 201
        assert server.request("GET").status == 200
    request_lines = [entry for entry in server.log_lines() if "httpRequest" in entry]
    assert [line["status"] for line in request_lines] == [201, 200]
    for line in request_lines:
        assert line.keys() == REQUEST_LINE_KEYS
        assert line["httpRequest"].keys() == HTTP_REQUEST_KEYS
        assert line["httpRequest"]["status"] == line["status"]
    text = server.stdout_text()
    assert "[redacted]" not in {key for line in server.log_lines() for key in line}
    assert '"status": 201' in text
    library_lines = [
        entry["message"] for entry in server.log_lines() if entry["logger"] == "a.careless.library"
    ]
    assert library_lines and all(message.endswith(" [redacted]") for message in library_lines)
    assert server.stderr_text() == ""


def a_logged_secret(secret: str) -> str:
    """`secret`, known to the leak check and to the function's scrubber, loggers configured."""
    logs.configure()
    known_secrets.add(secret)
    logs.redact(secret)
    return secret


@pytest.mark.secret_logged_on_purpose("some.component")
def test_a_secret_is_redacted_as_a_value_and_kept_as_a_key(capfd):
    secret = a_logged_secret("Key-And-Value-7d1e")
    logging.getLogger("some.component").info(
        "counted", extra={"fields": {secret: {"nested": [f"before {secret} after"]}}}
    )
    [line] = [json.loads(text) for text in capfd.readouterr().out.splitlines() if "some.component" in text]
    assert line[secret] == {"nested": ["before [redacted] after"]}


@pytest.mark.secret_logged_on_purpose("some.library")
def test_a_secret_inside_a_json_document_a_library_logs_is_redacted(capfd):
    logs.configure()
    secret = 'quote"back\\slash-é'
    known_secrets.add(secret)
    logs.redact(secret)
    logging.getLogger("some.library").warning("sending %s", json.dumps({"password": secret}))
    [text] = [text for text in capfd.readouterr().out.splitlines() if "some.library" in text]
    assert json.loads(text)["message"] == 'sending {"password": "[redacted]"}'
    assert "back" not in text and "slash" not in text


class _Described:
    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


@pytest.mark.secret_logged_on_purpose("some.component")
@pytest.mark.parametrize(
    "secret",
    ["Plain-Secret-4a2f", 'with"quote-4a2f', "with\\backslash-4a2f", "tab\there-4a2f", "ünïcode-4a2f"],
)
def test_a_secret_in_any_kind_of_value_is_redacted(capfd, secret):
    """The formatter looks for each secret in the encoded line, where JSON has escaped
    it: every escaped form is found, in a string, a list, a tuple or an object's str()."""
    logs.configure()
    known_secrets.add(secret)
    logs.redact(secret)
    fields = {
        "text": f"line one\nthen {secret}",
        "list": [1, [f"{secret}"]],
        "tuple": ("a", secret),
        "object": _Described(f"<{secret}>"),
    }
    logging.getLogger("some.component").info("fields", extra={"fields": fields})
    [text] = [text for text in capfd.readouterr().out.splitlines() if "some.component" in text]
    line = json.loads(text)
    assert line["text"] == "line one\nthen [redacted]"
    assert line["list"] == [1, ["[redacted]"]]
    assert line["tuple"] == ["a", "[redacted]"]
    assert line["object"] == "<[redacted]>"
    assert "4a2f" not in text


def test_leak_check_sees_the_functions_log_lines_and_responses(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    client.post("/", json={"kind": "seen"})
    output = "\n".join(function_harness.capture.everything())
    assert '"inserted": 1' in output  # the response body
    assert '"message": "POST / 201"' in output  # the request's log line


@pytest.mark.secret_logged_on_purpose("some.library")
def test_any_log_line_mentioning_the_dsn_or_password_is_scrubbed(events_db, monkeypatch, capfd):
    dsn = events_db.dsn()
    _, client = load_function(monkeypatch, DATABASE_URL=dsn)
    client.get("/")  # the function has read the DSN now
    logging.getLogger("some.library").warning("connecting with %s (password %s)", dsn, events_db.app_password)
    [line] = [json.loads(line) for line in capfd.readouterr().out.splitlines() if "some.library" in line]
    assert line["message"] == "connecting with [redacted] (password [redacted])"


def test_database_fault_logs_name_the_error_not_the_credentials(events_db, monkeypatch, capfd):
    wrong = events_db.dsn(password="wrong-Passw0rd!")
    _, client = load_function(monkeypatch, DATABASE_URL=wrong)
    assert client.post("/", json={"kind": "x"}).status_code == 503
    out = capfd.readouterr().out
    assert "password authentication failed" in out
    assert "wrong-Passw0rd" not in out and "Traceback" not in out


@pytest.mark.secret_logged_on_purpose("some.library")
def test_secrets_with_json_special_characters_are_scrubbed_too(capfd):
    from core import logs

    logs.configure()
    secret = 'pa"ss\\word'
    function_harness.known_secrets.add(secret)
    logs.redact(secret)
    logging.getLogger("some.library").warning("value=%s", secret)
    [line] = [line for line in capfd.readouterr().out.splitlines() if "some.library" in line]
    assert json.loads(line)["message"] == "value=[redacted]"


def test_an_exception_python_cannot_raise_is_one_warning_line_not_a_traceback(capfd):
    """Such as a dead connection's socket buffer that fails to flush as it is collected."""
    logs.configure()

    class FailsWhenCollected:
        def __del__(self):
            raise BrokenPipeError(32, "Broken pipe")

    FailsWhenCollected()
    captured = capfd.readouterr()
    [line] = [json.loads(text) for text in captured.out.splitlines() if '"logger": "python"' in text]
    assert line["severity"] == "WARNING" and "BrokenPipeError: [Errno 32] Broken pipe" in line["message"]
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.secret_logged_on_purpose("some.component")
def test_every_value_of_a_line_is_cut_at_its_bound_saying_so_and_scrubbed_first(capfd):
    """A 10 MiB path wrote 30 MB of log: every string value is bounded, whatever its source."""
    secret = a_logged_secret("Straddles-The-Cut-5c2a")
    long = "x" * (logs.MAX_VALUE_CHARS - 5) + secret + "y" * 1_000_000
    logging.getLogger("some.component").warning("%s", long, extra={"fields": {"path": long}})
    [text] = [text for text in capfd.readouterr().out.splitlines() if "some.component" in text]
    line = json.loads(text)
    assert len(text) < 3 * logs.MAX_VALUE_CHARS
    for value in (line["message"], line["path"]):
        assert value.endswith(f"... [cut: {len(long)} characters in all]")
        assert secret[:5] not in value and "[red" in value


@pytest.mark.secret_logged_on_purpose("a.careless.library")
def test_the_dsn_is_scrubbed_even_when_another_variable_is_malformed(capfd):
    from runtime import Runtime

    password = "Malformed-Neighbour-5e2a"
    known_secrets.add(password)
    dsn = f"postgresql://app:{password}@127.0.0.1:1/app"
    runtime = Runtime(environ={"DATABASE_URL": dsn, "BODY_TIMEOUT": "soon"})
    assert runtime.config_error is not None
    logs.configure()
    logging.getLogger("a.careless.library").warning("will connect to %s", dsn)
    [text] = [text for text in capfd.readouterr().out.splitlines() if "a.careless.library" in text]
    assert password not in text and "[redacted]" in text

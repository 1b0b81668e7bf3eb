"""The scrubber replaces secrets in values and never touches keys: a password that
is a common word ("status") costs no field, and the line does not give it away."""

import json
import logging

import pytest
from function_harness import ROOT, FunctionServer, known_secrets

from core import logs

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


@pytest.mark.secret_logged_on_purpose("some.component")
def test_a_secret_is_redacted_as_a_value_and_kept_as_a_key(capfd):
    logs.configure()
    secret = "Key-And-Value-7d1e"
    known_secrets.add(secret)
    logs.redact(secret)
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

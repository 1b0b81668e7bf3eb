"""Passwords, DSNs and secret payloads never reach a log line or a response.

Every test is checked by the autouse `no_secret_leaks` fixture; these tests
prove that check sees real output, and that the scrubber works whoever logs.
"""

import json
import logging

import function_harness
import pytest
from function_harness import load_function


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

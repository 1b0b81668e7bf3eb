"""A DATABASE_URL whose password holds bytes that are not UTF-8 (os.environ keeps
them as lone surrogates) starts the instance and answers a 503 whose log line names
the problem, never a crash at import or a 500, and the password stays out of the logs."""

import json

from function_harness import known_secrets, load_function


def test_a_password_that_is_not_utf8_is_a_503_naming_the_problem(events_db, monkeypatch, capfd):
    password = "pw-\udcff-bytes"  # what os.environ holds for the byte 0xFF
    known_secrets.add(password)
    known_secrets.retire_after_this_test(password)  # checked in this test's output only
    dsn = events_db.dsn().replace(f":{events_db.app_password}@", f":{password}@")
    _, client = load_function(monkeypatch, DATABASE_URL=dsn)
    reply = client.post("/", json={"kind": "not-utf8"})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"]
    assert events_db.rows() == {}
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    errors = [line["message"] for line in lines if line["severity"] == "ERROR"]
    assert errors and "the connection string is not valid UTF-8 (character " in errors[-1]

"""The autouse leak check (app_fixtures.no_secret_leaks) knows the secrets of every
server a test uses, reads records before scrubbing and output after, and reads
JSON by its values, so a password that is also a field name is not a false alarm."""

import json
import logging
import urllib.parse

import function_harness
from app_fixtures import _CaptureHandler, leaks_in_output, secrets_handed_to_loggers
from function_harness import known_secrets

from devtools.postgres import PostgresServer


def test_the_tls_servers_passwords_are_checked_without_asking_for_another_fixture(tls_events_server):
    server, _ = tls_events_server
    assert {server.app_password, server.admin_password} <= known_secrets.plain()


def test_a_server_a_test_starts_itself_has_its_passwords_checked():
    with PostgresServer() as server:
        assert {server.app_password, server.admin_password} <= known_secrets.plain()
        server.set_password("app", "Changed-Pw-31c9")
    assert "Changed-Pw-31c9" in known_secrets.plain()


def test_every_dsn_password_is_checked(events_server):
    events_server.dsn(user="someone", password="Dsn-Only-Pw-0b5e")
    assert "Dsn-Only-Pw-0b5e" in known_secrets.plain()


def test_output_is_checked_in_values_in_every_encoding_and_never_in_keys():
    secret = 'Field"Name-4a2f'
    known_secrets.add(secret)
    assert leaks_in_output(json.dumps({secret: 201})) == []
    assert leaks_in_output(json.dumps({"message": f"x {secret} y"})) == [f"x {secret} y"]
    percent_encoded = f"postgresql://u:{urllib.parse.quote(secret, safe='')}@h/db"
    assert leaks_in_output(json.dumps({"dsn": percent_encoded})) == [percent_encoded]
    # Not JSON as a whole (a log file): JSON lines by value, other lines as text, JSON-escaped too.
    log_file = "\n".join([json.dumps({secret: 1}), "plain " + json.dumps(secret)])
    assert leaks_in_output(log_file) == ["plain " + json.dumps(secret)]


def test_records_are_checked_before_scrubbing_unless_the_test_logs_the_secret_on_purpose():
    secret = "Raw-Record-Pw-77d0"
    known_secrets.add(secret)
    handler = _CaptureHandler()
    for name, args in (("db.careless", (secret,)), ("some.library", (secret,)), ("db.careful", ("x",))):
        handler.handle(logging.LogRecord(name, logging.INFO, __file__, 1, "connecting with %s", args, None))
    handed = secrets_handed_to_loggers(handler.raw, on_purpose={"some.library"})
    assert handed == [f"db.careless: connecting with {secret}", f"db.careless: {secret}"]
    # Their formatted lines reached the capture unscrubbed (the function never learnt this
    # secret): take them out, or this test's own leak check would fail on them.
    function_harness.capture.texts.clear()


def test_a_retired_secret_is_checked_to_the_end_of_its_test_and_not_after():
    known_secrets.add("Retired-Pw-19aa", "postgresql://u:Retired-Pw-19aa@h/db", "Kept-Pw-19aa")
    known_secrets.retire_after_this_test("Retired-Pw-19aa")
    assert "Retired-Pw-19aa" in known_secrets.plain()
    known_secrets.end_test()  # what the leak check does once it has checked the test
    assert not [value for value in known_secrets.plain() if "Retired-Pw-19aa" in value]
    assert "Kept-Pw-19aa" in known_secrets.plain()

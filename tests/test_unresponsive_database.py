"""A database that accepts TCP connections and then never answers: a 503 within the
socket timeout, never a hang, and success once it answers again."""

import time

from function_harness import load_function

TIMEOUT = 1.0


def post_while_paused(events_db, client, kind):
    """(reply, seconds) for one request sent while the server answers nothing."""
    events_db.pause()
    try:
        started = time.monotonic()
        reply = client.post("/", json={"kind": kind})
        return reply, time.monotonic() - started
    finally:
        events_db.resume()


def test_new_connection_to_a_silent_server_is_a_503_within_the_timeout(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_TIMEOUT=str(TIMEOUT))
    reply, elapsed = post_while_paused(events_db, client, "silent")
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    assert elapsed < TIMEOUT + 1.0
    assert client.post("/", json={"kind": "answered"}).status_code == 201


def test_pooled_connection_to_a_server_gone_silent_is_a_503_not_a_hang(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_TIMEOUT=str(TIMEOUT))
    assert client.post("/", json={"kind": "before"}).status_code == 201
    reply, elapsed = post_while_paused(events_db, client, "during")
    assert reply.status_code == 503
    # The pre-ping times out, then one reconnect attempt times out.
    assert elapsed < 2 * TIMEOUT + 1.0
    assert client.post("/", json={"kind": "after"}).status_code == 201
    assert [row["kind"] for row in events_db.rows().values()].count("during") == 0

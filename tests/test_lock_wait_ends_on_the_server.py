"""An INSERT stuck behind another transaction's lock is ended by the server
(statement_timeout, SQLSTATE 57014) before the client gives up on the connection:
a 503 with nothing stored, the pooled connection kept, and never more server
connections than the pool. Only a connection lost after the statement was sent,
with no answer from the server, is reported as an unknown outcome.
"""

import os
import signal
import threading
import time
import uuid

from fault_helpers import ConnectionSampler, error_lines, ids_held_by_another_transaction
from function_harness import load_function

DB_TIMEOUT = 2.0
STATEMENT_TIMEOUT = 0.8 * DB_TIMEOUT  # db.database.STATEMENT_TIMEOUT_FRACTION


def test_insert_waiting_on_a_lock_is_a_503_from_the_server_and_stores_nothing(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_TIMEOUT=str(DB_TIMEOUT))
    assert client.get("/").status_code == 200  # the pooled connection is open
    events_db.reset_connection_log()
    held, other = str(uuid.uuid4()), str(uuid.uuid4())
    with ids_held_by_another_transaction(events_db, held):
        started = time.monotonic()
        reply = client.post(
            "/", json=[{"id": other, "kind": "behind-a-lock"}, {"id": held, "kind": "behind-a-lock"}]
        )
        elapsed = time.monotonic() - started
    time.sleep(0.3)  # an INSERT still running on the server would commit now that the lock is gone

    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    assert "outcome" not in reply.get_json()  # the server answered: it rolled the statement back
    assert STATEMENT_TIMEOUT * 0.95 <= elapsed < DB_TIMEOUT
    assert events_db.rows() == {}
    [error] = error_lines(capfd.readouterr().out)
    assert "57014" in error["message"] and "statement timeout" in error["message"]
    # The connection survived the timeout: the next request uses it.
    assert client.post("/", json={"id": other, "kind": "after"}).status_code == 201
    assert events_db.connections_opened() == 0


def test_repeated_lock_timeouts_never_hold_more_server_connections_than_the_pool(events_db, monkeypatch):
    _, client = load_function(
        monkeypatch, DATABASE_URL=events_db.dsn(), DB_TIMEOUT=str(DB_TIMEOUT), DB_POOL_SIZE="1"
    )
    held = str(uuid.uuid4())
    with ConnectionSampler(events_db) as sampler, ids_held_by_another_transaction(events_db, held):
        statuses = [client.post("/", json={"id": held}).status_code for _ in range(3)]
    time.sleep(0.3)
    assert statuses == [503] * 3
    assert len(sampler.counts) > 10 and sampler.most == 1
    assert events_db.connection_count() == 1
    assert events_db.rows() == {}


def test_connection_lost_after_the_insert_was_sent_is_an_unknown_outcome(events_db, monkeypatch, capfd):
    # The INSERT waits on a lock; its backend is then frozen, so the server can
    # answer nothing (not even its statement timeout) and the client's socket
    # timeout ends the request. Whether the INSERT committed is unknown to the function.
    timeout = 1.0
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_TIMEOUT=str(timeout))
    client.get("/")
    [backend] = events_db.backend_pids()
    held = str(uuid.uuid4())
    replies = []
    with ids_held_by_another_transaction(events_db, held):
        request = threading.Thread(target=lambda: replies.append(client.post("/", json={"id": held})))
        request.start()
        wait_until_waiting_on_a_lock(events_db, backend)
        os.kill(backend, signal.SIGSTOP)
        try:
            request.join(timeout=10)
        finally:
            os.kill(backend, signal.SIGCONT)
    [reply] = replies
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    body = reply.get_json()
    assert body["outcome"] == "unknown"
    assert "retry with the same ids" in body["error"]
    assert "outcome of the insert is unknown" in capfd.readouterr().out


def test_failure_before_the_insert_was_sent_is_not_an_unknown_outcome(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_TIMEOUT="1")
    client.get("/")
    events_db.pause()  # the pre-ping times out: nothing of the request reached the server
    try:
        reply = client.post("/", json={"kind": "never-sent"})
    finally:
        events_db.resume()
    assert reply.status_code == 503
    assert reply.get_json() == {"error": "the database is unavailable; retry later"}


def wait_until_waiting_on_a_lock(events_db, backend: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events_db.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid", pid=backend
        ) == [["Lock"]]:
            return
        time.sleep(0.01)
    raise AssertionError("the function's INSERT never waited on the lock")

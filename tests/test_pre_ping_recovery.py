"""A pooled connection the server ended is replaced before it fails a request."""

import time

from function_harness import load_function


def test_killed_backend_between_requests_is_replaced_without_an_error(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    events_db.reset_connection_log()
    assert client.post("/", json={"kind": "before"}).status_code == 201
    old = events_db.backend_pids()
    assert events_db.terminate_backends() == 1
    reply = client.post("/", json={"kind": "after"})
    assert reply.status_code == 201
    assert events_db.backend_pids() != old
    assert events_db.connections_opened() == 2
    # Closing the dead connection is not reported as an error with a traceback.
    out = capfd.readouterr().out
    assert "Traceback" not in out and '"severity": "ERROR"' not in out


def test_health_check_survives_a_killed_backend(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    assert client.get("/").status_code == 200
    events_db.terminate_backends()
    assert client.get("/").status_code == 200


def test_connection_older_than_recycle_time_is_replaced(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_RECYCLE="1")
    events_db.reset_connection_log()
    client.post("/", json={"kind": "first"})
    first = events_db.backend_pids()
    time.sleep(1.2)
    client.post("/", json={"kind": "second"})
    assert events_db.backend_pids() != first
    assert events_db.connections_opened() == 2


def test_request_after_restart_of_the_server_succeeds(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    assert client.post("/", json={"kind": "before-restart"}).status_code == 201
    events_db.restart()
    assert client.post("/", json={"kind": "after-restart"}).status_code == 201

"""The engine is a per-instance global: one pooled connection serves every request."""

import threading
import time

from function_harness import HeldConnection, load_function

from db.dialect import PING


def test_hundred_invocations_open_exactly_one_server_connection(events_db, monkeypatch):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    events_db.reset_connection_log()
    for i in range(100):
        assert client.post("/", json={"kind": f"k{i}"}).status_code == 201
    assert events_db.connections_opened() == 1
    assert events_db.connection_count() == 1


def test_the_same_backend_serves_consecutive_requests(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    client.get("/")
    first = events_db.backend_pids()
    for _ in range(5):
        client.post("/", data=b"")
    assert events_db.backend_pids() == first and len(first) == 1


def test_engine_is_built_on_first_request_not_at_import(events_db, monkeypatch):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    assert events_db.connection_count() == 0
    assert client.post("/nowhere").status_code == 404
    assert events_db.connection_count() == 0
    client.get("/")
    assert events_db.connection_count() == 1


def test_pool_never_exceeds_the_configured_size(events_db, monkeypatch):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="2")
    statuses = []

    def post_many():
        for _ in range(20):
            statuses.append(client.post("/", json={"kind": "concurrent"}).status_code)

    threads = [threading.Thread(target=post_many) for _ in range(6)]
    events_db.reset_connection_log()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 120
    assert 1 <= events_db.connections_opened() <= 2


def test_exhausted_pool_answers_503_after_pool_timeout(events_db, monkeypatch):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_TIMEOUT="0.3")
    client.get("/")
    with HeldConnection(module.runtime.database()):  # the only pooled connection
        started = time.monotonic()
        reply = client.post("/", json={"kind": "waits"})
        elapsed = time.monotonic() - started
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    assert 0.25 <= elapsed < 3
    assert client.post("/", json={"kind": "after"}).status_code == 201


def test_warm_invocation_sends_the_ping_and_one_statement(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    client.post("/", json={"kind": "warm-up"})
    events_db.reset_statement_log()
    client.post("/", json=[{"kind": "batch"}] * 100)
    statements = events_db.statements()
    assert len(statements) == 2, statements
    assert statements[0] == PING
    assert statements[1].startswith("INSERT INTO events")


def test_pooled_connection_disables_nagles_algorithm(events_db, monkeypatch):
    # pg8000 leaves it on; large batches would wait for delayed ACKs (see db/dialect.py).
    import socket

    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    client.get("/")
    with HeldConnection(module.runtime.database()) as held:
        sock = held.connection.connection.dbapi_connection._usock  # pg8000's socket, read by the test only
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1

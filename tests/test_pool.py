"""The connection pool: one pooled engine per instance serves every request, a connection
the server ended or that grew too old is replaced before it fails a request and is gone
from the server before its replacement opens, and on SIGTERM the pool is closed cleanly
after the requests in flight.

- The engine is a per-instance global: one pooled connection serves every request.
- A pooled connection the server ended is replaced before it fails a request.
- A connection the pool replaces (recycled, or invalidated after a fault) is gone from
  the server before its replacement opens, so the server never counts more of the
  function's connections than the pool, even while a busy server is slow to end a
  backend.
- On SIGTERM the requests in flight finish, then every pooled connection is closed
  with PostgreSQL's Terminate message, well within Cloud Run's 10 s grace period.
  The real `functions-framework` command serves the function with a pool of 4 and
  4 threads (the deployment's concurrency = pool size), all 4 busy: each request
  is inside its INSERT, held by a table lock the test takes. SIGTERM arrives, the
  lock is released a second later, and the server must answer all four, then
  close the pool and exit. The PostgreSQL log is read at DEBUG1 for the function's
  role: a connection dropped without a Terminate message shows there as
  "unexpected EOF on client connection", a reset as "Connection reset by peer".
"""

import json
import os
import signal
import threading
import time

import pytest
from fault_helpers import ConnectionSampler
from function_harness import FunctionServer, HeldConnection, load_function

from db.dialect import PING
from devtools.deadlines import scaled


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
    assert 0.25 <= elapsed < 0.3 + scaled(2.7)  # DB_POOL_TIMEOUT, then a 503 at once
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


RECYCLE = 1  # seconds: DB_POOL_RECYCLE's minimum
SLOW_EXIT = 0.15  # seconds the old backend is kept from running, as on a saturated server


def test_recycled_connection_has_left_the_server_before_its_replacement_connects(events_db, monkeypatch):
    _, client = load_function(
        monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1", DB_POOL_RECYCLE=str(RECYCLE)
    )
    assert client.post("/", json={"kind": "first"}).status_code == 201
    [old_backend] = events_db.backend_pids()
    time.sleep(RECYCLE + 0.1)  # the next checkout replaces the connection

    os.kill(old_backend, signal.SIGSTOP)
    resume = threading.Timer(SLOW_EXIT, os.kill, (old_backend, signal.SIGCONT))
    resume.start()
    with ConnectionSampler(events_db, interval=0.005) as sampler:
        assert client.post("/", json={"kind": "after-recycle"}).status_code == 201
        after = events_db.backend_pids()
    resume.join()  # the old backend runs again, even if the request was quicker

    assert old_backend not in after and len(after) == 1
    assert sampler.most == 1, sampler.counts


ROLE, PASSWORD = "shutdown_probe", "Shutdown-Probe-Pw-5e21"
POOL_SIZE = 4
CLOUD_RUN_GRACE_SECONDS = 10
LOCK_HELD_AFTER_SIGTERM = 1.0


@pytest.fixture
def probe_role(events_db):
    """A role whose connections log at DEBUG1, so a missing Terminate message is visible."""
    events_db.set_password(ROLE, PASSWORD)
    events_db.execute(f"ALTER ROLE {ROLE} SET log_min_messages = 'debug1'", database="postgres")
    return events_db.dsn(user=ROLE, password=PASSWORD)


def backends_waiting_on_a_lock(events_db) -> int:
    return events_db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = :role AND wait_event_type = 'Lock'", role=ROLE
    )[0][0]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_lets_in_flight_requests_finish_then_closes_the_pool_cleanly(events_db, probe_role, tmp_path):
    env = {
        "DATABASE_URL": probe_role,
        "DB_POOL_SIZE": str(POOL_SIZE),
        "THREADS": str(POOL_SIZE),
        "LOG_EXECUTION_ID": "true",
    }
    server = FunctionServer(env, tmp_path / "function.log", separate_streams=True).start()
    log_mark = events_db.log_position()
    statuses: list[int] = []
    try:
        with events_db.block_inserts() as blocker:
            clients = [
                threading.Thread(
                    target=lambda n=n: statuses.append(
                        server.request(
                            body=json.dumps({"kind": "in-flight", "payload": {"n": n}}).encode()
                        ).status
                    )
                )
                for n in range(POOL_SIZE)
            ]
            for client in clients:
                client.start()
            wait_until(
                lambda: backends_waiting_on_a_lock(events_db) == POOL_SIZE,
                scaled(15),
                "every INSERT to be in flight",
            )

            server.terminate()
            sigterm_at = time.monotonic()
            time.sleep(LOCK_HELD_AFTER_SIGTERM)
            blocker.release()
            exit_code = server.wait(timeout=CLOUD_RUN_GRACE_SECONDS)
            shutdown_seconds = time.monotonic() - sigterm_at
        for client in clients:
            client.join(timeout=scaled(5))
    finally:
        server.stop()

    assert statuses == [201] * POOL_SIZE
    assert len(events_db.rows()) == POOL_SIZE
    assert exit_code == 0
    assert LOCK_HELD_AFTER_SIGTERM <= shutdown_seconds < CLOUD_RUN_GRACE_SECONDS
    print(
        f"\nshutdown took {shutdown_seconds:.2f} s after SIGTERM "
        f"({shutdown_seconds - LOCK_HELD_AFTER_SIGTERM:.2f} s after the requests could finish)"
    )

    # The pool was closed after the last request's line, once, in the worker.
    messages = [entry["message"] for entry in server.log_lines()]
    assert messages.count("database connections closed") == 1
    assert messages[-1] == "database connections closed"
    assert messages.count("POST / 201") == POOL_SIZE
    assert server.stderr_text() == ""

    wait_until(lambda: events_db.connection_count(ROLE) == 0, 5, "the backends to end")
    ends = [entry.message for entry in events_db.log_entries(since=log_mark) if entry.user == ROLE]
    assert ends, "the server log has nothing from the function's role"
    assert not [message for message in ends if "reset by peer" in message or "unexpected EOF" in message]

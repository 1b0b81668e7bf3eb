"""On SIGTERM the requests in flight finish, then every pooled connection is closed
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
import threading
import time

import pytest
from function_harness import FunctionServer

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
                lambda: backends_waiting_on_a_lock(events_db) == POOL_SIZE, 15, "every INSERT to be in flight"
            )

            server.terminate()
            sigterm_at = time.monotonic()
            time.sleep(LOCK_HELD_AFTER_SIGTERM)
            blocker.release()
            exit_code = server.wait(timeout=CLOUD_RUN_GRACE_SECONDS)
            shutdown_seconds = time.monotonic() - sigterm_at
        for client in clients:
            client.join(timeout=5)
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

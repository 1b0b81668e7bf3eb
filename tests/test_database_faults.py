"""Database faults: whatever goes wrong between the function and its database is a 503
with Retry-After (never a hang, a 500 or a traceback), stores nothing it did not
report, says when an outcome is unknown, and the first request after the fault is
gone succeeds.

- The database down: a fast 503 with Retry-After, the process keeps serving,
  and the first request after the database is back succeeds.
- A database that accepts TCP connections and then never answers: a 503 within the
  socket timeout, never a hang, and success once it answers again.
- An INSERT stuck behind another transaction's lock is ended by the server
  (statement_timeout, SQLSTATE 57014) before the client gives up on the connection:
  a 503 with nothing stored, the pooled connection kept, and never more server
  connections than the pool. Only a connection lost after the statement was sent,
  with no answer from the server, is reported as an unknown outcome.
- Exactly when a 503 says `"outcome": "unknown"`: the INSERT had been sent and then the
  connection ended without the server's error, or CockroachDB reported an ambiguous
  result (40003, XXUUU). A server error after the INSERT was sent means the server
  rolled it back; anything before it was sent stored nothing. (The lock-wait tests
  above and test_load_with_faults.py produce the PostgreSQL cases for real;
  CockroachDB's codes are built here as pg8000 raises them.)
- Faults of the deployment, produced for real against PostgreSQL, are not bugs: each
  is a 503 with Retry-After, stores nothing, and leaves exactly one ERROR line that
  names the fix, with no traceback. Each test breaks one thing the way an operator
  could: the schema not applied, a user without privileges, a read-only database, a
  lock_timeout, a wrong database name, a CockroachDB-only option, a rejected, missing
  or empty password, a schema that drifted.
"""

import os
import signal
import threading
import time
import urllib.parse
import uuid

import pg8000.dbapi
import pytest
import sqlalchemy.exc
from app_fixtures import apply_schema
from fault_helpers import ConnectionSampler, error_lines, ids_held_by_another_transaction, wait_until_idle
from function_harness import FunctionServer, load_function

from core.outcomes import outcome_for_error
from db.faults import OPERATOR_FIXES, translate
from devtools.deadlines import scaled

# What a timing assertion allows above the limit it checks: "within the limit", not "a hang".
SLACK = scaled(1.0)


def test_database_down_then_back_through_the_http_server(events_db, tmp_path):
    env = {"DATABASE_URL": events_db.dsn(), "DB_TIMEOUT": "1"}
    with FunctionServer(env, tmp_path / "function.log") as server:
        assert server.request(body=b'{"kind": "before"}').status == 201
        with events_db.stopped():
            for _ in range(3):
                started = time.monotonic()
                reply = server.request(body=b'{"kind": "while-down"}', timeout=scaled(10))
                assert reply.status == 503
                assert reply.headers["Retry-After"] == "5"
                assert time.monotonic() - started < 1.0 + SLACK  # within DB_TIMEOUT
            assert server.request("GET").status == 503
        reply = server.request(body=b'{"kind": "after"}')
        assert reply.status == 201
    assert sorted(row["kind"] for row in events_db.rows().values()) == ["after", "before"]
    log = (tmp_path / "function.log").read_text()
    assert "Traceback" not in log


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
    assert elapsed < TIMEOUT + SLACK
    assert client.post("/", json={"kind": "answered"}).status_code == 201


def test_pooled_connection_to_a_server_gone_silent_is_a_503_not_a_hang(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_TIMEOUT=str(TIMEOUT))
    assert client.post("/", json={"kind": "before"}).status_code == 201
    reply, elapsed = post_while_paused(events_db, client, "during")
    assert reply.status_code == 503
    # The pre-ping times out, then one reconnect attempt times out.
    assert elapsed < 2 * TIMEOUT + SLACK
    assert client.post("/", json={"kind": "after"}).status_code == 201
    assert [row["kind"] for row in events_db.rows().values()].count("during") == 0


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
    wait_until_idle(events_db)  # a still-running INSERT would commit (the lock is gone) before this returns

    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    # The server answered (no unknown outcome: the client's socket timeout did not end it)
    # and rolled the statement back.
    assert "outcome" not in reply.get_json()
    assert STATEMENT_TIMEOUT * 0.95 <= elapsed < DB_TIMEOUT + SLACK
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
    wait_until_idle(events_db)  # no INSERT still running: the table holds all it will
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
            request.join(timeout=scaled(10))
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
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if events_db.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid", pid=backend
        ) == [["Lock"]]:
            return
        time.sleep(0.01)
    raise AssertionError("the function's INSERT never waited on the lock")


def server_error(code: str, message: str) -> sqlalchemy.exc.DatabaseError:
    return sqlalchemy.exc.DatabaseError(
        "INSERT", None, pg8000.dbapi.DatabaseError({"S": "ERROR", "C": code, "M": message})
    )


def lost_connection() -> sqlalchemy.exc.InterfaceError:
    return sqlalchemy.exc.InterfaceError("INSERT", None, pg8000.dbapi.InterfaceError("network error"))


@pytest.mark.parametrize(
    "error",
    [
        lost_connection(),
        server_error("40003", "result is ambiguous"),
        server_error("XXUUU", "result is ambiguous (error=rpc error)"),
    ],
    ids=["connection lost", "40003", "XXUUU"],
)
def test_after_the_insert_was_sent_these_leave_the_outcome_unknown(error):
    outcome = outcome_for_error(translate(error, statement_sent=True))
    assert (outcome.status, outcome.body.get("outcome")) == (503, "unknown")
    assert outcome.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    "error, sent",
    [
        (server_error("57014", "canceling statement due to statement timeout"), True),
        (server_error("40001", "restart transaction"), True),
        (lost_connection(), False),
        (server_error("40003", "result is ambiguous"), False),
    ],
    ids=["statement timeout", "serialization failure", "lost before sending", "ambiguous before sending"],
)
def test_a_server_error_or_a_failure_before_sending_is_a_plain_503(error, sent):
    outcome = outcome_for_error(translate(error, statement_sent=sent))
    assert outcome.status == 503 and "outcome" not in outcome.body


def post_one_event(monkeypatch, dsn: str, event: dict | None = None):
    _, client = load_function(monkeypatch, DATABASE_URL=dsn, DB_TIMEOUT="2")
    return client.post("/", json=event or {"kind": "fault"})


def the_one_error_line(capfd) -> str:
    return the_one_error_line_of(capfd.readouterr().out)


def assert_unavailable(reply) -> None:
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    assert reply.get_json() == {"error": "the database is unavailable; retry later"}


@pytest.fixture
def create_role(events_db):
    """make(name, member_of_app=True, login=True) -> password: a role for one test, dropped after it.

    Its password joins the secrets the leak check looks for. (Other tests list the
    server's login roles, so none may outlive its test.)
    """
    made = []

    def make(name: str, *, member_of_app: bool = True, login: bool = True) -> str:
        password = f"pw-{uuid.uuid4().hex}"
        events_db.secrets.add(password)
        membership = " IN ROLE app" if member_of_app else ""
        events_db.execute(
            f"""CREATE ROLE "{name}" {"LOGIN" if login else "NOLOGIN"} PASSWORD '{password}'{membership}"""
        )
        made.append(name)
        return password

    yield make
    for name in made:
        events_db.terminate_backends(user=name)
        events_db.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def database_without_schema(events_server):
    """The DSN of a new database owned by app, with no events table."""
    name = f"bare_{uuid.uuid4().hex[:8]}"
    events_server.execute(f"CREATE DATABASE {name} OWNER app")
    yield events_server.dsn(database=name)
    events_server.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_missing_table_says_to_run_the_migration(events_db, database_without_schema, monkeypatch, capfd):
    assert_unavailable(post_one_event(monkeypatch, database_without_schema))
    message = the_one_error_line(capfd)
    assert "42P01" in message and "python -m db migrate" in message


# The events table as the first release created it, before scheduled_at (an older deployment).
OLDER_EVENTS_TABLE = """CREATE TABLE events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    kind TEXT NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}',
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


def test_health_without_the_events_table_is_a_503_naming_the_migration(
    events_db, database_without_schema, monkeypatch, capfd
):
    _, client = load_function(monkeypatch, DATABASE_URL=database_without_schema)
    assert_unavailable(client.get("/"))
    message = the_one_error_line(capfd)
    assert "42P01" in message and "python -m db migrate" in message


def test_health_with_a_column_missing_is_a_503_naming_the_migration(
    events_db, database_without_schema, monkeypatch, capfd
):
    """The table exists but lacks a column the INSERT writes: GET / says so, as a POST would,
    so a deploy's smoke test catches a migration that was never run."""
    name = database_without_schema.rsplit("/", 1)[1]
    events_db.execute(OLDER_EVENTS_TABLE, database=name)
    _, client = load_function(monkeypatch, DATABASE_URL=database_without_schema)
    assert_unavailable(client.get("/"))
    message = the_one_error_line(capfd)
    assert "42703" in message and "python -m db migrate" in message
    # What the migration adds; the instance already running is then healthy.
    events_db.execute("ALTER TABLE events ADD COLUMN scheduled_at TIMESTAMPTZ", database=name)
    assert client.get("/").status_code == 200


def test_user_without_privilege_says_what_to_grant(events_db, create_role, monkeypatch, capfd):
    password = create_role("no_grants", member_of_app=False)
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(user="no_grants", password=password)))
    message = the_one_error_line(capfd)
    assert "42501" in message and OPERATOR_FIXES["42501"] in message
    assert events_db.rows() == {}


def test_read_only_database_says_to_use_a_writable_node(
    events_db, database_without_schema, monkeypatch, capfd
):
    apply_schema(database_without_schema)
    name = urllib.parse.urlsplit(database_without_schema).path.lstrip("/")
    # What a database in recovery, or a failover's read-only phase, answers to a write.
    events_db.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    assert_unavailable(post_one_event(monkeypatch, database_without_schema))
    message = the_one_error_line(capfd)
    assert "25006" in message and OPERATOR_FIXES["25006"] in message


def test_lock_timeout_from_a_role_setting_is_a_prompt_503(events_db, create_role, monkeypatch, capfd):
    password = create_role("impatient")
    events_db.execute("ALTER ROLE impatient SET lock_timeout = '100ms'")
    held = str(uuid.uuid4())
    with ids_held_by_another_transaction(events_db, held):
        reply = post_one_event(monkeypatch, events_db.dsn(user="impatient", password=password), {"id": held})
    assert_unavailable(reply)
    message = the_one_error_line(capfd)
    assert "55P03" in message and OPERATOR_FIXES["55P03"] in message
    assert events_db.rows() == {}


def test_unknown_database_says_to_fix_the_dsn_path(events_db, monkeypatch, capfd):
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(database="no_such_database")))
    message = the_one_error_line(capfd)
    assert "3D000" in message and OPERATOR_FIXES["3D000"] in message


def test_cockroachdb_cluster_option_against_postgresql_says_it_is_cockroachdb_only(
    events_db, monkeypatch, capfd
):
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(options="--cluster=events-1234")))
    message = the_one_error_line(capfd)
    assert "42704" in message and "--cluster" in message and "CockroachDB" in message


def test_rejected_password_says_to_update_the_secret(events_db, monkeypatch, capfd):
    events_db.secrets.add("not-the-password")
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(password="not-the-password")))
    message = the_one_error_line(capfd)
    assert "28P01" in message and OPERATOR_FIXES["28P01"] in message


def test_role_that_may_not_log_in_says_to_check_the_user(events_db, create_role, monkeypatch, capfd):
    password = create_role("cannot_login", login=False)
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(user="cannot_login", password=password)))
    message = the_one_error_line(capfd)
    assert "28000" in message and OPERATOR_FIXES["28000"] in message


@pytest.mark.parametrize("credentials", ["app:", "app"], ids=["empty-password", "no-password"])
def test_dsn_without_a_password_says_to_add_it(events_db, monkeypatch, capfd, credentials):
    dsn = f"postgresql://{credentials}@127.0.0.1:{events_db.port}/app"
    assert_unavailable(post_one_event(monkeypatch, dsn))
    message = the_one_error_line(capfd)
    assert "has no password" in message and "put the user's password in the connection string" in message


# A payload value that must reach no log line, whatever the server's error detail quotes.
MARKER = "payload-marker-5e1d"


@pytest.fixture
def warm_function(events_db, database_without_schema, monkeypatch):
    """(client, DSN, database name): a function whose connection has already stored an event."""
    apply_schema(database_without_schema)
    _, client = load_function(monkeypatch, DATABASE_URL=database_without_schema, DB_TIMEOUT="2")
    assert client.post("/", json={"kind": "warm"}).status_code == 201
    return client, database_without_schema, urllib.parse.urlsplit(database_without_schema).path.lstrip("/")


@pytest.mark.parametrize(
    "drift, code",
    [
        ("ALTER TABLE events ADD COLUMN tenant TEXT NOT NULL", "23502"),
        ("ALTER TABLE events RENAME COLUMN payload TO body", "42703"),
    ],
    ids=["not-null-column-added", "payload-column-renamed"],
)
def test_a_schema_that_drifted_while_warm_is_a_503_naming_the_fix_without_the_payload(
    events_db, warm_function, capfd, drift, code
):
    client, _, name = warm_function
    events_db.execute("DELETE FROM events", database=name)
    events_db.execute(drift, database=name)
    capfd.readouterr()
    reply = client.post("/", json={"kind": "after-drift", "payload": {"secret": MARKER}})
    assert_unavailable(reply)
    out = capfd.readouterr().out
    message = the_one_error_line_of(out)
    assert code in message and OPERATOR_FIXES[code] in message
    assert MARKER not in out and "Failing row" not in out
    assert events_db.execute("SELECT count(*) FROM events", database=name) == [[0]]


def test_a_check_constraint_the_event_breaks_is_a_400_naming_it_without_the_payload(
    events_db, warm_function, capfd
):
    client, _, name = warm_function
    events_db.execute(
        "ALTER TABLE events ADD CONSTRAINT payload_names_a_tenant CHECK (payload ? 'tenant') NOT VALID",
        database=name,
    )
    capfd.readouterr()
    reply = client.post("/", json={"kind": "no-tenant", "payload": {"secret": MARKER}})
    assert reply.status_code == 400
    assert "payload_names_a_tenant" in reply.get_json()["error"]
    out = capfd.readouterr().out
    assert MARKER not in out and "Failing row" not in out and "Traceback" not in out
    assert events_db.execute("SELECT count(*) FROM events", database=name) == [[1]]


def the_one_error_line_of(out: str) -> str:
    assert "Traceback" not in out and "stack_trace" not in out
    [error] = error_lines(out)
    return error["message"]

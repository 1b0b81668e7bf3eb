"""Faults of the deployment, produced for real against PostgreSQL, are not bugs: each is a
503 with Retry-After, stores nothing, and leaves exactly one ERROR line that names the
fix, with no traceback.

Each test breaks one thing the way an operator could: the schema not applied, a user
without privileges, a read-only database, a lock_timeout, a wrong database name, a
CockroachDB-only option, a rejected, missing or empty password, a schema that drifted.
"""

import urllib.parse
import uuid

import pytest
from app_fixtures import apply_schema
from fault_helpers import error_lines, ids_held_by_another_transaction
from function_harness import load_function

from db.faults import OPERATOR_FIXES


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

"""Faults of the deployment, produced for real against PostgreSQL, are not bugs: each is a
503 with Retry-After, stores nothing, and leaves exactly one ERROR line that names the
fix, with no traceback.

Each test breaks one thing the way an operator could: the schema not applied, a user
without privileges, a read-only database, a lock_timeout, a wrong database name, a
CockroachDB-only option, a rejected, missing or empty password.
"""

import urllib.parse
import uuid

import pytest
from app_fixtures import apply_schema
from fault_helpers import error_lines, ids_held_by_another_transaction
from function_harness import load_function

from db.errors import OPERATOR_FIXES


def post_one_event(monkeypatch, dsn: str, event: dict | None = None):
    _, client = load_function(monkeypatch, DATABASE_URL=dsn, DB_TIMEOUT="2")
    return client.post("/", json=event or {"kind": "fault"})


def the_one_error_line(capsys) -> str:
    out = capsys.readouterr().out
    assert "Traceback" not in out and "stack_trace" not in out
    [error] = error_lines(out)
    return error["message"]


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


def test_missing_table_says_to_run_the_migration(events_db, database_without_schema, monkeypatch, capsys):
    assert_unavailable(post_one_event(monkeypatch, database_without_schema))
    message = the_one_error_line(capsys)
    assert "42P01" in message and "python -m db migrate" in message


def test_user_without_privilege_says_what_to_grant(events_db, create_role, monkeypatch, capsys):
    password = create_role("no_grants", member_of_app=False)
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(user="no_grants", password=password)))
    message = the_one_error_line(capsys)
    assert "42501" in message and OPERATOR_FIXES["42501"] in message
    assert events_db.rows() == {}


def test_read_only_database_says_to_use_a_writable_node(
    events_db, database_without_schema, monkeypatch, capsys
):
    apply_schema(database_without_schema)
    name = urllib.parse.urlsplit(database_without_schema).path.lstrip("/")
    # What a database in recovery, or a failover's read-only phase, answers to a write.
    events_db.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    assert_unavailable(post_one_event(monkeypatch, database_without_schema))
    message = the_one_error_line(capsys)
    assert "25006" in message and OPERATOR_FIXES["25006"] in message


def test_lock_timeout_from_a_role_setting_is_a_prompt_503(events_db, create_role, monkeypatch, capsys):
    password = create_role("impatient")
    events_db.execute("ALTER ROLE impatient SET lock_timeout = '100ms'")
    held = str(uuid.uuid4())
    with ids_held_by_another_transaction(events_db, held):
        reply = post_one_event(monkeypatch, events_db.dsn(user="impatient", password=password), {"id": held})
    assert_unavailable(reply)
    message = the_one_error_line(capsys)
    assert "55P03" in message and OPERATOR_FIXES["55P03"] in message
    assert events_db.rows() == {}


def test_unknown_database_says_to_fix_the_dsn_path(events_db, monkeypatch, capsys):
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(database="no_such_database")))
    message = the_one_error_line(capsys)
    assert "3D000" in message and OPERATOR_FIXES["3D000"] in message


def test_cockroachdb_cluster_option_against_postgresql_says_it_is_cockroachdb_only(
    events_db, monkeypatch, capsys
):
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(options="--cluster=events-1234")))
    message = the_one_error_line(capsys)
    assert "42704" in message and "--cluster" in message and "CockroachDB" in message


def test_rejected_password_says_to_update_the_secret(events_db, monkeypatch, capsys):
    events_db.secrets.add("not-the-password")
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(password="not-the-password")))
    message = the_one_error_line(capsys)
    assert "28P01" in message and OPERATOR_FIXES["28P01"] in message


def test_role_that_may_not_log_in_says_to_check_the_user(events_db, create_role, monkeypatch, capsys):
    password = create_role("cannot_login", login=False)
    assert_unavailable(post_one_event(monkeypatch, events_db.dsn(user="cannot_login", password=password)))
    message = the_one_error_line(capsys)
    assert "28000" in message and OPERATOR_FIXES["28000"] in message


@pytest.mark.parametrize("credentials", ["app:", "app"], ids=["empty-password", "no-password"])
def test_dsn_without_a_password_says_to_add_it(events_db, monkeypatch, capsys, credentials):
    dsn = f"postgresql://{credentials}@127.0.0.1:{events_db.port}/app"
    assert_unavailable(post_one_event(monkeypatch, dsn))
    message = the_one_error_line(capsys)
    assert "has no password" in message and "put the user's password in the connection string" in message

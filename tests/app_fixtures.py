"""Fixtures about the application: the events table, function instances, leak checks.

conftest.py imports them, next to the server fixtures (PostgreSQL, Secret Manager).
"""

from __future__ import annotations

import itertools
import logging
import urllib.parse

import pytest

import function_harness
from core.logs import CloudLoggingFormatter
from db.migrate import apply_schema

_database_names = itertools.count(1)


class EventsDatabase:
    """The session's PostgreSQL server, seen from the events table's side."""

    def __init__(self, server):
        self.server = server
        self.secrets: set[str] = {server.app_password, server.admin_password}

    def __getattr__(self, name):
        return getattr(self.server, name)

    def dsn(self, user: str = "app", password: str | None = None, database: str = "app",
            host: str | None = None, **query: str) -> str:
        """The server's DSN for `user`; the password is remembered for the leak check."""
        if password is not None:
            self.secrets.add(password)
        return self.server.dsn(user=user, database=database, password=password, host=host, **query)

    def execute(self, sql: str, database: str = "app", **params):
        return self.server.execute(sql, database=database, **params)

    def set_password(self, user: str, password: str) -> None:
        """Create `user` (a member of app, so it may write events) or change its password."""
        self.secrets.add(password)
        if not self.execute("SELECT 1 FROM pg_roles WHERE rolname = :user", user=user):
            self.execute(f'CREATE ROLE "{user}" LOGIN IN ROLE app')
        self.server.set_password(user, password)

    def rows(self) -> dict[str, dict]:
        return {
            str(row_id): {"kind": kind, "payload": payload, "scheduled_at": scheduled_at}
            for row_id, kind, payload, scheduled_at in self.execute(
                "SELECT id, kind, payload, scheduled_at FROM events")
        }


@pytest.fixture(scope="session")
def events_server(postgres):
    """The session server with the events table created."""
    database = EventsDatabase(postgres)
    apply_schema(database.dsn())
    return database


@pytest.fixture
def events_db(events_server):
    """An empty events table, and fresh connection and statement logs."""
    events_server.execute("TRUNCATE events")
    events_server.reset_connection_log()
    events_server.reset_statement_log()
    return events_server


@pytest.fixture(scope="session")
def tls_events_server(postgres_tls):
    """(EventsDatabase, TlsFiles) for the TLS-only server, with the events table."""
    server, tls = postgres_tls
    database = EventsDatabase(server)
    apply_schema(database.dsn(host="localhost", sslmode="verify-full", sslrootcert=str(tls.ca_cert)))
    return database, tls


@pytest.fixture
def fresh_database(events_server):
    """The DSN of a new, empty database owned by app."""
    name = f"fresh_{next(_database_names)}"
    events_server.execute(f"CREATE DATABASE {name} OWNER app", database="postgres")
    yield events_server.dsn(database=name)
    events_server.execute(f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


@pytest.fixture(autouse=True)
def dispose_function_instances():
    yield
    function_harness.dispose_instances()


class _CaptureHandler(logging.Handler):
    """Formats records exactly as the function's stdout handler does, into the capture."""

    def __init__(self):
        super().__init__()
        self.setFormatter(CloudLoggingFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        function_harness.capture.add(self.format(record))


@pytest.fixture(autouse=True)
def no_secret_leaks(request):
    """After every test: no password, DSN or secret payload in any log line or response."""
    capture = function_harness.capture
    capture.texts.clear()
    capture.log_files.clear()
    handler = _CaptureHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    yield
    root.removeHandler(handler)
    secrets = set()
    if "events_server" in request.fixturenames or "events_db" in request.fixturenames:
        secrets = request.getfixturevalue("events_server").secrets
    secrets |= {urllib.parse.quote(s, safe="") for s in secrets}
    for text in capture.everything():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into the function's output: {text[:200]!r}"

"""Fixtures about the application: the events table, function instances, leak checks.

conftest.py imports them, next to the server fixtures (PostgreSQL, Secret Manager).
"""

from __future__ import annotations

import itertools
import json
import logging

import function_harness
import pg8000.native
import pytest
from function_harness import KnownSecrets, known_secrets

from core.logs import CloudLoggingFormatter
from db.dsn import parse_dsn
from db.migrate import apply_schema

_database_names = itertools.count(1)


def driver_connection(dsn: str, **overrides) -> pg8000.native.Connection:
    """A plain pg8000 connection made from what db.dsn makes of `dsn` (its TLS context,
    its options), without the function's engine."""
    target = parse_dsn(dsn)
    url = target.url
    return pg8000.native.Connection(
        url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
        **{**target.connect_args, **overrides},
    )


class EventsDatabase:
    """The session's PostgreSQL server, seen from the events table's side."""

    def __init__(self, server):
        self.server = server
        known_secrets.add(server.app_password, server.admin_password)

    def __getattr__(self, name):
        return getattr(self.server, name)

    @property
    def secrets(self) -> KnownSecrets:
        """The leak check's registry (every test server's secrets, not only this one's)."""
        return known_secrets

    def dsn(
        self,
        user: str = "app",
        password: str | None = None,
        database: str = "app",
        host: str | None = None,
        **query: str,
    ) -> str:
        """The server's DSN for `user`; the password is remembered for the leak check."""
        if password is not None:
            known_secrets.add(password)
        dsn = self.server.dsn(user=user, database=database, password=password, host=host, **query)
        known_secrets.add(dsn)
        return dsn

    def execute(self, sql: str, database: str = "app", **params):
        return self.server.execute(sql, database=database, **params)

    def set_password(self, user: str, password: str) -> None:
        """Create `user` (a member of app, so it may write events) or change its password."""
        known_secrets.add(password)
        if not self.execute("SELECT 1 FROM pg_roles WHERE rolname = :user", user=user):
            self.execute(f'CREATE ROLE "{user}" LOGIN IN ROLE app')
        self.server.set_password(user, password)

    def block_inserts(self) -> InsertBlocker:
        """Make every INSERT into events wait until the returned blocker is released."""
        return InsertBlocker(self.server)

    def rows(self) -> dict[str, dict]:
        return {
            str(row_id): {"kind": kind, "payload": payload, "scheduled_at": scheduled_at}
            for row_id, kind, payload, scheduled_at in self.execute(
                "SELECT id, kind, payload, scheduled_at FROM events"
            )
        }


class InsertBlocker:
    """A lock on the events table, held by the superuser in an open transaction, that
    every INSERT waits for (SHARE ROW EXCLUSIVE conflicts with INSERT's ROW EXCLUSIVE):
    a database that is slow for writes, with reads and health checks unaffected."""

    def __init__(self, server):
        self._connection = server.connect("postgres", database="app")
        self._connection.run("BEGIN")
        self._connection.run("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")

    def release(self) -> None:
        """Let the waiting INSERTs go (idempotent)."""
        if self._connection is not None:
            try:
                self._connection.run("COMMIT")
            finally:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> InsertBlocker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


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
    """Formats records exactly as the function's stdout handler does, into the capture
    (the output after scrubbing), and keeps what each record said before (its
    message, arguments, fields and exception), to check that no code hands a
    secret to the logger."""

    def __init__(self):
        super().__init__()
        self.setFormatter(CloudLoggingFormatter())
        self.raw: list[tuple[str, list[str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call still has its parts checked
            message = str(record.msg)
        args = record.args if isinstance(record.args, tuple) else (record.args,) if record.args else ()
        fields = getattr(record, "fields", {})  # the function's structured extras
        error = [str(record.exc_info[1])] if record.exc_info and record.exc_info[1] else []
        self.raw.append((record.name, [message, *map(str, args), *_strings_in(fields), *error]))
        function_harness.capture.add(self.format(record))


def secrets_handed_to_loggers(raw: list[tuple[str, list[str]]], on_purpose: set[str]) -> list[str]:
    """The messages and arguments, before scrubbing, that hold a known secret
    (records of the loggers in `on_purpose` excepted)."""
    plain = known_secrets.plain()
    return [
        f"{logger_name}: {part}"
        for logger_name, parts in raw
        if logger_name not in on_purpose
        for part in parts
        if any(secret in part for secret in plain)
    ]


def _strings_in(value) -> list[str]:
    """Every string value in a parsed JSON document (keys are names the code chose,
    not data: a password that equals a field name, like "status", is not leaked by it)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    return []


def _parsed_json(text: str):
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


def leaks_in_output(text: str) -> list[str]:
    """The parts of one output (a response body, a log file) that hold a known secret:
    the values of JSON documents and lines, and any other text whole."""
    plain, every_form = known_secrets.plain(), known_secrets.every_form()
    document = _parsed_json(text)
    if document is not None:
        return [value for value in _strings_in(document) if any(secret in value for secret in plain)]
    leaks = []
    for line in text.splitlines():
        parsed = _parsed_json(line)
        if parsed is None:
            leaks += [line] if any(secret in line for secret in every_form) else []
        else:
            leaks += [value for value in _strings_in(parsed) if any(secret in value for secret in plain)]
    return leaks


@pytest.fixture(autouse=True)
def no_secret_leaks(request):
    """After every test: no password or DSN of any test server in any log record the
    function's process made (before scrubbing), nor in any log line or response
    body (after). A test that logs a secret on purpose, to test the scrubber,
    names that logger: @pytest.mark.secret_logged_on_purpose("some.library")."""
    capture = function_harness.capture
    capture.texts.clear()
    capture.log_files.clear()
    handler = _CaptureHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    yield
    root.removeHandler(handler)
    on_purpose = {
        name for marker in request.node.iter_markers("secret_logged_on_purpose") for name in marker.args
    }
    try:
        handed = secrets_handed_to_loggers(handler.raw, on_purpose)
        assert not handed, f"a logger was handed a secret: {handed[0][:200]!r}"
        for text in capture.everything():
            leaks = leaks_in_output(text)
            assert not leaks, f"a secret leaked into the function's output: {leaks[0][:200]!r}"
    finally:
        known_secrets.end_test()

"""SQLAlchemy's pg8000 dialect, made to work on CockroachDB, to fail cleanly and to save round trips.

Five things about the stock `postgresql+pg8000` dialect matter for a serverless function:

1. CockroachDB's `version()` says "CockroachDB CCL v24.3.1 (...)", which the
   PostgreSQL dialect cannot parse: it raises AssertionError on the first
   connection. (sqlalchemy-cockroachdb solves this but ships no pg8000 driver.)
   Here the server version comes from `server_version`, which CockroachDB sets to
   the PostgreSQL version it is compatible with.

2. pg8000 lets some socket errors escape as bare OSError (seen: TimeoutError and
   ssl errors while connecting; reported: ConnectionResetError from the pre-ping
   of a connection the server ended). SQLAlchemy only recognises DB-API
   exceptions, so such a pre-ping raises instead of reconnecting, and a
   connection that died mid-statement would be put back in the pool. Translating them into pg8000's InterfaceError("network
   error"), which the dialect already treats as a disconnect, lets SQLAlchemy's
   own machinery invalidate the connection and open a fresh one. Closing a
   connection the server already ended is quietly accepted.

3. pg8000 leaves Nagle's algorithm on, which stalls large statements and the
   TLS start-up on the server's delayed ACK; connections here open their socket
   with TCP_NODELAY before the first byte, like libpq.

4. pg8000 runs every statement with parameters unnamed: Parse, then Describe
   and Bind, then Execute, each waiting for the server, so three network round
   trips. `run_prepared` instead prepares a statement once per connection (one
   round trip, on first use) and then runs it as Bind/Execute/Sync: one round
   trip. With the pool's pre-ping, a warm invocation waits for two round trips,
   the least this design allows.

5. Once the round trips are down to two, a warm invocation's own CPU is most
   of what is left, so `run_prepared` runs on the pooled connection's driver
   connection directly, without SQLAlchemy's per-execution context and result
   objects (they cost more CPU than the driver's whole Bind/Execute).

The prepared path uses pg8000 methods that its own `native.PreparedStatement` uses
(`prepare_statement`, `execute_named`), and the pre-ping pg8000's
`execute_simple` (see do_ping); pg8000 is pinned in requirements.txt, and
tests/test_round_trips.py fails on an upgrade that changes them.
"""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import pg8000.dbapi
import sqlalchemy.exc
from pg8000.converters import make_params
from pg8000.core import TERMINATE_MSG
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.pg8000 import PGDialect_pg8000
from sqlalchemy.engine import Connection

from db import stats

DRIVERNAME = "postgresql+pg8000_cockroachdb"
# SQLSTATEs after which a prepared statement is prepared again, once:
# 0A000 "cached plan must not change result type" (PostgreSQL and CockroachDB,
# after a schema change alters the statement's result columns) and 26000
# "prepared statement does not exist" (the server no longer has it: evicted,
# or the session was reset by a connection pooler in front of the cluster).
REPREPARE = frozenset({"0A000", "26000"})
# The pool's pre-ping (see PG8000CockroachDialect.do_ping).
PING = "-- ping"
# Seconds closing a connection waits for the server to end its backend (see
# PreparingConnection.close): enough for a busy server, short enough for a dead one.
CLOSE_WAIT = 0.25


def run_prepared(connection: Connection, statement: str, parameters: Sequence[Any]) -> list[list[Any]]:
    """Run `statement` ("%s" placeholders) through the pooled connection's own
    prepared statement and return its rows: one round trip once prepared.

    This goes straight to the driver connection, so it does itself the two things
    SQLAlchemy's execution would: a failure that shows the connection is dead
    invalidates it (the pool replaces it on the next checkout), and the driver's
    error is raised as SQLAlchemy's DBAPIError, like every other database error.
    """
    dbapi_connection = connection.connection.dbapi_connection
    if not isinstance(dbapi_connection, PreparingConnection):
        raise TypeError(f"run_prepared needs a {DRIVERNAME} connection")
    try:
        try:
            return _run_or_prepare_again(dbapi_connection, statement, parameters)
        except OSError as err:
            raise _network_error(err) from err
    except pg8000.dbapi.Error as err:
        dialect = connection.dialect
        disconnected = dialect.is_disconnect(err, dbapi_connection, None)
        if disconnected:
            connection.invalidate(err)
        raise sqlalchemy.exc.DBAPIError.instance(
            statement,
            parameters,
            err,
            pg8000.dbapi.Error,
            hide_parameters=True,
            connection_invalidated=disconnected,
            dialect=dialect,
        ) from err


def _run_or_prepare_again(connection: PreparingConnection, statement: str, parameters: Sequence[Any]) -> Any:
    if not connection._in_transaction and not connection.autocommit:
        connection.execute_simple("begin transaction")
    try:
        context = connection.run_prepared(statement, parameters)
    except pg8000.dbapi.DatabaseError as err:
        # Outside a transaction a failed statement leaves nothing behind, so
        # preparing again and running once more is safe; inside one, the
        # transaction is aborted and the error is the caller's to handle.
        if _sqlstate(err) not in REPREPARE or connection._in_transaction:
            raise
        connection.forget_prepared(statement, close=_sqlstate(err) != "26000")
        context = connection.run_prepared(statement, parameters)
    return context.rows or []


class PreparingConnection(pg8000.dbapi.Connection):
    """A pg8000 connection that keeps its prepared statements: they live exactly
    as long as the server session, so a new connection (after a kill, a
    recycle, a restart) starts with none and prepares again."""

    # pg8000's own: the buffered stream and the raw socket (None once closed).
    _sock: Any
    _usock: Any

    def __init__(self, *args: Any, **kwargs: Any):
        sock = None
        if kwargs.get("sock") is None and kwargs.get("unix_sock") is None:
            sock = kwargs["sock"] = _nodelay_socket(kwargs)
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            if sock is not None:
                sock.close()  # no-op if TLS took the socket over (the wrapper owns it then)
            raise
        # operation text -> (its "$n" form, statement name, result columns, input converters)
        self.prepared: dict[str, tuple[str, bytes, Any, Any]] = {}

    def run_prepared(self, operation: str, args: Any) -> Any:
        """Bind/Execute/Sync on this connection's prepared statement for `operation`
        (prepared first if this connection has not yet): one round trip."""
        entry = self.prepared.get(operation)
        if entry is None:
            # pg8000 rewrites "%s" placeholders into "$1" by scanning the text
            # character by character; done once per statement and connection
            # here, not on every execution (it was a fifth of a warm invocation's CPU).
            statement, _ = pg8000.dbapi.convert_paramstyle(pg8000.dbapi.paramstyle, operation, args)
            entry = self.prepared[operation] = (statement, *self.prepare_statement(statement, ()))
        statement, name, columns, input_funcs = entry
        # The dialect's paramstyle is "format": the values are the arguments, in order.
        params = make_params(self.py_types, args)
        record = stats.record()
        if record is not None:
            record.statement_sent = True
        return self.execute_named(name, params, columns, input_funcs, statement)

    def close(self) -> None:
        """End the session and wait, briefly, until the server has ended it.

        pg8000 sends Terminate and closes the socket at once; the server ends the
        backend whenever it gets to it. A replacement opened meanwhile (SQLAlchemy
        closes a connection, then opens the next) would be counted beside the
        exiting backend, one more than the pool. The server closes its end only
        after the backend has left pg_stat_activity, so that close is awaited.

        The socket's buffered file is closed here too, discarding anything a failed
        flush left in it: collected later, it would try again and print
        "Exception ignored ... BrokenPipeError" with a traceback on stderr.
        """
        buffered, raw = self._sock, self._usock
        if raw is None:
            raise pg8000.dbapi.InterfaceError("connection is closed")
        self._sock = self._usock = None
        try:
            buffered.write(TERMINATE_MSG)
            buffered.flush()
            _await_end_of_stream(raw, CLOSE_WAIT)
        except OSError as err:
            raise pg8000.dbapi.InterfaceError(f"network error ({type(err).__name__})") from err
        finally:
            with contextlib.suppress(OSError, ValueError):
                buffered.close()
            raw.close()

    def forget_prepared(self, operation: str, *, close: bool) -> None:
        _, name, _, _ = self.prepared.pop(operation)
        if close:
            self.close_prepared_statement(name)
        else:
            self._statement_nums.discard(name)


def _await_end_of_stream(sock: socket.socket, seconds: float) -> None:
    """Read and drop whatever arrives until the peer closes, or `seconds` pass."""
    deadline = time.monotonic() + seconds
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(4096):
                return
    except OSError:
        return  # timed out, or the connection is already gone: nothing to wait for


def _grant_slot(at: float) -> None:
    # The pool calls connect or the pre-ping as soon as it has a slot for the
    # work: whatever time the checkout spent before that was spent waiting.
    record = stats.record()
    if record is not None:
        record.grant_slot(at)


def _sqlstate(error: BaseException) -> str | None:
    fields = error.args[0] if error.args else None
    return fields.get("C") if isinstance(fields, dict) else None


def _disconnect_on_socket_error(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a dialect method so a bare OSError becomes a recognised disconnect."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except OSError as err:
            raise _network_error(err) from err

    return wrapper


def _network_error(err: OSError) -> pg8000.dbapi.InterfaceError:
    # "network error" is the text PGDialect_pg8000.is_disconnect looks for.
    return pg8000.dbapi.InterfaceError(f"network error ({type(err).__name__}: {err})")


def _nodelay_socket(kwargs: dict[str, Any]) -> socket.socket:
    """The connection's TCP socket, opened as pg8000 would but with TCP_NODELAY from the start.

    pg8000 leaves Nagle's algorithm on, as libpq does not. Turned on only after
    connecting, it still stalls the start-up: the client's last TLS handshake
    message and its start-up message are two small writes in a row, and the second
    waits for the server's delayed ACK, 40 ms on Linux (measured here: a TLS +
    SCRAM connection took 56-80 ms, 10-27 ms with the option set before the
    first byte). Later, a large batch's last segment would wait the same way (a
    500-event insert took 96 ms instead of 12 ms).
    """
    sock = socket.create_connection(
        (kwargs.get("host", "localhost"), kwargs.get("port", 5432)),
        kwargs.get("timeout"),
        kwargs.get("source_address"),
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if kwargs.get("tcp_keepalive", True):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


def parse_server_version(version: str, server_version_setting: str | None = None) -> tuple[int, ...]:
    """The PostgreSQL-compatible version of a server, from `version()`.

    For CockroachDB, whose version() names its own release, the PostgreSQL
    compatibility version in its `server_version` setting (e.g. "13.0.0") is used.
    """
    if version.startswith("CockroachDB") and server_version_setting:
        version = "PostgreSQL " + server_version_setting
    match = re.match(r".*?(?:PostgreSQL|EnterpriseDB) (\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if not match:
        raise ValueError(f"cannot determine the server version from {version!r}")
    return tuple(int(part) for part in match.groups() if part is not None)


class PG8000CockroachDialect(PGDialect_pg8000):
    """pg8000 dialect that speaks to CockroachDB and PostgreSQL alike."""

    supports_statement_cache = True

    def initialize(self, connection: Any) -> None:
        # The set-up queries SQLAlchemy sends on an engine's first connection are
        # not the request's statements: a connection lost during them leaves
        # nothing of the request's in doubt, so they are kept out of its RunStats.
        token = stats.current.set(None)
        try:
            super().initialize(connection)
        finally:
            stats.current.reset(token)

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        version = connection.exec_driver_sql("select version()").scalar()
        setting = None
        if version.startswith("CockroachDB"):
            setting = connection.exec_driver_sql("show server_version").scalar()
        return parse_server_version(version, setting)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        _grant_slot(started)
        try:
            connection = PreparingConnection(*args, **kwargs)
        except OSError as err:
            # Refused, timed out, TLS verification failed: a DB-API error, so
            # SQLAlchemy wraps it like any other connection failure.
            raise pg8000.dbapi.InterfaceError(f"could not connect ({type(err).__name__}: {err})") from err
        except AttributeError as err:
            # pg8000 raises this when the server asks for a password and the
            # DSN's is empty: a configuration fault, not a bug. Any other
            # AttributeError is a bug, and stays one.
            if kwargs.get("password"):
                raise
            raise pg8000.dbapi.InterfaceError(
                "could not connect: the server asks for a password and the connection string has no password; "
                "put the user's password in the connection string (percent-encoded)"
            ) from err
        record = stats.record()
        if record is not None:
            record.new_connection = True
            record.connect_ms = round((time.perf_counter() - started) * 1000, 3)
        return connection

    def do_ping(self, dbapi_connection: Any) -> bool:
        started = time.perf_counter()
        _grant_slot(started)
        try:
            # A statement that is only a comment: the server answers "empty query"
            # in the same one round trip, with no result for pg8000 to describe
            # and convert, at 60 % of the client CPU of the stock "SELECT 1"
            # (valgrind). pgx's pool checks connections with the same query.
            dbapi_connection.execute_simple(PING)
            return True
        finally:
            record = stats.record()
            if record is not None:
                record.ping_ms = round((time.perf_counter() - started) * 1000, 3)

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        record = stats.record()
        if record is not None:
            record.statement_sent = True
        cursor.execute(statement, parameters)

    def do_close(self, dbapi_connection: Any) -> None:
        try:
            super().do_close(dbapi_connection)
        except (OSError, pg8000.dbapi.InterfaceError):
            # Closing sends a Terminate message, which fails on a connection the
            # server already ended; pg8000 closes the socket regardless. Nothing
            # is lost, so this is not worth the pool's error log and traceback.
            pass

    # Every call that talks to the server on an open connection.
    do_ping = _disconnect_on_socket_error(do_ping)
    do_execute = _disconnect_on_socket_error(do_execute)
    do_execute_no_params = _disconnect_on_socket_error(PGDialect_pg8000.do_execute_no_params)
    do_executemany = _disconnect_on_socket_error(PGDialect_pg8000.do_executemany)
    do_commit = _disconnect_on_socket_error(PGDialect_pg8000.do_commit)
    do_rollback = _disconnect_on_socket_error(PGDialect_pg8000.do_rollback)


registry.register(DRIVERNAME.replace("+", "."), __name__, "PG8000CockroachDialect")

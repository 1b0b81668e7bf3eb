"""SQLAlchemy's pg8000 dialect, made to speak to CockroachDB, through the dialect's own hooks.

The stock `postgresql+pg8000` dialect does everything else; this one changes
five things, each a hook SQLAlchemy's dialects override:

- `_get_server_version_info`: CockroachDB's `version()` names its own release
  ("CockroachDB CCL v24.3.1 ..."), which the PostgreSQL dialect cannot parse;
  its `server_version` setting holds the PostgreSQL version it is compatible with.
- `connect`: the socket is opened here with TCP_NODELAY and handed to
  pg8000's connection as `sock=`, as cloud-sql-python-connector does; pg8000 leaves
  Nagle's algorithm on, which delays small writes by the server's delayed ACK.
- `do_close`: waits until the server has ended the connection, so its
  replacement is never counted beside it; closing a connection the server
  already ended is not an error.
- `do_ping`: the pool's pre-ping sends a statement that is only a comment: one
  round trip with no result to describe. A socket error pg8000 lets through
  becomes its "network error", which the dialect treats as a disconnect.
- the registered name, `postgresql+pg8000_cockroachdb`.

`prepared` runs the INSERT through pg8000's own prepared statement.
"""

from __future__ import annotations

import re
import socket
import time
import weakref
from typing import Any

import pg8000.dbapi
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.pg8000 import PGDialect_pg8000
from sqlalchemy.engine import Connection

DRIVERNAME = "postgresql+pg8000_cockroachdb"
PING = "-- ping"
# Seconds closing a connection waits for the server to end it (see do_close):
# enough for a busy server, short enough for a dead one.
CLOSE_WAIT = 0.25
# Each open connection's duplicate socket, for do_close to watch.
_end_watches: weakref.WeakKeyDictionary[Any, socket.socket] = weakref.WeakKeyDictionary()


class PG8000CockroachDialect(PGDialect_pg8000):
    """The pg8000 dialect for CockroachDB and PostgreSQL alike."""

    supports_statement_cache = True

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        version = connection.exec_driver_sql("select version()").scalar()
        setting = None
        if version.startswith("CockroachDB"):
            setting = connection.exec_driver_sql("show server_version").scalar()
        return parse_server_version(version, setting)

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        sock = end_watch = None
        try:
            if cparams.get("sock") is None and cparams.get("unix_sock") is None:
                sock = cparams["sock"] = _nodelay_socket(cparams)
                end_watch = sock.dup()  # see do_close
            # pg8000.connect() does not pass `sock` on; the connection class it returns takes it.
            connection = self.loaded_dbapi.Connection(*cargs, **cparams)
        except BaseException as err:
            for opened in (sock, end_watch):
                if opened is not None:
                    opened.close()  # a no-op once TLS has taken the socket over
            if isinstance(err, OSError):  # refused, timed out, TLS verification failed
                raise pg8000.dbapi.InterfaceError(f"could not connect ({type(err).__name__}: {err})") from err
            if isinstance(err, AttributeError) and not cparams.get("password"):
                # What pg8000 raises when the server asks for a password and none was given.
                raise pg8000.dbapi.InterfaceError(
                    "could not connect: the server asks for a password and the connection string has no password; "
                    "put the user's password in the connection string (percent-encoded)"
                ) from err
            raise
        if end_watch is not None:
            _end_watches[connection] = end_watch
        return connection

    def do_close(self, dbapi_connection: Any) -> None:
        try:
            dbapi_connection.close()
        except (pg8000.dbapi.InterfaceError, OSError):
            # The Terminate message cannot reach a server that already ended the
            # connection; pg8000 closes the socket regardless, so nothing is lost.
            pass
        end_watch = _end_watches.pop(dbapi_connection, None)
        if end_watch is not None:
            _await_server_close(end_watch)

    def do_ping(self, dbapi_connection: Any) -> bool:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(PING)
        except OSError as err:
            raise pg8000.dbapi.InterfaceError(f"network error ({type(err).__name__})") from err
        finally:
            cursor.close()
        return True


def prepared(connection: Connection, key: str, sql: str) -> Any:
    """The pooled connection's own prepared statement for `sql` (":name" parameters).

    SQLAlchemy runs every statement unnamed: Parse/Describe/Bind/Execute, three
    network round trips with pg8000. pg8000's `Connection.prepare` makes a
    statement that runs in one (Bind/Execute/Sync) once prepared. It is kept in
    the connection's `info`, so it lives exactly as long as the server session:
    a new connection prepares again.
    """
    statement = connection.info.get(key)
    if statement is None:
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None  # a checked-out connection always has one
        statement = connection.info[key] = dbapi_connection.prepare(sql)
    return statement


def forget_prepared(connection: Connection, key: str) -> None:
    """Drop the connection's statement for `key`, so the next use prepares it again."""
    connection.info.pop(key, None)


def parse_server_version(version: str, server_version_setting: str | None = None) -> tuple[int, ...]:
    """The PostgreSQL-compatible version of a server, from `version()`
    (and, for CockroachDB, its `server_version` setting, e.g. "13.0.0")."""
    if version.startswith("CockroachDB") and server_version_setting:
        version = "PostgreSQL " + server_version_setting
    match = re.match(r".*?(?:PostgreSQL|EnterpriseDB) (\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if not match:
        raise ValueError(f"cannot determine the server version from {version!r}")
    return tuple(int(part) for part in match.groups() if part is not None)


def _await_server_close(end_watch: socket.socket) -> None:
    """Wait, briefly, until the server has closed its end of a connection that was sent Terminate.

    The pool opens a replacement right after closing a connection; a server slow
    to end the old backend would count both, one more than the pool. The server
    closes its end once the backend has exited, and a duplicate of the socket
    (which keeps the connection from closing on our side) sees that.
    """
    deadline = time.monotonic() + CLOSE_WAIT
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            end_watch.settimeout(remaining)
            if not end_watch.recv(4096):
                break
    except OSError:
        pass  # timed out, or the connection is already gone: nothing to wait for
    finally:
        end_watch.close()


def _nodelay_socket(cparams: dict[str, Any]) -> socket.socket:
    sock = socket.create_connection(
        (cparams.get("host", "localhost"), cparams.get("port", 5432)),
        cparams.get("timeout"),
        cparams.get("source_address"),
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if cparams.get("tcp_keepalive", True):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


registry.register(DRIVERNAME.replace("+", "."), __name__, "PG8000CockroachDialect")

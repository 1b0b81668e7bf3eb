"""What the fault tests share: holding a row lock from another session, counting the
function's server connections while something runs, waiting until none of them is busy,
and reading the function's log lines."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pg8000.native

from devtools.deadlines import scaled
from devtools.function_server import json_lines
from devtools.postgres import ADMIN_USER, APP_USER, PostgresServer

# The superuser's sessions are not the function's: pg_stat_activity counts them apart.
HOLDER_APPLICATION = "fault-tests-holder"
# What a helper's own connection raises while the server is down or restarting.
SERVER_GONE = (OSError, pg8000.native.InterfaceError, pg8000.native.DatabaseError)


def error_lines(text: str) -> list[dict]:
    return [entry for entry in json_lines(text) if entry.get("severity") == "ERROR"]


@contextlib.contextmanager
def ids_held_by_another_transaction(
    server: PostgresServer, *event_ids: str, database: str = "app"
) -> Iterator[pg8000.native.Connection]:
    """Uncommitted inserts of `event_ids` by the superuser: an insert of any of them waits
    until this transaction ends, which it does (rolled back, nothing kept) after the block."""
    holder = server.connect(ADMIN_USER, database=database, application_name=HOLDER_APPLICATION)
    try:
        holder.run("BEGIN")
        for event_id in event_ids:
            holder.run("INSERT INTO events (id, kind) VALUES (CAST(:id AS UUID), 'lock-holder')", id=event_id)
        yield holder
        holder.run("ROLLBACK")
    finally:
        holder.close()


def wait_until_idle(server: PostgresServer, user: str = APP_USER, timeout: float = 5.0) -> None:
    """Returns once no connection of `user` runs a statement or holds a transaction open.

    From then on nothing that user sent can still commit, so what the tables hold is
    final: a test proves "nothing was stored" by this, not by sleeping and hoping.
    """
    busy = (
        "SELECT count(*) FROM pg_stat_activity WHERE usename = :user "
        "AND backend_type = 'client backend' AND state <> 'idle'"
    )
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while server.execute(busy, user=user) != [[0]]:
        if time.monotonic() > deadline:
            raise AssertionError(f"a connection of {user} was still busy after {limit:g} s")
        time.sleep(0.01)


class BackgroundLoop:
    """`step()` every `interval` seconds in a thread, for the length of a `with` block;
    `finish()` once after the last step, in the same thread."""

    def __init__(self, name: str, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def step(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.interval)
        self.finish()


class ConnectionSampler(BackgroundLoop):
    """Counts the server connections of `user` every `interval` seconds, in a thread.

    One superuser connection does the counting (opened again if the server
    restarts; samples while it is down are skipped: it then holds no connection).
    """

    def __init__(self, server: PostgresServer, user: str = APP_USER, interval: float = 0.02):
        super().__init__("connection-sampler", interval)
        self.server = server
        self.user = user
        self.counts: list[int] = []
        self._connection: pg8000.native.Connection | None = None

    @property
    def most(self) -> int:
        return max(self.counts, default=0)

    def step(self) -> None:
        try:
            if self._connection is None:
                self._connection = self.server.connect(
                    ADMIN_USER,
                    database="postgres",
                    timeout=scaled(2),
                    application_name="fault-tests-sampler",
                    startup_params={"log_statement": "none"},
                )
            self.counts.append(
                self._connection.run(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = :user "
                    "AND backend_type = 'client backend'",
                    user=self.user,
                )[0][0]
            )
        except SERVER_GONE:
            self._connection = None  # the server is restarting: try again next time

    def finish(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()

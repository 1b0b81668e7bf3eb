"""The per-instance engine: built once, on first use, shared by every request.

CockroachDB's serverless best practice, as SQLAlchemy settings: a pool that
persists across invocations (core.runtime keeps this object for the instance's
life, outside the handler), one connection per request served at once, no idle
minimum, a 30-minute maximum lifetime, and a health check before each use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from db import errors, stats
from db.dsn import parse_dsn, startup_options
from db.secret import DsnSource
from db.settings import Settings

T = TypeVar("T")
logger = logging.getLogger(__name__)

# The server ends a statement at this fraction of DB_TIMEOUT, so its error
# reaches the client before the client's socket timeout gives up on the
# connection. A statement the client abandoned would otherwise run on (and
# commit) after the caller was told 503, on a backend outside the pool's count.
STATEMENT_TIMEOUT_FRACTION = 0.8


def statement_timeout_ms(settings: Settings) -> int:
    return int(settings.db_timeout * STATEMENT_TIMEOUT_FRACTION * 1000)


class Database:
    """An engine built lazily from a DSN source, rebuilt if the DSN changes."""

    def __init__(
        self, settings: Settings, source: DsnSource, on_secret: Callable[[str], None] = lambda value: None
    ):
        self.settings = settings
        self._source = source
        # Told every secret string (DSN, password) so the log formatter can
        # scrub it from any line, whatever produced that line.
        self._on_secret = on_secret
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._dsn: str | None = None
        self._read_at = float("-inf")
        self._failure: Exception | None = None
        self.connections_opened = 0

    def engine(self) -> Engine:
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build_from_source()
                engine = self._engine
        return engine

    def run(self, work: Callable[[Connection], T], run_stats: stats.RunStats | None = None) -> T:
        """Run `work` on a pooled connection; `run_stats` collects what it cost.

        If connecting fails (a rejected password, a database that does not
        exist, a wrong host, a CA that does not verify) and the DSN can be read
        again, read it, at most every SECRET_RETRY_INTERVAL; if it changed,
        rebuild the engine and run `work` once more (nothing was sent yet, so
        running it again is safe). A fixed secret thus reaches running instances.
        """
        record = run_stats if run_stats is not None else stats.RunStats()
        engine = self.engine()
        try:
            return self._run_on(engine, work, record)
        except sqlalchemy.exc.DBAPIError:
            if record.statement_sent or not self._refresh(engine):
                raise
        return self._run_on(self.engine(), work, record)

    def dispose(self) -> bool:
        """Close every pooled connection cleanly (a Terminate message, then the socket).

        True if there was an engine to close. Connections checked out now are
        not closed here: call it when no work is running.
        """
        with self._lock:
            if self._engine is None:
                return False
            self._engine.dispose()
            self._engine = None
            return True

    def _run_on(self, engine: Engine, work: Callable[[Connection], T], run_stats: stats.RunStats | None) -> T:
        record = run_stats if run_stats is not None else stats.RunStats()
        token = stats.current.set(record)
        try:
            started = time.perf_counter()
            record.begin_checkout(started)
            with engine.connect() as connection:
                record.checkout_ms = round((time.perf_counter() - started) * 1000, 3)
                return work(connection)
        finally:
            stats.current.reset(token)

    def _build_from_source(self) -> Engine:
        """Read the DSN and build the engine; an unusable DSN is retried at most every few seconds."""
        if (
            self._failure is not None
            and time.monotonic() - self._read_at < self.settings.secret_retry_interval
        ):
            raise type(self._failure)(str(self._failure))
        self._read_at = time.monotonic()
        try:
            engine = self._build(self._read_dsn())
        except (errors.ConfigurationError, errors.SecretUnavailable) as err:
            self._failure = err
            raise
        self._failure = None
        return engine

    def _read_dsn(self) -> str:
        dsn = self._source.read()
        self._on_secret(dsn)
        return dsn

    def _refresh(self, failed: Engine) -> bool:
        """Re-read the DSN after connecting with it failed; True if the engine changed."""
        if not self._source.rereadable:
            return False
        with self._lock:
            if self._engine is not failed:
                return True  # another request already rebuilt it
            if time.monotonic() - self._read_at < self.settings.secret_retry_interval:
                return False
            self._read_at = time.monotonic()
            dsn = self._read_dsn()
            if dsn == self._dsn:
                logger.warning(
                    "connecting with the connection string failed and %s has not changed",
                    self._source.describe(),
                )
                return False
            logger.warning(
                "connecting with the connection string failed; using the new value of %s",
                self._source.describe(),
            )
            self._engine = self._build(dsn)
        failed.dispose()
        return True

    def _build(self, dsn: str) -> Engine:
        target = parse_dsn(dsn)
        if target.url.password:
            self._on_secret(target.url.password)
        settings = self.settings
        connect_args = dict(target.connect_args)
        # Set at connection start-up (pg8000's startup message carries it), so it
        # costs no statement and no round trip; CockroachDB and PostgreSQL both
        # read session settings from the `options` startup parameter's `-c`.
        options, timeout_ms, timeout_source = startup_options(target, statement_timeout_ms(settings))
        connect_args["startup_params"] = {"options": options}
        engine = sqlalchemy.create_engine(
            target.url,
            connect_args={**connect_args, "timeout": settings.db_timeout},
            # One connection per request served at once (DB_POOL_SIZE must equal
            # the function's concurrency, 1 by default); opened on demand, so no
            # idle connections are held open for an instance that is never used.
            pool_size=settings.pool_size,
            # Never more than pool_size: max instances x pool size is the most
            # connections the function can ever open against the cluster.
            max_overflow=0,
            # Waiting longer than this for a connection means the instance is
            # overloaded: answer 503 and let the caller retry elsewhere.
            pool_timeout=settings.pool_timeout,
            # CockroachDB recommends a 30-minute maximum connection lifetime, so
            # connections follow node restarts and rebalancing.
            pool_recycle=settings.pool_recycle,
            # A connection idle while the instance was frozen may be dead:
            # check it (one round trip) and replace it before it fails a request.
            pool_pre_ping=True,
            # Each statement is its own implicit transaction: no BEGIN/COMMIT
            # round trips, and CockroachDB retries implicit transactions itself.
            # Set once here; per-checkout isolation changes cost pg8000 extra statements.
            isolation_level="AUTOCOMMIT",
            # Keep bound values (event payloads) out of exception messages and logs.
            hide_parameters=True,
        )
        event.listen(engine, "connect", self._count_connection)
        self._dsn = dsn
        logger.info(
            "database engine created for %s; statement_timeout %d ms, from %s",
            target.describe(),
            timeout_ms,
            timeout_source,
        )
        return engine

    def _count_connection(self, dbapi_connection: object, record: object) -> None:
        self.connections_opened += 1

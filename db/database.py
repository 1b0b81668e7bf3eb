"""The engine, and the per-instance Database that builds it on first use and rebuilds it when the DSN changes.

CockroachDB's serverless best practice, as SQLAlchemy settings (create_engine below).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import sqlalchemy
from sqlalchemy.engine import Connection, Engine

from core.errors import ConfigurationError, SecretUnavailable
from db import faults
from db.dsn import ConnectionTarget, parse_dsn, startup_options
from db.secret import DsnSource

logger = logging.getLogger(__name__)


def create_engine(target: ConnectionTarget, options: EngineOptions) -> Engine:
    # The statement timeout is sent at connection start-up (the `options` startup
    # parameter's `-c`): no statement, no round trip, on CockroachDB and PostgreSQL alike.
    startup, timeout_ms, timeout_source = startup_options(target, options.statement_timeout_ms)
    engine = sqlalchemy.create_engine(
        target.url,
        connect_args={
            **target.connect_args,
            "startup_params": {"options": startup},
            "timeout": options.db_timeout,
        },
        # One connection per concurrent caller of the instance, opened on demand: no idle minimum.
        pool_size=options.pool_size,
        # Never more: instances x pool size bounds the cluster's connections.
        max_overflow=0,
        # Waiting longer than this for a free connection means the instance is overloaded.
        pool_timeout=options.pool_timeout,
        # CockroachDB's 30-minute maximum lifetime: connections follow node restarts and rebalancing.
        pool_recycle=options.pool_recycle,
        # A connection idle while the instance was frozen may be dead: check it before use.
        pool_pre_ping=True,
        # Each statement its own implicit transaction: no BEGIN/COMMIT round trips, and CockroachDB retries it.
        isolation_level="AUTOCOMMIT",
        # Keep bound values (event payloads) out of exception messages.
        hide_parameters=True,
    )
    logger.info(
        "database engine created for %s; statement_timeout %d ms, from %s",
        target.describe(),
        timeout_ms,
        timeout_source,
    )
    return engine


# The server ends a statement at this fraction of DB_TIMEOUT, so its error
# reaches the client before the client's socket timeout gives up: a statement
# the client abandoned would otherwise run on, and commit, after the client gave up.
STATEMENT_TIMEOUT_FRACTION = 0.8


class EngineOptions(NamedTuple):
    """The engine's settings and their defaults (config.py leaves an unset variable to these)."""

    pool_size: int = 1  # CockroachDB's serverless guidance: one connection per function instance
    pool_timeout: float = 5.0
    pool_recycle: int = 1800  # 30 minutes
    db_timeout: float = 10.0  # the driver's socket timeout
    # An unusable DSN (unreadable, malformed, refused) is read again at most this often.
    secret_retry_interval: float = 5.0

    @property
    def statement_timeout_ms(self) -> int:
        return int(self.db_timeout * STATEMENT_TIMEOUT_FRACTION * 1000)


class Ran[T](NamedTuple):
    """What `Database.run`'s work returned, and what getting its connection cost."""

    value: T
    new_connection: bool  # the pool opened a server connection for this work
    checkout_ms: float  # waiting for the pool, plus the pre-ping or the new connection


class Database:
    """An engine built lazily from a DSN source, rebuilt if the DSN changes."""

    def __init__(
        self,
        source: DsnSource,
        options: EngineOptions | None = None,
        on_secret: Callable[[str], None] = lambda value: None,
    ):
        self.options = options or EngineOptions()
        self._source = source
        # Told every secret string (the DSN, the password) so the logs can scrub it.
        self._on_secret = on_secret
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._dsn: str | None = None
        self._read_at = float("-inf")
        self._failure: Exception | None = None

    def run[R](self, work: Callable[[Connection], R]) -> Ran[R]:
        """Run `work` on a pooled connection; raise core.errors' exceptions for database failures.

        If getting a connection fails (a rotated password, a moved host) and the
        DSN can be read again, it is read, at most every `secret_retry_interval`;
        if it changed, the engine is rebuilt and the work runs on it (nothing was
        sent yet). A fixed secret thus reaches running instances.
        """
        engine = self._current_engine()
        started = time.perf_counter()
        try:
            connection = engine.connect()
        except (sqlalchemy.exc.DBAPIError, OSError) as err:
            if not self._refresh(engine):
                raise _translated(err, statement_sent=False) from None
            engine = self._current_engine()
            try:
                connection = engine.connect()
            except (sqlalchemy.exc.DBAPIError, OSError) as retry_err:
                raise _translated(retry_err, statement_sent=False) from None
        except sqlalchemy.exc.TimeoutError as err:
            raise _translated(err, statement_sent=False) from None
        checkout_ms = round((time.perf_counter() - started) * 1000, 3)
        with connection:
            checkouts = connection.info.get("checkouts", 0)
            connection.info["checkouts"] = checkouts + 1
            try:
                return Ran(work(connection), checkouts == 0, checkout_ms)
            except sqlalchemy.exc.DBAPIError as err:  # a statement `work` ran through SQLAlchemy
                raise _translated(err, statement_sent=True) from None
            finally:
                if engine is not self._engine:
                    # The engine was replaced meanwhile: close this connection rather
                    # than return it to the abandoned pool, where it would stay open.
                    connection.invalidate()

    def prepare(self) -> None:
        """Build what reading the DSN needs and holds no secret (before a platform snapshot)."""
        self._source.prepare()

    def dispose(self) -> bool:
        """Close the pooled connections (each with a Terminate message) and forget the engine
        and the DSN: the next `run` reads the DSN again. True if there was an engine."""
        with self._lock:
            engine, self._engine, self._dsn = self._engine, None, None
        if engine is None:
            return False
        engine.dispose()
        return True

    def _current_engine(self) -> Engine:
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build_from_source()
                engine = self._engine
        return engine

    def _build_from_source(self) -> Engine:
        """Read the DSN and build the engine; an unusable DSN is retried at most every few seconds."""
        if (
            self._failure is not None
            and time.monotonic() - self._read_at < self.options.secret_retry_interval
        ):
            raise type(self._failure)(str(self._failure))
        self._read_at = time.monotonic()
        try:
            engine = self._build(self._read_dsn())
        except (ConfigurationError, SecretUnavailable) as err:
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
                return self._engine is not None  # another request already rebuilt it
            if time.monotonic() - self._read_at < self.options.secret_retry_interval:
                return False
            self._read_at = time.monotonic()
            dsn = self._read_dsn()
            if dsn == self._dsn:
                logger.warning("connecting failed and %s has not changed", self._source.describe())
                return False
            logger.warning("connecting failed; using the new value of %s", self._source.describe())
            self._engine = self._build(dsn)
        failed.dispose()
        return True

    def _build(self, dsn: str) -> Engine:
        target = parse_dsn(dsn)
        if target.url.password:
            self._on_secret(target.url.password)
        engine = create_engine(target, self.options)
        self._dsn = dsn
        return engine


def _translated(err: BaseException, *, statement_sent: bool) -> BaseException:
    translated = faults.translate(err, statement_sent=statement_sent)
    return err if translated is None else translated

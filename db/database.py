"""The per-instance engine: built once, on first use, shared by every request.

CockroachDB's serverless best practice, as SQLAlchemy settings: a pool that
persists across invocations (the engine lives in a module-level global, outside
the handler), one connection per request served at once, no idle minimum, a
30-minute maximum lifetime, and a health check before each use.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from db import errors
from db.dsn import parse_dsn
from db.secret import DsnSource
from db.settings import Settings

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Re-read the secret at most this often when the password is rejected, so a
# wrong secret does not turn every request into a Secret Manager call.
SECRET_REFRESH_INTERVAL = 1.0


class Database:
    """An engine built lazily from a DSN source, rebuilt if the password rotates."""

    def __init__(self, settings: Settings, source: DsnSource,
                 on_secret: Callable[[str], None] = lambda value: None):
        self.settings = settings
        self._source = source
        # Told every secret string (DSN, password) so the log formatter can
        # scrub it from any line, whatever produced that line.
        self._on_secret = on_secret
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._dsn: str | None = None
        self._refreshed_at = float("-inf")
        self._opened = threading.local()
        self.connections_opened = 0

    def engine(self) -> Engine:
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build(self._read_dsn())
                engine = self._engine
        return engine

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a pooled connection.

        If the database rejects the password and the DSN comes from Secret
        Manager, read the secret again; if it changed, rebuild the engine and
        run `work` once more (the failure happened while connecting, before
        `work` sent anything, so running it again is safe).
        """
        engine = self.engine()
        try:
            return self._run_on(engine, work)
        except sqlalchemy.exc.DBAPIError as err:
            if not (errors.is_authentication_failure(err) and self._refresh(engine)):
                raise
        return self._run_on(self.engine(), work)

    def opened_connection(self) -> bool:
        """Whether this thread's last `run` opened a new server connection."""
        return getattr(self._opened, "flag", False)

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def _run_on(self, engine: Engine, work: Callable[[Connection], T]) -> T:
        self._opened.flag = False
        with engine.connect() as connection:
            return work(connection)

    def _read_dsn(self) -> str:
        dsn = self._source.read()
        self._on_secret(dsn)
        return dsn

    def _refresh(self, failed: Engine) -> bool:
        """Re-read a secret DSN after a rejected password; True if the engine changed."""
        if not self._source.from_secret:
            return False
        with self._lock:
            if self._engine is not failed:
                return True  # another request already rebuilt it
            if time.monotonic() - self._refreshed_at < SECRET_REFRESH_INTERVAL:
                return False
            self._refreshed_at = time.monotonic()
            dsn = self._read_dsn()
            if dsn == self._dsn:
                logger.warning("the database rejected the password and secret %s has not changed",
                               self._source.secret_name)
                return False
            logger.warning("the database rejected the password; using the new value of secret %s",
                           self._source.secret_name)
            self._engine = self._build(dsn)
        failed.dispose()
        return True

    def _build(self, dsn: str) -> Engine:
        target = parse_dsn(dsn)
        if target.url.password:
            self._on_secret(target.url.password)
        settings = self.settings
        engine = sqlalchemy.create_engine(
            target.url,
            connect_args={**target.connect_args, "timeout": settings.db_timeout},
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
        logger.info("database engine created for %s", target.describe())
        return engine

    def _count_connection(self, dbapi_connection: object, record: object) -> None:
        # The pool opens connections on the thread that checks one out, so a
        # thread-local flag tells exactly which request paid for a new one.
        self._opened.flag = True
        self.connections_opened += 1

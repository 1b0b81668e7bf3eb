"""The per-instance runtime: what one function instance builds once and every request reuses.

An entry point creates one Runtime at import, as a module-level global outside
its handler (CockroachDB's serverless best practice: a pool that persists
across invocations). Creating it reads the configuration and nothing else: the
DSN is read and the engine built by the first request that needs the
database, so a cold start that only answers a 4xx never waits for the secret
or the cluster, and a configuration error is a 503 naming it, not a crashed instance.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Mapping

from config import Config
from core import logs
from db.database import Database
from db.errors import ConfigurationError

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(self, environ: Mapping[str, str] | None = None):
        self._lock = threading.Lock()
        self._database: Database | None = None
        try:
            self.config: Config = Config.from_environ(environ)
            self.config_error: ConfigurationError | None = None
        except ConfigurationError as err:
            self.config, self.config_error = Config(), err
        # A DSN set directly is a secret from the start: a library that logs it
        # (or the whole environment) before the first request must not print it.
        _redact_dsn(self.config.database_url)

    def database(self) -> Database:
        """The instance's Database, created on first use (not at import, not per request)."""
        if self.config_error is not None:
            raise self.config_error
        with self._lock:
            if self._database is None:
                self._database = Database(self.config.dsn_source(), self.config.engine_options(), logs.redact)
            return self._database

    def close(self) -> None:
        """Close the pool's connections, each with a Terminate message, and forget the DSN:
        the next request reads it again and opens a new connection. Called at shutdown,
        once the requests in flight have finished, and before a platform snapshot."""
        with self._lock:
            database, self._database = self._database, None
        if database is not None and database.dispose():
            logger.info("database connections closed")


def _redact_dsn(dsn: str) -> None:
    if not dsn:
        return
    logs.redact(dsn)
    try:
        password = urllib.parse.urlsplit(dsn).password
    except ValueError:  # malformed: the first request will say how
        password = None
    if password:
        logs.redact(urllib.parse.unquote(password))

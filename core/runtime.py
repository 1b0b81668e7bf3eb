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
from db.database import Database, EngineOptions
from db.errors import ConfigurationError
from db.secret import DsnSource

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
                self._database = Database(_dsn_source(self.config), _engine_options(self.config), logs.redact)
            return self._database

    def close(self) -> None:
        """Close the pool's connections, each with a Terminate message, and forget the DSN:
        the next request reads it again and opens a new connection. Called at shutdown,
        once the requests in flight have finished, and before a platform snapshot."""
        with self._lock:
            database, self._database = self._database, None
        if database is not None and database.dispose():
            logger.info("database connections closed")


def _dsn_source(config: Config) -> DsnSource:
    if config.database_url:
        return DsnSource(dsn=config.database_url)
    if config.database_url_file:
        return DsnSource(path=config.database_url_file)
    if config.database_url_secret:
        return DsnSource(
            secret_name=config.database_url_secret,
            timeout=config.secret_timeout,
            emulator_host=config.secret_manager_emulator_host,
        )
    if config.database_url_secret_arn:
        return DsnSource(aws_secret_arn=config.database_url_secret_arn, timeout=config.secret_timeout)
    raise ConfigurationError(
        "set DATABASE_URL to a connection string, DATABASE_URL_FILE to a file holding one "
        "(a mounted secret), DATABASE_URL_SECRET to the Secret Manager version that holds one, "
        "or DATABASE_URL_SECRET_ARN to the AWS Secrets Manager secret that holds one"
    )


def _engine_options(config: Config) -> EngineOptions:
    return EngineOptions(
        pool_size=config.pool_size,
        pool_timeout=config.pool_timeout,
        pool_recycle=config.pool_recycle,
        db_timeout=config.db_timeout,
        secret_retry_interval=config.secret_retry_interval,
    )


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

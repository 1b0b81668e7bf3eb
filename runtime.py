"""The composition root: what one function instance builds once and every request reuses.

Both entry points (main.py, aws/lambda_function.py) create one Runtime at
import, as a module-level global outside their handler (CockroachDB's
serverless best practice: a pool that persists across invocations). It reads
the configuration, builds the Database and the events table on it, and hands
the use case (core.service) that store. Nothing is read from the network here:
the DSN is read and the engine built by the first request that needs the
database, so a cold start that only answers a 4xx never waits for the secret
or the cluster, and a configuration error is a 503 naming it, not a crashed instance.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Mapping, Sequence

from config import Config, SettingError, database_url
from core import logs, service
from core.errors import ConfigurationError
from core.outcomes import Outcome
from core.store import EventRecord, EventStore, Receipt
from db.database import Database, EngineOptions
from db.events import EventsTable
from db.secret import SECRET_TIMEOUT, DsnSource

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(self, environ: Mapping[str, str] | None = None):
        self.config = Config()
        self.config_error: ConfigurationError | None = None
        self._database: Database | None = None
        self.store: EventStore
        try:
            self.config = Config.from_environ(environ)
            self._database = database(self.config, on_secret=logs.redact)
            self.store = EventsTable(self._database)
        except (SettingError, ConfigurationError) as err:
            self.config_error = ConfigurationError(str(err))
            self.store = Misconfigured(self.config_error)
        # A DSN set directly is a secret from the start: a library that logs it
        # (or the whole environment) before the first request must not print it.
        _redact_dsn(database_url(environ))
        self.settings = service.Settings(self.config.google_cloud_project, self.config.log_execution_id)

    def handle(self, request: service.Request) -> Outcome:
        """Answer one request with the use case; never raises."""
        return service.handle(self.store, request, self.settings)

    def database(self) -> Database:
        """The instance's Database (its engine is built on first use, not at import)."""
        if self._database is None:
            assert self.config_error is not None  # the only way to have no Database
            raise self.config_error
        return self._database

    def close(self) -> None:
        """Close the pool's connections, each with a Terminate message, and forget the DSN:
        the next request reads it again and opens a new connection. Called at shutdown,
        once the requests in flight have finished, and before a platform snapshot."""
        if self._database is not None and self._database.dispose():
            logger.info("database connections closed")

    def before_snapshot(self) -> None:
        """Before a platform snapshot (Lambda SnapStart): no connection and no secret in it."""
        self.close()
        # What reading the secret needs but holds no secret (Secrets Manager's client) is built
        # now: restored copies neither import boto3 nor build a client again.
        if self._database is not None:
            self._database.prepare()


class Misconfigured:
    """The store of an instance whose configuration is wrong: every use is a 503 naming the error."""

    def __init__(self, error: ConfigurationError):
        self.error = error

    def store(self, records: Sequence[EventRecord]) -> Receipt:
        raise self.error

    def check(self) -> Receipt:
        raise self.error


def database(config: Config, on_secret: Callable[[str], None] = lambda value: None) -> Database:
    """The Database `config` describes (no connection yet); ConfigurationError if it names none."""
    # Settings left unset keep the engine's defaults, named once in db.database.EngineOptions.
    given = {name: value for name in EngineOptions._fields if (value := getattr(config, name)) is not None}
    return Database(dsn_source(config), EngineOptions(**given), on_secret)


def dsn_source(config: Config) -> DsnSource:
    """Where the connection string comes from: the first of the four variables that is set."""
    if config.database_url:
        return DsnSource(dsn=config.database_url)
    if config.database_url_file:
        return DsnSource(path=config.database_url_file)
    timeout = SECRET_TIMEOUT if config.secret_timeout is None else config.secret_timeout
    if config.database_url_secret:
        return DsnSource(
            secret_name=config.database_url_secret,
            emulator_host=config.secret_manager_emulator_host,
            timeout=timeout,
        )
    if config.database_url_secret_arn:
        return DsnSource(aws_secret_arn=config.database_url_secret_arn, timeout=timeout)
    raise ConfigurationError(
        "set DATABASE_URL to a connection string, DATABASE_URL_FILE to a file holding one "
        "(a mounted secret), DATABASE_URL_SECRET to the Secret Manager version that holds one, "
        "or DATABASE_URL_SECRET_ARN to the AWS Secrets Manager secret that holds one"
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

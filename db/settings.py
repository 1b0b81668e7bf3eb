"""Every setting the function reads from its environment, read in this one place.

Every value has a default that suits a Cloud Function serving one request at a
time; deploy.sh sets the few that depend on the deployment. Nothing else in the
function reads os.environ, so this file is the whole list (the README's
Configuration table mirrors it).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import NamedTuple

from db.errors import ConfigurationError

# Every variable read below: tests start each function instance with none of
# them set except the ones they choose.
VARIABLES = (
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "DATABASE_URL_SECRET",
    "DATABASE_URL_SECRET_ARN",
    "SECRET_MANAGER_EMULATOR_HOST",
    "DB_POOL_SIZE",
    "DB_POOL_TIMEOUT",
    "DB_POOL_RECYCLE",
    "DB_TIMEOUT",
    "SECRET_TIMEOUT",
    "SECRET_RETRY_INTERVAL",
    "BODY_TIMEOUT",
    "GOOGLE_CLOUD_PROJECT",
    "LOG_LEVEL",
    "LOG_EXECUTION_ID",
)

# functions-framework's own test for LOG_EXECUTION_ID (distutils' strtobool, lower case only).
_FRAMEWORK_TRUE_VALUES = ("y", "yes", "t", "true", "on", "1")


def _text(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _number(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> float:
    raw = _text(environ, name)
    if not raw:
        return default
    try:
        value = int(raw, 10) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{name} must be from {minimum:g} to {maximum:g}, got {raw!r}")
    return value


def _body_timeout(environ: Mapping[str, str]) -> float:
    return _number(environ, "BODY_TIMEOUT", DEFAULTS.body_timeout, minimum=0.1, maximum=3600)


# A NamedTuple, not a dataclass: a dataclass's methods are generated and compiled
# at import, about 5 M instructions each, which every cold start pays (README, "Cold start").
class Settings(NamedTuple):
    # Where the connection string comes from; exactly one is used, in this order
    # (see db.secret): the string itself, a file the platform mounts from Secret
    # Manager, or a Secret Manager version read with the client library.
    database_url: str = ""
    database_url_file: str = ""
    database_url_secret: str = ""
    # An AWS Secrets Manager secret's ARN, read with boto3 (AWS Lambda).
    database_url_secret_arn: str = ""
    # host:port of a local server speaking the Secret Manager API (tests, local runs).
    secret_manager_emulator_host: str = ""
    # Connections in the pool. Must equal the number of requests one instance
    # serves at once (the function's --concurrency): one connection each.
    pool_size: int = 1
    # Seconds a request waits for a pooled connection before it gets a 503.
    pool_timeout: float = 5.0
    # Seconds after which a connection is replaced before use: CockroachDB's
    # best practice is a 30-minute maximum lifetime.
    pool_recycle: int = 1800
    # pg8000 socket timeout in seconds, for connecting and for every read, so
    # a silent network fails the request instead of hanging it. The server's
    # statement_timeout is derived from it (db.database.statement_timeout_ms).
    db_timeout: float = 10.0
    # Seconds to wait for Secret Manager before answering 503.
    secret_timeout: float = 5.0
    # An unusable connection string (unreadable, malformed, refused by the
    # database) is read again at most this often; requests in between get 503.
    secret_retry_interval: float = 5.0
    # Seconds a client has to send its whole request body; then 408 and the
    # connection is closed, so a stalled client holds a server thread no longer.
    body_timeout: float = 10.0
    # The project, for Cloud Logging's trace field (deploy.sh sets it: 2nd gen
    # functions do not).
    google_cloud_project: str = ""
    # Whether log lines carry functions-framework's execution id as a label;
    # 2nd gen deployments set LOG_EXECUTION_ID=true.
    log_execution_id: bool = False
    log_level: str = "INFO"

    @staticmethod
    def log_level_from_environment(environ: Mapping[str, str] | None = None) -> str:
        """LOG_LEVEL alone, for configuring logs at import (before anything can fail)."""
        return _text(os.environ if environ is None else environ, "LOG_LEVEL").upper() or "INFO"

    @staticmethod
    def project_from_environment(environ: Mapping[str, str] | None = None) -> str:
        """GOOGLE_CLOUD_PROJECT alone, for log lines (never fails)."""
        return _text(os.environ if environ is None else environ, "GOOGLE_CLOUD_PROJECT")

    @staticmethod
    def secrets_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
        """DATABASE_URL and the password in it (never fails): secrets from the
        start, before any request reads the settings, for the log scrubber."""
        dsn = _text(os.environ if environ is None else environ, "DATABASE_URL")
        if not dsn:
            return []
        try:
            password = urllib.parse.urlsplit(dsn).password
        except ValueError:  # malformed: the first request will say how
            password = None
        return [dsn, urllib.parse.unquote(password)] if password else [dsn]

    @staticmethod
    def log_execution_id_from_environment(environ: Mapping[str, str] | None = None) -> bool:
        """LOG_EXECUTION_ID alone, read exactly as functions-framework reads it,
        so the label is on the function's lines exactly when the framework would add it."""
        value = (os.environ if environ is None else environ).get("LOG_EXECUTION_ID")
        return value in _FRAMEWORK_TRUE_VALUES

    @classmethod
    def body_timeout_from_environment(cls, environ: Mapping[str, str] | None = None) -> float:
        """BODY_TIMEOUT alone, for reading bodies before the database is needed (never fails:
        a bad value falls back to the default here, and from_environment reports it)."""
        try:
            return _body_timeout(os.environ if environ is None else environ)
        except ConfigurationError:
            return DEFAULTS.body_timeout

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = DEFAULTS
        return cls(
            database_url=_text(env, "DATABASE_URL"),
            database_url_file=_text(env, "DATABASE_URL_FILE"),
            database_url_secret=_text(env, "DATABASE_URL_SECRET"),
            database_url_secret_arn=_text(env, "DATABASE_URL_SECRET_ARN"),
            secret_manager_emulator_host=_text(env, "SECRET_MANAGER_EMULATOR_HOST"),
            pool_size=int(
                _number(env, "DB_POOL_SIZE", defaults.pool_size, minimum=1, maximum=1000, integer=True)
            ),
            # Every range is finite: no setting may turn a wait into a hang, and the
            # function's limit (3,600 s for 2nd gen) bounds every timeout.
            pool_timeout=_number(env, "DB_POOL_TIMEOUT", defaults.pool_timeout, minimum=0.1, maximum=3600),
            pool_recycle=int(
                _number(env, "DB_POOL_RECYCLE", defaults.pool_recycle, minimum=1, maximum=86400, integer=True)
            ),
            db_timeout=_number(env, "DB_TIMEOUT", defaults.db_timeout, minimum=0.5, maximum=3600),
            secret_timeout=_number(env, "SECRET_TIMEOUT", defaults.secret_timeout, minimum=0.1, maximum=3600),
            secret_retry_interval=_number(
                env, "SECRET_RETRY_INTERVAL", defaults.secret_retry_interval, minimum=0.1, maximum=3600
            ),
            body_timeout=_body_timeout(env),
            google_cloud_project=cls.project_from_environment(env),
            log_execution_id=cls.log_execution_id_from_environment(env),
            log_level=cls.log_level_from_environment(env),
        )


# Every setting at its default.
DEFAULTS = Settings()

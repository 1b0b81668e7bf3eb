"""The function's configuration: every environment variable it reads, read here and only here.

`Config.from_environ()` reads them all once per instance. Every number has a
finite range, and a value that is malformed or out of range is a
ConfigurationError naming the variable and what it accepts: the instance then
answers 503 with that message in its log, never runs on a silent default.
The README's Configuration table describes each variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple

from db.database import EngineOptions
from db.errors import ConfigurationError
from db.secret import SECRET_TIMEOUT, DsnSource

_ENGINE = EngineOptions()  # the engine's defaults, named once, in db.database

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# functions-framework's own test for LOG_EXECUTION_ID, so the function labels its
# lines exactly when the framework would.
_FRAMEWORK_TRUE_VALUES = ("y", "yes", "t", "true", "on", "1")
# Google's project id rules: 6 to 30 lowercase letters, digits and hyphens, starting with a
# letter, not ending with a hyphen; older projects may carry a domain (example.com:my-project).
PROJECT_ID = re.compile(r"(?:[a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
HOST_PORT = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})")


class Config(NamedTuple):
    # Where the connection string comes from, the first one set wins (db.secret).
    database_url: str = ""
    database_url_file: str = ""
    database_url_secret: str = ""
    # An AWS Secrets Manager secret's ARN, read with boto3 (AWS Lambda).
    database_url_secret_arn: str = ""
    # host:port of a local server speaking the Secret Manager API (tests, local runs).
    secret_manager_emulator_host: str = ""
    # One connection per request an instance serves at once (the function's concurrency).
    pool_size: int = _ENGINE.pool_size
    pool_timeout: float = _ENGINE.pool_timeout
    # CockroachDB's best practice: a connection lives at most 30 minutes.
    pool_recycle: int = _ENGINE.pool_recycle
    # The driver's socket timeout; the server's statement_timeout is derived from it.
    db_timeout: float = _ENGINE.db_timeout
    secret_timeout: float = SECRET_TIMEOUT
    secret_retry_interval: float = _ENGINE.secret_retry_interval
    body_timeout: float = 10.0
    google_cloud_project: str = ""
    log_execution_id: bool = False
    log_level: str = "INFO"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        # Every range is finite: no setting may turn a wait into a hang, and the
        # platform's request limit (3,600 s for 2nd gen) bounds every timeout.
        return cls(
            database_url=_text(env, "DATABASE_URL"),
            database_url_file=_text(env, "DATABASE_URL_FILE"),
            database_url_secret=_text(env, "DATABASE_URL_SECRET"),
            database_url_secret_arn=_text(env, "DATABASE_URL_SECRET_ARN"),
            secret_manager_emulator_host=_host_port(env, "SECRET_MANAGER_EMULATOR_HOST"),
            pool_size=_integer(env, "DB_POOL_SIZE", cls._field_defaults["pool_size"], 1, 1000),
            pool_timeout=_seconds(env, "DB_POOL_TIMEOUT", cls._field_defaults["pool_timeout"], 0.1),
            pool_recycle=_integer(env, "DB_POOL_RECYCLE", cls._field_defaults["pool_recycle"], 1, 86400),
            db_timeout=_seconds(env, "DB_TIMEOUT", cls._field_defaults["db_timeout"], 0.5),
            secret_timeout=_seconds(env, "SECRET_TIMEOUT", cls._field_defaults["secret_timeout"], 0.1),
            secret_retry_interval=_seconds(
                env, "SECRET_RETRY_INTERVAL", cls._field_defaults["secret_retry_interval"], 0.1
            ),
            body_timeout=_seconds(env, "BODY_TIMEOUT", cls._field_defaults["body_timeout"], 0.1),
            google_cloud_project=_project_id(env),
            log_execution_id=env.get("LOG_EXECUTION_ID") in _FRAMEWORK_TRUE_VALUES,
            log_level=_log_level(env),
        )

    def dsn_source(self) -> DsnSource:
        """Where the connection string comes from: the first of the four variables that is set."""
        if self.database_url:
            return DsnSource(dsn=self.database_url)
        if self.database_url_file:
            return DsnSource(path=self.database_url_file)
        if self.database_url_secret:
            return DsnSource(
                secret_name=self.database_url_secret,
                timeout=self.secret_timeout,
                emulator_host=self.secret_manager_emulator_host,
            )
        if self.database_url_secret_arn:
            return DsnSource(aws_secret_arn=self.database_url_secret_arn, timeout=self.secret_timeout)
        raise ConfigurationError(
            "set DATABASE_URL to a connection string, DATABASE_URL_FILE to a file holding one "
            "(a mounted secret), DATABASE_URL_SECRET to the Secret Manager version that holds one, "
            "or DATABASE_URL_SECRET_ARN to the AWS Secrets Manager secret that holds one"
        )

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            pool_size=self.pool_size,
            pool_timeout=self.pool_timeout,
            pool_recycle=self.pool_recycle,
            db_timeout=self.db_timeout,
            secret_retry_interval=self.secret_retry_interval,
        )


# Every variable Config reads: the tests start each instance with none of them
# set but those they choose.
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
    "LOG_EXECUTION_ID",
    "LOG_LEVEL",
)


def _text(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = _text(env, name)
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{name} must be a whole number from {minimum} to {maximum}, got {raw!r}")
    return value


def _seconds(
    env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float = 3600
) -> float:
    raw = _text(env, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not minimum <= value <= maximum:  # NaN fails this too
        raise ConfigurationError(
            f"{name} must be a number of seconds from {minimum:g} to {maximum:g}, got {raw!r}"
        )
    return value


def _log_level(env: Mapping[str, str]) -> str:
    raw = _text(env, "LOG_LEVEL")
    if not raw:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise ConfigurationError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw.upper()


def _project_id(env: Mapping[str, str]) -> str:
    raw = _text(env, "GOOGLE_CLOUD_PROJECT")
    if raw and not PROJECT_ID.fullmatch(raw):
        raise ConfigurationError(
            "GOOGLE_CLOUD_PROJECT must be a project id: 6 to 30 lowercase letters, digits and "
            f"hyphens, starting with a letter and not ending with a hyphen, got {raw!r}"
        )
    return raw


def _host_port(env: Mapping[str, str], name: str) -> str:
    raw = _text(env, name)
    match = HOST_PORT.fullmatch(raw)
    if raw and (match is None or not 1 <= int(match.group(1)) <= 65535):
        raise ConfigurationError(
            f"{name} must be HOST:PORT (port 1 to 65535), such as 127.0.0.1:8085, got {raw!r}"
        )
    return raw

"""The function's configuration: every environment variable it reads, read here and only here.

`Config.from_environ()` reads them all once per instance. Every number has a
finite range, and a value that is malformed or out of range is a SettingError
naming the variable and what it accepts: the instance then answers every request
that needs the database with a 503 and that message in its log, never stores on a silent default. The README's Configuration
table describes each variable.

A leaf: it imports nothing of the project. runtime.py hands the values on. A
database setting left unset is None here and takes the database layer's own
default (db.database.EngineOptions, db.secret.SECRET_TIMEOUT), named once there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# functions-framework's own test for LOG_EXECUTION_ID, so the function labels its
# lines exactly when the framework would.
_FRAMEWORK_TRUE_VALUES = ("y", "yes", "t", "true", "on", "1")
# Google's project id rules: 6 to 30 lowercase letters, digits and hyphens, starting with a
# letter, not ending with a hyphen; older projects may carry a domain (example.com:my-project).
PROJECT_ID = re.compile(r"(?:[a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
HOST_PORT = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})")


class SettingError(ValueError):
    """A variable is malformed or out of range; the message names it and what it accepts."""


class Config(NamedTuple):
    # Where the connection string comes from, the first one set wins (db.secret).
    database_url: str = ""
    database_url_file: str = ""
    database_url_secret: str = ""
    # An AWS Secrets Manager secret's ARN, read with boto3 (AWS Lambda).
    database_url_secret_arn: str = ""
    # host:port of a local server speaking the Secret Manager API (tests, local runs).
    secret_manager_emulator_host: str = ""
    # None: unset, the database layer's default (db.database.EngineOptions says each one's reason).
    pool_size: int | None = None
    pool_timeout: float | None = None
    pool_recycle: int | None = None
    db_timeout: float | None = None
    secret_timeout: float | None = None
    secret_retry_interval: float | None = None
    # Under Cloud Run's 10 s from SIGTERM to SIGKILL: a stalled body ends, and the pool closes, in time.
    body_timeout: float = 5.0
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
            pool_size=_integer(env, "DB_POOL_SIZE", 1, 1000),
            pool_timeout=_seconds(env, "DB_POOL_TIMEOUT", 0.1),
            pool_recycle=_integer(env, "DB_POOL_RECYCLE", 1, 86400),
            db_timeout=_seconds(env, "DB_TIMEOUT", 0.5),
            secret_timeout=_seconds(env, "SECRET_TIMEOUT", 0.1),
            secret_retry_interval=_seconds(env, "SECRET_RETRY_INTERVAL", 0.1),
            body_timeout=_seconds(env, "BODY_TIMEOUT", 0.1) or cls._field_defaults["body_timeout"],
            google_cloud_project=_project_id(env),
            log_execution_id=env.get("LOG_EXECUTION_ID") in _FRAMEWORK_TRUE_VALUES,
            log_level=_log_level(env),
        )


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """DATABASE_URL alone, for the log scrubber, even when another variable is malformed."""
    return _text(os.environ if environ is None else environ, "DATABASE_URL")


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


def _integer(env: Mapping[str, str], name: str, minimum: int, maximum: int) -> int | None:
    raw = _text(env, name)
    if not raw:
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= maximum:
        raise SettingError(f"{name} must be a whole number from {minimum} to {maximum}, got {raw!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, minimum: float, maximum: float = 3600) -> float | None:
    raw = _text(env, name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not minimum <= value <= maximum:  # NaN fails this too
        raise SettingError(f"{name} must be a number of seconds from {minimum:g} to {maximum:g}, got {raw!r}")
    return value


def _log_level(env: Mapping[str, str]) -> str:
    raw = _text(env, "LOG_LEVEL")
    if not raw:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise SettingError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw.upper()


def _project_id(env: Mapping[str, str]) -> str:
    raw = _text(env, "GOOGLE_CLOUD_PROJECT")
    if raw and not PROJECT_ID.fullmatch(raw):
        raise SettingError(
            "GOOGLE_CLOUD_PROJECT must be a project id: 6 to 30 lowercase letters, digits and "
            f"hyphens, starting with a letter and not ending with a hyphen, got {raw!r}"
        )
    return raw


def _host_port(env: Mapping[str, str], name: str) -> str:
    raw = _text(env, name)
    match = HOST_PORT.fullmatch(raw)
    if raw and (match is None or not 1 <= int(match.group(1)) <= 65535):
        raise SettingError(f"{name} must be HOST:PORT (port 1 to 65535), such as 127.0.0.1:8085, got {raw!r}")
    return raw

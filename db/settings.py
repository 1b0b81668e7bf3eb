"""Settings read from the environment, once per instance.

Every value has a default that suits a Cloud Function serving one request at a
time; deploy.sh sets the few that depend on the deployment.
"""

from __future__ import annotations

import dataclasses
import os


class ConfigurationError(Exception):
    """A setting is missing or malformed. Messages never contain secrets."""


def _number(name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    # Connections in the pool. Must equal the number of requests one instance
    # serves at once (the function's --concurrency): one connection each.
    pool_size: int = 1
    # Seconds a request waits for a pooled connection before it gets a 503.
    pool_timeout: float = 5.0
    # Seconds after which a connection is replaced before use: CockroachDB's
    # best practice is a 30-minute maximum lifetime.
    pool_recycle: int = 1800
    # pg8000 socket timeout in seconds, for connecting and for every read, so
    # a silent network fails the request instead of hanging it.
    db_timeout: float = 10.0
    # Seconds to wait for Secret Manager before answering 503.
    secret_timeout: float = 5.0

    @classmethod
    def from_environment(cls) -> "Settings":
        return cls(
            pool_size=int(_number("DB_POOL_SIZE", cls.pool_size, minimum=1, integer=True)),
            pool_timeout=_number("DB_POOL_TIMEOUT", cls.pool_timeout, minimum=0.1),
            pool_recycle=int(_number("DB_POOL_RECYCLE", cls.pool_recycle, minimum=1, integer=True)),
            db_timeout=_number("DB_TIMEOUT", cls.db_timeout, minimum=0.1),
            secret_timeout=_number("SECRET_TIMEOUT", cls.secret_timeout, minimum=0.1),
        )

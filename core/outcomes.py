"""What a request's answer is: the Outcome, and the one policy from an error to an Outcome.

Every status the function answers is decided here or by a RequestRejected
raised in validation (docs/api.md has the table):

    4xx  the request is wrong; nothing was stored
    503  the configuration, the secret, the database or the way to it failed; retry later
         (`outcome: "unknown"` when the connection died after the statement was
         sent: the rows may have been stored, a retry with the same ids is safe)
    500  a bug; the log has the traceback
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from core.errors import ConfigurationError, DatabaseFault, SecretUnavailable, ValueRefused

logger = logging.getLogger("events")

# Seconds a caller should wait before retrying after a 503.
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "the database is unavailable; retry later"
AMBIGUOUS = (
    "the connection to the database was lost after the events were sent: they may or may "
    "not be stored; retry with the same ids (a repeated id is stored once)"
)


class RequestRejected(Exception):
    """A client error: the status to answer and a message naming the problem."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Outcome(NamedTuple):
    """An answer, independent of the platform that sends it."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = {}
    rows: int = 0  # rows inserted


def unavailable(message: str = UNAVAILABLE, **extra: Any) -> Outcome:
    return Outcome(503, {"error": message, **extra}, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def outcome_for_error(exc: BaseException) -> Outcome:
    """The answer to a request that raised `exc`; logs the one line that explains it."""
    if isinstance(exc, RequestRejected):
        logger.warning("rejected request: %s", exc.message)
        return Outcome(exc.status, {"error": exc.message}, exc.headers)
    if isinstance(exc, ValueRefused):
        logger.warning("the database refused a value: %s", exc)
        return Outcome(400, {"error": f"the database refused a value: {exc}; nothing was stored"})
    if isinstance(exc, ConfigurationError):
        logger.error("configuration error: %s", exc)
        return unavailable()
    if isinstance(exc, SecretUnavailable):
        logger.error("the connection string is unavailable: %s", exc)
        return unavailable()
    if isinstance(exc, DatabaseFault):
        code = f"{exc.sqlstate}: " if exc.sqlstate else ""
        if exc.fix:
            logger.error("database fault %s%s; fix: %s", code, exc.message, exc.fix)
        else:
            logger.error("database unavailable: %s%s", code, exc.message)
        if exc.outcome_unknown:
            logger.error("the outcome of the insert is unknown: the connection ended before its answer")
            return unavailable(AMBIGUOUS, outcome="unknown")
        return unavailable()
    logger.error("unexpected error", exc_info=exc)
    return Outcome(500, {"error": "internal error"})

"""What a request's answer is: the Outcome, and the one policy from an error to an Outcome.

Every status the function answers is decided here or by a RequestRejected
raised in validation, so the README's status table is this file:

    4xx  the request is wrong; nothing was stored
    503  the database, the secret or the deployment failed; retry later
         (`outcome: "unknown"` when the connection died after the statement was
         sent: the rows may have been stored, a retry with the same ids is safe)
    500  a bug; the log has the traceback
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc

from db import errors

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


class Outcome:
    """An answer, independent of the web framework that sends it."""

    # A plain class, not a dataclass: a dataclass's methods are generated and
    # compiled at import, about 5 M instructions each, which every cold start pays.
    __slots__ = ("status", "body", "headers", "rows")

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None, rows: int = 0
    ):
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}
        self.rows = rows  # rows inserted

    def __repr__(self) -> str:
        return f"Outcome({self.status}, {self.body!r}, headers={self.headers!r}, rows={self.rows})"


def unavailable(message: str = UNAVAILABLE, **extra: Any) -> Outcome:
    return Outcome(503, {"error": message, **extra}, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def outcome_for_error(exc: BaseException, *, statement_sent: bool = False) -> Outcome:
    """The answer to a request that raised `exc`; logs the one line that explains it.

    `statement_sent`: the INSERT had been sent when `exc` was raised, so a lost
    connection leaves its outcome unknown.
    """
    if isinstance(exc, RequestRejected):
        logger.warning("rejected request: %s", exc.message)
        return Outcome(exc.status, {"error": exc.message}, exc.headers)
    if isinstance(exc, (errors.ConfigurationError, errors.SecretUnavailable)):
        logger.error("database configuration unavailable: %s", exc)
        return unavailable()
    if errors.is_data_exception(exc) and statement_sent:
        # Only a value the request sent is the request's fault; the same class
        # while connecting (a bad `-c` setting in the DSN's options) is the deployment's.
        message = errors.server_message(exc)
        logger.warning("the database refused a value: %s", message)
        return Outcome(400, {"error": f"the database refused a value: {message}"})
    if errors.is_data_exception(exc):
        logger.error("the database refused a connection setting: %s", errors.server_message(exc))
        return unavailable()
    fix = errors.operator_fix(exc)
    if fix is not None:
        logger.error("database fault %s: %s; fix: %s", errors.sqlstate(exc), errors.server_message(exc), fix)
        return unavailable()
    if errors.is_unavailable(exc):
        code = errors.sqlstate(exc)
        logger.error("database unavailable: %s: %s", code or type(exc).__name__, errors.server_message(exc))
        if statement_sent and _outcome_unknown(exc):
            logger.error("the outcome of the insert is unknown: the connection ended before its answer")
            return unavailable(AMBIGUOUS, outcome="unknown")
        return unavailable()
    logger.error("unexpected error", exc_info=exc)
    return Outcome(500, {"error": "internal error"})


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether a failure after the statement was sent may have let it commit.

    A server error (a SQLSTATE) means the server ended the statement and rolled
    it back; only a connection that broke without one (or CockroachDB's own
    "result is ambiguous") leaves the commit unknown.
    """
    code = errors.sqlstate(exc)
    if code is None:
        return isinstance(exc, (OSError, sqlalchemy.exc.DBAPIError))
    return code in ("40003", "XXUUU")

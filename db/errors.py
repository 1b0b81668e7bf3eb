"""What a database exception means for the caller: retry it, refresh the DSN, or 503.

pg8000 reports a server error as DatabaseError whose first argument is the
server's error fields (`C` is the SQLSTATE); SQLAlchemy wraps it in its own
DBAPIError with the original as `.orig`.
"""

from __future__ import annotations

import sqlalchemy.exc

# The server restarted the transaction: safe to run it again from the start.
SERIALIZATION_FAILURE = "40001"
# invalid_password, invalid_authorization_specification: the DSN's credentials
# no longer work, perhaps because the password was rotated.
AUTHENTICATION_FAILURES = frozenset({"28P01", "28000"})
# Faults of the database or the path to it, not of the request: answer 503 and
# let the caller retry. Class 08 connection exceptions, 53 insufficient
# resources (53300 too many connections), 57 operator intervention (shutdown,
# cannot connect now, statement timeout), 58 system errors, 40001 after the
# retries ran out, and CockroachDB's ambiguous results (40003, XXUUU): the
# insert is idempotent for events with an id, so retrying is safe.
UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
UNAVAILABLE_CODES = frozenset({SERIALIZATION_FAILURE, "40003", "XXUUU"})
# Class 22, data exceptions: a value the database refused. Validation should
# catch these first; if one slips through it is still the request's fault.
DATA_EXCEPTION_CLASS = "22"


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a server error, wrapped or not; None for anything else."""
    orig = getattr(exc, "orig", exc)
    fields = orig.args[0] if getattr(orig, "args", None) else None
    if isinstance(fields, dict):
        code = fields.get("C")
        return code if isinstance(code, str) else None
    return None


def server_message(exc: BaseException) -> str:
    """The server's own message (`M`), without SQL or bound parameters."""
    orig = getattr(exc, "orig", exc)
    fields = orig.args[0] if getattr(orig, "args", None) else None
    if isinstance(fields, dict) and isinstance(fields.get("M"), str):
        return fields["M"]
    return str(orig)


def is_authentication_failure(exc: BaseException) -> bool:
    return sqlstate(exc) in AUTHENTICATION_FAILURES


def is_data_exception(exc: BaseException) -> bool:
    code = sqlstate(exc)
    return code is not None and code.startswith(DATA_EXCEPTION_CLASS)


def is_unavailable(exc: BaseException) -> bool:
    """True when the database, or the way to it, failed; not the request or the code."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return True  # no pooled connection was free within pool_timeout
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(
            exc, (sqlalchemy.exc.InterfaceError, sqlalchemy.exc.OperationalError)
        ):
            return True
        code = sqlstate(exc)
        if code is None:
            return False
        # A password that still fails after the secret was read again is a
        # configuration fault: 503 until someone fixes the secret.
        return (code in UNAVAILABLE_CODES or code.startswith(UNAVAILABLE_CLASSES)
                or code in AUTHENTICATION_FAILURES)
    return False

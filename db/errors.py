"""The database layer's exceptions, and what a database exception means for the
caller: retry it, read the secret again, or 503.

pg8000 reports a server error as DatabaseError whose first argument is the
server's error fields (`C` is the SQLSTATE); SQLAlchemy wraps it in its own
DBAPIError with the original as `.orig`.
"""

from __future__ import annotations

import sqlalchemy.exc


class ConfigurationError(Exception):
    """A setting or the connection string is missing or malformed. Messages never contain secrets."""


class SecretUnavailable(Exception):
    """The connection string could not be read. The message names the secret, never its value."""


# The server restarted the transaction: safe to run it again from the start.
SERIALIZATION_FAILURE = "40001"
# Faults of the database or the path to it, not of the request: answer 503 and
# let the caller retry. Class 08 connection exceptions, 53 insufficient
# resources (53300 too many connections), 57 operator intervention (shutdown,
# cannot connect now, statement timeout), 58 system errors, 40001 after the
# retries ran out, and CockroachDB's ambiguous results (40003, XXUUU): the
# insert is idempotent for events with an id, so retrying is safe.
UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
UNAVAILABLE_CODES = frozenset({SERIALIZATION_FAILURE, "40003", "XXUUU"})
# Faults of the deployment, not of the request or the code: 503 until someone
# fixes them, with the fix in the log line.
OPERATOR_FIXES = {
    "42P01": "the events table does not exist: apply the schema with `python -m db migrate`",
    "42501": "the database user may not write the events table: GRANT INSERT, SELECT ON events TO the user",
    "25006": "the database is read-only (a failover or a read-only replica): point the DSN at a writable node",
    "55P03": (
        "a lock was not granted within lock_timeout: a long transaction holds the rows; end it "
        "(pg_locks; CockroachDB: crdb_internal.cluster_locks) or raise the user's lock_timeout"
    ),
    "3D000": "the database named in the DSN does not exist: fix the DSN's path (e.g. /defaultdb)",
    "42704": "the server refused a startup option: `options=--cluster=...` is only for CockroachDB Cloud",
    "28P01": "the database rejected the password: update the secret (a new version) with the right one",
    "28000": "the database refused the user or the connection: check the DSN's user and the cluster's allowlist",
}
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


def is_data_exception(exc: BaseException) -> bool:
    code = sqlstate(exc)
    return code is not None and code.startswith(DATA_EXCEPTION_CLASS)


def operator_fix(exc: BaseException) -> str | None:
    """What an operator must do about a fault of the deployment; None if it is not one."""
    code = sqlstate(exc)
    return OPERATOR_FIXES.get(code) if code else None


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
        return code in UNAVAILABLE_CODES or code.startswith(UNAVAILABLE_CLASSES) or code in OPERATOR_FIXES
    return False

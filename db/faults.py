"""What a SQLAlchemy or driver exception means, as one of core.errors' exceptions.

A server error carries a SQLSTATE (pg8000 puts the server's fields in the
exception's first argument, `C` the code and `M` the message); SQLAlchemy
wraps the driver's exception with the original as `.orig`. Only the code and
the message are kept: the server's detail (`D`) may quote the refused row.
"""

from __future__ import annotations

import re

import pg8000.dbapi
import sqlalchemy.exc

from core.errors import DatabaseFault, ValueRefused

# Faults of the deployment, not of the statement's values or the code: they last until
# someone fixes them, so the fault carries the fix.
OPERATOR_FIXES = {
    "42P01": "the events table does not exist: apply the schema with `python -m db migrate`",
    "42501": "the database user may not write the events table: GRANT INSERT, SELECT ON events TO the user",
    "42703": "the events table lacks a column the function writes: run `python -m db migrate`",
    "42804": "an events column has another type than the function writes: compare it with db/migrations",
    "23502": (
        "the events table has a NOT NULL column the function does not fill: give it a DEFAULT "
        "or drop NOT NULL (db/migrations is what the function expects)"
    ),
    "23505": (
        "a unique index other than the primary key refused the event: the events table has drifted "
        "from db/migrations"
    ),
    "23503": "a foreign key on the events table refused the event: it has drifted from db/migrations",
    "25006": "the database is read-only (a failover or a read-only replica): point the DSN at a writable node",
    "55P03": (
        "a lock was not granted within lock_timeout: a long transaction holds the rows; end it "
        "(pg_locks; CockroachDB: crdb_internal.cluster_locks) or raise the user's lock_timeout"
    ),
    "3D000": "the database named in the DSN does not exist: fix the DSN's path (e.g. /defaultdb)",
    "42704": "the server refused a startup option: `options=--cluster=...` is only for CockroachDB Cloud",
    "28P01": "the database rejected the password: update the secret (a new version) with the right one",
    "28000": "the database refused the user or the connection: check the DSN's user and the cluster's allowlist",
    "53300": (
        "the cluster has no connection left: max instances x DB_POOL_SIZE (the deploy scripts' "
        "--connection-budget; on Lambda, reserved concurrency) must stay under its limit with headroom "
        "(both platforms can briefly run more environments than their limit): lower --max-instances "
        "(on Lambda, --reserved-concurrency) or raise the limit"
    ),
}
# Class 42 is syntax and access: the statement is fixed, so only the schema can make it fail.
SCHEMA_CLASS_FIX = (
    "the events table does not match the function's statement: run `python -m db migrate`, "
    "or compare it with db/migrations"
)
# CockroachDB's "result is ambiguous" codes: the commit may or may not have happened.
AMBIGUOUS_CODES = frozenset({"40003", "XXUUU"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a server error, wrapped or not; None for anything else."""
    fields = _fields(exc)
    code = fields.get("C")
    return code if isinstance(code, str) else None


def server_message(exc: BaseException) -> str:
    """The server's own message (`M`), or the exception's class: never SQL, values or detail."""
    message = _fields(exc).get("M")
    if isinstance(message, str):
        return message
    orig = getattr(exc, "orig", None) or exc
    return type(orig).__name__


def translate(exc: BaseException, *, statement_sent: bool) -> Exception | None:
    """The core.errors exception `exc` means; None if it is not a database failure (a bug).

    `statement_sent`: the INSERT had been sent, so a value refused is the
    request's, and a connection lost without an answer leaves the commit unknown.
    """
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return DatabaseFault("no pooled connection was free within DB_POOL_TIMEOUT")
    if not isinstance(exc, (OSError, sqlalchemy.exc.DBAPIError, pg8000.dbapi.Error)):
        return None
    code, message = sqlstate(exc), server_message(exc)
    if code is None:
        # No answer from the server: refused, timed out, TLS failed, connection lost.
        return DatabaseFault(f"{message}: {_cause(exc)}", outcome_unknown=statement_sent)
    if statement_sent and (code.startswith("22") or code == "23514"):
        return ValueRefused(_refusal(exc, code))
    if code.startswith("22"):
        # Before a statement: a `-c` setting of the DSN's options, whose value the message may quote.
        message = f"SQLSTATE {code}"
    fix = OPERATOR_FIXES.get(code)
    if code == "42501" and not statement_sent:
        fix = _startup_parameter_fix(message) or fix
    if fix is None and code.startswith(("42", "22", "23")):
        # (class 22 before a statement: a bad `-c` setting in the DSN's options)
        fix = SCHEMA_CLASS_FIX if code.startswith(("42", "23")) else "a connection setting was refused"
    return DatabaseFault(
        message, sqlstate=code, fix=fix, outcome_unknown=statement_sent and code in AMBIGUOUS_CODES
    )


def _refusal(exc: BaseException, code: str) -> str:
    """What refused the value, by name: the server's message (`M`) may quote the value
    ("invalid input syntax for type numeric: ..."), so only the code, the constraint
    and the column are kept."""
    fields = _fields(exc)
    names = [
        f"{label} {fields[key]}" for key, label in (("n", "constraint"), ("c", "column")) if fields.get(key)
    ]
    return ", ".join([f"SQLSTATE {code}", *names])


# PostgreSQL's message for a setting the user may not change: the parameter is in quotes.
_PARAMETER = re.compile(r'parameter "([\w.]{1,63})"')


def _startup_parameter_fix(message: str) -> str | None:
    """42501 while connecting is a startup parameter (`-c NAME=VALUE` in the DSN's options)
    that the user may not set, not a missing GRANT on the table."""
    match = _PARAMETER.search(message)
    if match is None:
        return None
    name = match.group(1)
    return (
        f"the user may not set the startup parameter {name} (the DSN's options, -c {name}=...): "
        f"remove it from the options, or GRANT SET ON PARAMETER {name} TO the user (PostgreSQL 15+)"
    )


def _fields(exc: BaseException) -> dict:
    orig = getattr(exc, "orig", exc)
    fields = orig.args[0] if getattr(orig, "args", None) else None
    return fields if isinstance(fields, dict) else {}


def _cause(exc: BaseException) -> str:
    # The driver's text for a network failure ("network error", "could not connect
    # (ConnectionRefusedError ...)") names no secret; the SQLAlchemy wrapper's text
    # would add the statement.
    orig = getattr(exc, "orig", None) or exc
    return str(orig).splitlines()[0][:300] if str(orig) else type(orig).__name__

"""What a SQLAlchemy or driver exception means, as one of db.errors' exceptions.

A server error carries a SQLSTATE (pg8000 puts the server's fields in the
exception's first argument, `C` the code and `M` the message); SQLAlchemy
wraps the driver's exception with the original as `.orig`. Only the code and
the message are kept: the server's detail (`D`) may quote the refused row.
"""

from __future__ import annotations

import pg8000.dbapi
import sqlalchemy.exc

from db.errors import DatabaseFault, ValueRefused

# Faults of the deployment, not of the request or the code: 503 until someone
# fixes them, with the fix in the log line.
OPERATOR_FIXES = {
    "42P01": "the events table does not exist: apply the schema with `python -m db migrate`",
    "42501": "the database user may not write the events table: GRANT INSERT, SELECT ON events TO the user",
    "42703": "the events table lacks a column the function writes: compare it with db/schema.sql",
    "42804": "an events column has another type than the function writes: compare it with db/schema.sql",
    "23502": (
        "the events table has a NOT NULL column the function does not fill: give it a DEFAULT "
        "or drop NOT NULL (db/schema.sql is what the function expects)"
    ),
    "23505": (
        "a unique index other than the primary key refused the event: the events table has drifted "
        "from db/schema.sql"
    ),
    "23503": "a foreign key on the events table refused the event: it has drifted from db/schema.sql",
    "25006": "the database is read-only (a failover or a read-only replica): point the DSN at a writable node",
    "55P03": (
        "a lock was not granted within lock_timeout: a long transaction holds the rows; end it "
        "(pg_locks; CockroachDB: crdb_internal.cluster_locks) or raise the user's lock_timeout"
    ),
    "3D000": "the database named in the DSN does not exist: fix the DSN's path (e.g. /defaultdb)",
    "42704": "the server refused a startup option: `options=--cluster=...` is only for CockroachDB Cloud",
    "28P01": "the database rejected the password: update the secret (a new version) with the right one",
    "28000": "the database refused the user or the connection: check the DSN's user and the cluster's allowlist",
    "53300": "the cluster has no connection left: max instances x DB_POOL_SIZE (deploy.sh's --connection-budget) must stay under its limit with headroom (Cloud Run can exceed max instances briefly, per revision): lower --max-instances or raise the limit",
}
# Class 42 is syntax and access: the statement is fixed, so only the schema can make it fail.
SCHEMA_CLASS_FIX = "the events table does not match the function's statement: compare it with db/schema.sql"
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
    """The db.errors exception `exc` means; None if it is not a database failure (a bug).

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
        return ValueRefused(message)
    fix = OPERATOR_FIXES.get(code)
    if fix is None and code.startswith(("42", "22", "23")):
        # (class 22 before a statement: a bad `-c` setting in the DSN's options)
        fix = SCHEMA_CLASS_FIX if code.startswith(("42", "23")) else "a connection setting was refused"
    return DatabaseFault(
        message, sqlstate=code, fix=fix, outcome_unknown=statement_sent and code in AMBIGUOUS_CODES
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

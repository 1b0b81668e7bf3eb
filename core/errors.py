"""The failures the use case turns into answers: what a store or the configuration may raise.

A leaf: it imports nothing of the project, so the use case and the database
layer that implements its port (db.faults translates SQLAlchemy's and the
driver's exceptions into these) share one vocabulary without one importing
the other. No message holds a secret, a bound value or the server's error
detail (which can quote a row, payload included).
"""

from __future__ import annotations


class ConfigurationError(Exception):
    """A setting or the connection string is missing or malformed."""


class SecretUnavailable(Exception):
    """The connection string could not be read. The message names the secret, never its value."""


class DatabaseFault(Exception):
    """The database, or the way to it, failed: nothing the request did; retry later.

    `sqlstate`: the server's error code, if the server answered. `fix`: what an
    operator must change when the fault is the deployment's (a missing table,
    a wrong password), else None. `outcome_unknown`: the connection ended after
    the statement was sent, so it may or may not have been committed.
    """

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        fix: str | None = None,
        outcome_unknown: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.fix = fix
        self.outcome_unknown = outcome_unknown


class ValueRefused(Exception):
    """The database refused a value the request sent (nothing was stored); the message names the rule."""

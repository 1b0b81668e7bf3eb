"""An example, not used by the function: client-side retries for multi-statement transactions.

The function runs one statement per request, an implicit transaction that
CockroachDB retries on the server. A fork that adds a transaction of several
statements can see SQLSTATE 40001 (serialization failure, "restart
transaction") at any statement or at COMMIT, and must then run it again from
the start. Only 40001 is retried, a bounded number of times with jittered
exponential backoff; every other error is raised at once.
(Why not sqlalchemy-cockroachdb's run_transaction: docs/decisions.md.)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import sqlalchemy.exc
from sqlalchemy.engine import Connection

from db.faults import sqlstate

logger = logging.getLogger(__name__)
# The server restarted the transaction: safe to run it again from the start.
SERIALIZATION_FAILURE = "40001"


ISOLATION_LEVELS = ("SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED")


def run_transaction[T](
    connection: Connection,
    work: Callable[[Connection], T],
    *,
    max_attempts: int = 5,
    initial_backoff: float = 0.05,
    max_backoff: float = 1.0,
    isolation_level: str = "SERIALIZABLE",
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Run `work(connection)` in a transaction, retrying serialization failures.

    `connection` comes from the function's AUTOCOMMIT engine, so the transaction
    is opened and ended with plain BEGIN and COMMIT: two round trips, and no
    session setting left behind on the pooled connection (changing the
    connection's isolation level through SQLAlchemy costs more statements and
    leaves the session's default isolation changed). `work` may run more than
    once, so it must have no side effects outside the transaction. The last
    40001 is raised when `max_attempts` are spent. `sleep` waits out each backoff
    (a caller may pass its own, to record or shorten the waits).
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if isolation_level not in ISOLATION_LEVELS:
        raise ValueError(f"isolation_level must be one of {', '.join(ISOLATION_LEVELS)}")
    for attempt in range(1, max_attempts + 1):
        connection.exec_driver_sql(f"BEGIN TRANSACTION ISOLATION LEVEL {isolation_level}")
        try:
            result = work(connection)
            connection.exec_driver_sql("COMMIT")  # CockroachDB may report 40001 here too
            return result
        except sqlalchemy.exc.DBAPIError as err:
            _roll_back(connection)
            if sqlstate(err) != SERIALIZATION_FAILURE or attempt == max_attempts:
                raise
            # Full jitter: concurrent transactions that conflicted once should
            # not wake up together and conflict again.
            delay = random.uniform(0, min(max_backoff, initial_backoff * 2 ** (attempt - 1)))
            logger.info(
                "serialization failure, attempt %d of %d; retrying in %.3f s", attempt, max_attempts, delay
            )
            sleep(delay)
        except BaseException:
            _roll_back(connection)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _roll_back(connection: Connection) -> None:
    """End the failed transaction; if the connection itself is gone, the original error matters."""
    try:
        connection.exec_driver_sql("ROLLBACK")
    except sqlalchemy.exc.DBAPIError:
        pass

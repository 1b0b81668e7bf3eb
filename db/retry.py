"""Client-side retries for multi-statement transactions.

A single statement needs none of this: the engine runs it as an implicit
transaction, which CockroachDB retries on the server. A transaction of several
statements can fail with SQLSTATE 40001 (serialization failure, "restart
transaction") at any statement or at COMMIT, and must then be run again from
the start. Only 40001 is retried, a bounded number of times with jittered
exponential backoff; every other error is raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

import sqlalchemy.exc
from sqlalchemy.engine import Connection

from db import errors

T = TypeVar("T")
logger = logging.getLogger(__name__)


def run_transaction(
    connection: Connection,
    work: Callable[[Connection], T],
    *,
    max_attempts: int = 5,
    initial_backoff: float = 0.05,
    max_backoff: float = 1.0,
    isolation_level: str = "SERIALIZABLE",
) -> T:
    """Run `work(connection)` in a transaction, retrying serialization failures.

    `work` may run more than once, so it must not have side effects outside
    the transaction. The last 40001 is raised when `max_attempts` are spent.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    # The engine is AUTOCOMMIT; an explicit transaction needs a real isolation level.
    tx_connection = connection.execution_options(isolation_level=isolation_level)
    for attempt in range(1, max_attempts + 1):
        try:
            with tx_connection.begin():
                return work(tx_connection)
        except sqlalchemy.exc.DBAPIError as err:
            if errors.sqlstate(err) != errors.SERIALIZATION_FAILURE or attempt == max_attempts:
                raise
            # Full jitter: concurrent transactions that conflicted once should
            # not wake up together and conflict again.
            delay = random.uniform(0, min(max_backoff, initial_backoff * 2 ** (attempt - 1)))
            logger.info("serialization failure, attempt %d of %d; retrying in %.3f s",
                        attempt, max_attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover

"""What one unit of database work cost: the facts a request's log line reports.

`Database.run` sets a fresh `RunStats` in a context variable for the duration
of the work; the dialect and the pool's events add to it. A context variable,
not a thread-local: each request (each thread, each task) sees only its own,
so nothing carries over from one request to the next.
"""

from __future__ import annotations

import contextvars
import dataclasses


@dataclasses.dataclass
class RunStats:
    new_connection: bool = False  # this work opened a server connection
    connect_ms: float = 0.0  # TCP, TLS and authentication, when new_connection
    ping_ms: float = 0.0  # the pool's pre-ping of a reused connection
    checkout_ms: float = 0.0  # engine.connect() in all: wait + ping + connect
    prepared: bool = False  # a statement was prepared on the connection for this work
    # The INSERT was sent: from here on, a lost connection leaves its outcome unknown.
    statement_sent: bool = False

    @property
    def pool_wait_ms(self) -> float:
        """Time spent waiting for a free pooled connection."""
        return max(0.0, round(self.checkout_ms - self.connect_ms - self.ping_ms, 3))


current: contextvars.ContextVar[RunStats | None] = contextvars.ContextVar("db_run_stats", default=None)


def record() -> RunStats | None:
    """The stats of the work running in this context, if any."""
    return current.get()

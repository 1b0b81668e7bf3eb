"""What one unit of database work cost: the facts a request's log line reports.

`Database.run` sets a fresh `RunStats` in a context variable for the duration
of the work; the dialect and the pool's events add to it. A context variable,
not a thread-local: each request (each thread, each task) sees only its own,
so nothing carries over from one request to the next.
"""

from __future__ import annotations

import contextvars


class RunStats:
    # A plain class with slots, not a dataclass: a dataclass's methods are
    # generated and compiled at import, which every cold start pays.
    __slots__ = (
        "new_connection",
        "connect_ms",
        "ping_ms",
        "checkout_ms",
        "statement_sent",
        "checkout_started",
        "slot_granted",
    )

    def __init__(self) -> None:
        self.new_connection = False  # this work opened a server connection
        self.connect_ms = 0.0  # TCP, TLS and authentication, when new_connection
        self.ping_ms = 0.0  # the pool's pre-ping of a reused connection
        self.checkout_ms = 0.0  # engine.connect() in all: wait + ping + connect + set-up
        # The INSERT was sent: from here on, a lost connection leaves its outcome unknown.
        self.statement_sent = False
        # perf_counter() when the checkout began, and when the pool handed over a
        # connection slot: the moment the pre-ping or a new connection started.
        self.checkout_started: float | None = None
        self.slot_granted: float | None = None

    def begin_checkout(self, at: float) -> None:
        self.checkout_started, self.slot_granted = at, None

    def grant_slot(self, at: float) -> None:
        """The pool has a connection (or room for a new one) for this work from `at` on."""
        if self.slot_granted is None:
            self.slot_granted = at

    @property
    def pool_wait_ms(self) -> float:
        """Time spent waiting for a free pooled connection, and nothing else
        (a new connection's set-up after it connects is not waiting)."""
        # The pool always pre-pings or connects before handing a connection
        # over, so a checkout that succeeded always granted a slot.
        if self.checkout_started is None or self.slot_granted is None:
            return 0.0
        return max(0.0, round((self.slot_granted - self.checkout_started) * 1000, 3))


current: contextvars.ContextVar[RunStats | None] = contextvars.ContextVar("db_run_stats", default=None)


def record() -> RunStats | None:
    """The stats of the work running in this context, if any."""
    return current.get()

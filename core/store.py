"""The use case's port: the event record, and what it needs from wherever events are stored.

core.service calls an EventStore; db.events.EventsTable is the one that writes
the events table. Nothing here imports a database library, so the rules and
the use case load without one.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import NamedTuple, Protocol


class EventRecord(NamedTuple):
    """One validated event, every default filled in: what is stored."""

    id: str
    kind: str
    payload_json: str  # the payload as the exact JSON text that was validated
    scheduled_at: datetime.datetime | None = None


class Receipt(NamedTuple):
    """What a store call did, and what reaching the store cost (for the request's log line)."""

    new_ids: frozenset[str]  # of the records given, the ids stored now (not seen before)
    new_connection: bool  # a new connection to the store was opened for this call
    checkout_ms: float  # waiting for a connection, plus checking or opening it


class EventStore(Protocol):
    """Raises only core.errors' exceptions."""

    def store(self, records: Sequence[EventRecord]) -> Receipt:
        """Store the records (ids unique among them); a record whose id is already stored is not."""
        ...

    def check(self) -> Receipt:
        """Succeed only if the store is reachable and can store a record now."""
        ...

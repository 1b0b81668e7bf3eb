"""The SQL the function runs: one multi-row insert per request, and a health check."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """One row of the events table, as the function writes it."""

    id: str
    kind: str
    payload_json: str  # the payload as JSON text, stored as JSONB
    scheduled_at: datetime.datetime | None = None


# One row's placeholders; the statement repeats it once per event. Only the
# count of rows shapes the SQL text: every value is a bound parameter.
_ROW = "(CAST(:id{i} AS UUID), :kind{i}, CAST(:payload{i} AS JSONB), CAST(:scheduled_at{i} AS TIMESTAMPTZ))"


def insert_events(connection: Connection, records: Sequence[EventRecord]) -> set[str]:
    """Insert the records in one statement; return the ids that were new.

    ON CONFLICT DO NOTHING makes a repeated id (a retried delivery) a no-op
    instead of an error, and RETURNING tells which ids were inserted, all in a
    single round trip that the database runs as one implicit transaction.
    Ids must be unique within `records`.
    """
    if not records:
        return set()
    values = ", ".join(_ROW.format(i=i) for i in range(len(records)))
    statement = text(
        f"INSERT INTO events (id, kind, payload, scheduled_at) VALUES {values} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    params: dict[str, object] = {}
    for i, record in enumerate(records):
        params[f"id{i}"] = record.id
        params[f"kind{i}"] = record.kind
        params[f"payload{i}"] = record.payload_json
        params[f"scheduled_at{i}"] = record.scheduled_at
    return {str(row[0]) for row in connection.execute(statement, params)}


def fetch_events(connection: Connection, ids: Sequence[str]) -> dict[str, dict]:
    """The stored rows for some ids (for tests and tools, not the hot path)."""
    rows = connection.execute(
        text("SELECT id, kind, payload, scheduled_at FROM events WHERE id = ANY(CAST(:ids AS UUID[]))"),
        {"ids": list(ids)},
    )
    return {
        str(row.id): {"kind": row.kind, "payload": row.payload, "scheduled_at": row.scheduled_at}
        for row in rows
    }


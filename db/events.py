"""The SQL the function runs: one multi-row insert per request."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import Sequence

from sqlalchemy import TextClause, text
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
    statement = _insert_statement(len(records))
    params: dict[str, object] = {}
    for i, record in enumerate(records):
        params[f"id{i}"] = record.id
        params[f"kind{i}"] = record.kind
        params[f"payload{i}"] = record.payload_json
        params[f"scheduled_at{i}"] = record.scheduled_at
    return {str(row[0]) for row in connection.execute(statement, params)}


@functools.lru_cache(maxsize=512)
def _insert_statement(rows: int) -> TextClause:
    """The INSERT for `rows` rows, built once per size: building a text() with
    thousands of bind parameters costs more than the round trip it feeds."""
    values = ", ".join(_ROW.format(i=i) for i in range(rows))
    return text(
        f"INSERT INTO events (id, kind, payload, scheduled_at) VALUES {values} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


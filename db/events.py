"""The SQL the function runs: one INSERT per request, one statement text for every batch size.

The whole batch travels as a single JSON document, bound as one parameter and
expanded into rows by the server (`jsonb_array_elements`, which CockroachDB and
PostgreSQL both have). Because the text never depends on the batch size:

- SQLAlchemy compiles it once and its statement cache holds one entry (a
  multi-row VALUES list cached one compiled statement of up to 2,000 bind
  parameters per batch size seen: hundreds of MiB after a few hundred sizes);
- each pooled connection prepares it once and then runs it in a single round
  trip for any batch (db.dialect.run_prepared);
- payload numbers stay exact: the payload goes from JSON text to JSONB, whose
  numbers are decimals, without passing through a float.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.engine import Connection, Dialect

from db.dialect import run_prepared


# A NamedTuple, not a dataclass: a dataclass's methods are generated and compiled
# at import, about 5 M instructions each, which every cold start pays (README, "Cold start").
class EventRecord(NamedTuple):
    """One row of the events table, as the function writes it."""

    id: str
    kind: str
    payload_json: str  # the payload as JSON text, stored as JSONB
    scheduled_at: datetime.datetime | None = None


INSERT_EVENTS = text(
    "INSERT INTO events (id, kind, payload, scheduled_at) "
    "SELECT CAST(e->>'id' AS UUID), e->>'kind', e->'payload', CAST(e->>'scheduled_at' AS TIMESTAMPTZ) "
    "FROM jsonb_array_elements(CAST(:events AS JSONB)) AS e "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


def insert_events(connection: Connection, records: Sequence[EventRecord]) -> set[str]:
    """Insert the records in one statement; return the ids that were new.

    ON CONFLICT DO NOTHING makes a repeated id (a retried delivery) a no-op
    instead of an error, and RETURNING tells which ids were inserted, all in a
    single round trip that the database runs as one implicit transaction.
    Ids must be unique within `records`.
    """
    if not records:
        return set()
    rows = run_prepared(connection, _driver_sql(connection.dialect), (batch_document(records),))
    return {str(row[0]) for row in rows}


@functools.cache
def _driver_sql(dialect: Dialect) -> str:
    """INSERT_EVENTS as the driver takes it ("%s" for pg8000), rendered once per dialect."""
    return str(INSERT_EVENTS.compile(dialect=dialect))


def batch_document(records: Sequence[EventRecord]) -> str:
    """The batch as one JSON array; each payload is spliced in as the exact text that was validated."""
    return (
        "["
        + ",".join(
            f'{{"id":"{record.id}","kind":{json.dumps(record.kind, ensure_ascii=False)},'
            f'"scheduled_at":{_timestamp(record.scheduled_at)},"payload":{record.payload_json}}}'
            for record in records
        )
        + "]"
    )


def _timestamp(moment: datetime.datetime | None) -> str:
    return "null" if moment is None else f'"{moment.isoformat()}"'

"""The events table as the use case's store (core.store.EventStore): one INSERT per call.

The whole batch travels as a single JSON document, bound as one parameter and
expanded into rows by the server (`jsonb_array_elements`, which CockroachDB and
PostgreSQL both have). Because the text never depends on the batch size, each
pooled connection prepares it once and then runs it in one round trip for any
batch, and payload numbers go from JSON text to JSONB without passing through a float.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pg8000.dbapi
from sqlalchemy.engine import Connection

from core.errors import DatabaseFault
from core.store import EventRecord, Receipt
from db import faults
from db.database import Database
from db.dialect import forget_prepared, prepared

INSERT_EVENTS = (
    "INSERT INTO events (id, kind, payload, scheduled_at) "
    "SELECT CAST(e->>'id' AS UUID), e->>'kind', e->'payload', CAST(e->>'scheduled_at' AS TIMESTAMPTZ) "
    "FROM jsonb_array_elements(CAST(:events AS JSONB)) AS e "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
_STATEMENT_KEY = "events.insert"
# Prepared again, once, after 0A000 "cached plan must not change result type" (a
# schema change) or 26000 "prepared statement does not exist" (a pooler in front
# of the cluster reset the session). Outside a transaction a failed statement
# leaves nothing behind, so running it again is safe.
REPREPARE = frozenset({"0A000", "26000"})


class EventsTable:
    """core.store.EventStore on the events table of a Database."""

    def __init__(self, database: Database):
        self.database = database

    def store(self, records: Sequence[EventRecord]) -> Receipt:
        ran = self.database.run(lambda connection: insert_events(connection, records))
        return Receipt(frozenset(ran.value), ran.new_connection, ran.checkout_ms)

    def check(self) -> Receipt:
        """The pre-ping, and on a new connection the INSERT prepared: a missing table or column fails here."""
        ran = self.database.run(prepare_insert)
        return Receipt(frozenset(), ran.new_connection, ran.checkout_ms)


def prepare_insert(connection: Connection) -> Any:
    """The connection's prepared INSERT: prepared once per connection, against the live schema."""
    with _driver_errors(connection, statement_sent=False):
        return prepared(connection, _STATEMENT_KEY, INSERT_EVENTS)


def insert_events(connection: Connection, records: Sequence[EventRecord]) -> set[str]:
    """Insert the records in one statement; return the ids that were new.

    ON CONFLICT DO NOTHING makes a repeated id (a retried delivery) a no-op, and
    RETURNING tells which ids were inserted, in one round trip that the database
    runs as one implicit transaction. Ids must be unique within `records`.
    Raises core.errors' exceptions.
    """
    if not records:
        return set()
    document = batch_document(records)
    for attempt in (1, 2):
        statement = prepare_insert(connection)
        try:
            with _driver_errors(connection, statement_sent=True):
                rows = statement.run(events=document)
        except DatabaseFault as fault:
            if fault.sqlstate not in REPREPARE or attempt == 2:
                raise
            forget_prepared(connection, _STATEMENT_KEY)
            continue
        return {str(row[0]) for row in rows or ()}
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _driver_errors(connection: Connection, *, statement_sent: bool) -> Iterator[None]:
    """Driver errors as core.errors' exceptions; a broken connection is invalidated first,
    so the pool replaces it instead of handing it to the next request."""
    try:
        yield
    except (pg8000.dbapi.Error, OSError) as err:
        if isinstance(err, OSError) or connection.dialect.is_disconnect(err, None, None):
            connection.invalidate(err)
        translated = faults.translate(err, statement_sent=statement_sent)
        if translated is None:
            raise
        raise translated from None


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

"""The database layer: the events table as the use case's store (core.store.EventStore).

`db.events.EventsTable` implements the port on a `db.database.Database` (the
engine and its pool), with the DSN, secret, dialect and fault translation each
in its own module. It raises only core.errors' exceptions and knows nothing of
HTTP; it imports from core only the port and the errors (core/store.py, core/errors.py).
"""

"""Database access for the events function: DSN, secret, engine, dialect, SQL, errors.

Each module has one concern; `db.database` ties them together into the
per-instance `Database` that core.runtime builds. Nothing here knows HTTP.
"""

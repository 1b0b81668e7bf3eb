"""Database access for the events function: settings, DSN, secret, engine, SQL.

Each module has one concern; `db.database` ties them together into the
per-instance `Database` that main.py uses.
"""

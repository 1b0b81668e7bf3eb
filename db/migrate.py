"""Apply db/schema.sql. Run once per deployment, not on every cold start."""

from __future__ import annotations

import pathlib

from sqlalchemy import text

from db.database import Database
from db.secret import DsnSource

SCHEMA = pathlib.Path(__file__).with_name("schema.sql")


def schema_statements() -> list[str]:
    """The statements in schema.sql (it has no semicolons inside literals)."""
    lines = [line for line in SCHEMA.read_text().splitlines() if not line.lstrip().startswith("--")]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


def migrate(database: Database) -> int:
    """Apply every schema statement; each is idempotent. Returns how many ran."""
    statements = schema_statements()

    def apply(connection) -> None:
        for statement in statements:
            connection.execute(text(statement))

    database.run(apply)
    return len(statements)


def apply_schema(dsn: str) -> int:
    """Apply the schema to the database at `dsn` (tests, the benchmark, local runs)."""
    database = Database(DsnSource(dsn=dsn))
    try:
        return migrate(database)
    finally:
        database.dispose()

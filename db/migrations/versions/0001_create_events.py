"""Create the events table, in types that CockroachDB and PostgreSQL share.

A no-op on the databases made before migrations (by db/schema.sql, whose text
this is): the table is created only if missing, and its rows are kept.
"""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS events (
            -- A random UUID spreads inserts across CockroachDB's ranges (a sequence
            -- would make one range a hot spot). The function always supplies it, so
            -- retries with the same id are recognised; the default serves other writers.
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            kind TEXT NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 100),
            payload JSONB NOT NULL DEFAULT '{}',
            -- Set for Cloud Scheduler deliveries: the X-CloudScheduler-ScheduleTime.
            scheduled_at TIMESTAMPTZ,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )

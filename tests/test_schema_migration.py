"""The schema grows by migrations: `python -m db migrate` applies Alembic's revisions in
order, records each, is safe to repeat, and takes over the databases made before it
with their rows; a new revision adds a column in place; the function never loads Alembic."""

import os
import shutil
import subprocess
import sys
import textwrap
import urllib.parse

import pytest
from function_harness import ROOT

from db.database import Database
from db.migrate import MIGRATIONS, MigrationError, migrate, new_revision
from db.secret import DsnSource

# db/schema.sql, verbatim, as every deployment applied it before migrations: the table, no version table.
DEPLOYED_BEFORE_MIGRATIONS = """\
-- The events table, in types that CockroachDB and PostgreSQL share.
-- Applied by `python -m db migrate`; every statement is idempotent.
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
);
"""

# What defines the table: columns (type, nullability, default) and constraints.
TABLE_DEFINITION = """
SELECT 'column', column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
FROM information_schema.columns WHERE table_name = 'events'
UNION ALL
SELECT 'constraint', pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'events'::regclass
ORDER BY 1, 2
"""
ROWS = "SELECT id, kind, payload, scheduled_at, received_at FROM events ORDER BY kind"


def run_migrate(env, *args):
    # No timeout of its own: DB_TIMEOUT bounds every connection attempt and statement.
    return subprocess.run(
        [sys.executable, "-m", "db", "migrate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def database_name(dsn):
    return urllib.parse.urlsplit(dsn).path.lstrip("/")


def migrate_from(migrations, dsn):
    database = Database(DsnSource(dsn=dsn))
    try:
        return migrate(database, migrations)
    finally:
        database.dispose()


@pytest.fixture
def deployed_before_migrations(events_server, fresh_database):
    """A database as `python -m db migrate` left it before migrations, with two events."""
    connection = events_server.connect(database=database_name(fresh_database))  # as app, as deployed
    try:
        connection.run(DEPLOYED_BEFORE_MIGRATIONS)
        connection.run("INSERT INTO events (kind, payload) VALUES ('old', '{\"n\": 1}'), ('older', '{}')")
    finally:
        connection.close()
    return fresh_database


@pytest.fixture
def migrations_copy(tmp_path):
    """The project's migrations, copied, for revisions a test adds."""
    return shutil.copytree(MIGRATIONS, tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))


def test_migrate_creates_the_table_then_finds_the_database_at_head(events_server, fresh_database):
    first = run_migrate({"DATABASE_URL": fresh_database})
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["applied 0001_create_events"]
    again = run_migrate({"DATABASE_URL": fresh_database})
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["already at head: 0001_create_events"]
    name = database_name(fresh_database)
    assert events_server.execute("SELECT version_num FROM alembic_version", database=name) == [["0001"]]
    assert events_server.execute("SELECT count(*) FROM events", database=name) == [[0]]


def test_a_database_made_before_migrations_keeps_its_rows_and_is_recorded(
    events_server, deployed_before_migrations
):
    name = database_name(deployed_before_migrations)
    before = events_server.execute(ROWS, database=name)
    outputs = []
    for _ in range(2):
        result = run_migrate({"DATABASE_URL": deployed_before_migrations})
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip())
    assert outputs == ["applied 0001_create_events", "already at head: 0001_create_events"]
    assert events_server.execute(ROWS, database=name) == before
    assert events_server.execute("SELECT version_num FROM alembic_version", database=name) == [["0001"]]


def test_a_migrated_empty_database_has_the_table_the_old_schema_made(
    events_server, fresh_database, deployed_before_migrations
):
    old = database_name(deployed_before_migrations)
    new = f"{old}_migrated"
    events_server.execute(f"CREATE DATABASE {new} OWNER app")
    try:
        assert migrate_from(MIGRATIONS, events_server.dsn(database=new)) == ["0001_create_events"]
        assert events_server.execute(TABLE_DEFINITION, database=new) == events_server.execute(
            TABLE_DEFINITION, database=old
        )
    finally:
        events_server.execute(f"DROP DATABASE {new} WITH (FORCE)")


def test_a_new_revision_adds_a_column_in_place_and_the_old_insert_still_works(
    events_server, deployed_before_migrations, migrations_copy
):
    written = new_revision("add source", migrations_copy)
    assert written.name == "0002_add_source.py"
    text = written.read_text()
    assert 'down_revision = "0001"' in text
    written.write_text(
        text.replace(
            'raise NotImplementedError("write this revision\'s statements, then remove this line")',
            'op.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS source TEXT")',
        )
    )
    dsn, name = deployed_before_migrations, database_name(deployed_before_migrations)
    assert migrate_from(migrations_copy, dsn) == ["0001_create_events", "0002_add_source"]
    assert migrate_from(migrations_copy, dsn) == []
    # The code deployed before the revision writes without the new column: it still works.
    events_server.execute("INSERT INTO events (kind) VALUES ('after')", database=name)
    assert events_server.execute("SELECT kind, source FROM events ORDER BY kind", database=name) == [
        ["after", None],
        ["old", None],
        ["older", None],
    ]
    assert events_server.execute("SELECT version_num FROM alembic_version", database=name) == [["0002"]]


def test_an_unwritten_revision_fails_and_is_not_recorded(events_server, fresh_database, migrations_copy):
    new_revision("forgot to write it", migrations_copy)
    with pytest.raises(NotImplementedError):
        migrate_from(migrations_copy, fresh_database)
    # Each revision commits with its record: 0001 is kept, 0002 is neither applied nor recorded.
    name = database_name(fresh_database)
    assert events_server.execute("SELECT version_num FROM alembic_version", database=name) == [["0001"]]


def test_a_failing_revision_leaves_neither_its_change_nor_its_record(
    events_server, fresh_database, migrations_copy
):
    (migrations_copy / "versions" / "0002_half_done.py").write_text(
        textwrap.dedent(
            '''\
            """Adds a column, then fails."""
            from alembic import op

            revision = "0002"
            down_revision = "0001"


            def upgrade() -> None:
                op.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS half TEXT")
                op.execute("SELECT no_such_function()")
            '''
        )
    )
    result = run_migrate({"DATABASE_URL": fresh_database})  # the project's revisions: 0001 only
    assert result.returncode == 0, result.stderr
    database = Database(DsnSource(dsn=fresh_database))
    try:
        with pytest.raises(Exception, match="no_such_function"):
            migrate(database, migrations_copy)
    finally:
        database.dispose()
    name = database_name(fresh_database)
    columns = events_server.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'half'",
        database=name,
    )
    assert columns == [[0]]
    assert events_server.execute("SELECT version_num FROM alembic_version", database=name) == [["0001"]]


def test_a_database_ahead_of_these_revisions_is_refused_naming_the_revision(events_server, fresh_database):
    assert run_migrate({"DATABASE_URL": fresh_database}).returncode == 0
    name = database_name(fresh_database)
    events_server.execute("UPDATE alembic_version SET version_num = '0099'", database=name)
    result = run_migrate({"DATABASE_URL": fresh_database})
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "error: Can't locate revision identified by '0099'"
    assert "Traceback" not in result.stderr
    with pytest.raises(MigrationError, match="0099"):
        migrate_from(MIGRATIONS, fresh_database)


def test_two_revisions_with_one_parent_are_refused_before_a_third_is_written(migrations_copy):
    for name in ("0002_one.py", "0003_other.py"):
        revision = name[:4]
        (migrations_copy / "versions" / name).write_text(
            f'revision = "{revision}"\ndown_revision = "0001"\n\n\ndef upgrade() -> None:\n    pass\n'
        )
    with pytest.raises(MigrationError, match="0002, 0003"):
        new_revision("a third", migrations_copy)


def test_the_help_says_what_migrate_applies_and_records_and_where_revision_writes():
    result = run_migrate({}, "--help")
    assert result.returncode == 0
    for fact in ("db/migrations/versions", "alembic_version", "applied NAME", "already at head", "safe"):
        assert fact in " ".join(result.stdout.split()), fact
    revision = subprocess.run(
        [sys.executable, "-m", "db", "revision", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert revision.returncode == 0
    assert "db/migrations/versions/NNNN_MESSAGE.py" in revision.stdout


def test_the_function_never_imports_alembic():
    # A fresh interpreter, as an instance starts: main.py's imports, then the Lambda handler's.
    for module in ("main", "aws.lambda_function"):
        result = subprocess.run(
            [sys.executable, "-c", f"import sys, {module}; print('alembic' in sys.modules)"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db"},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "False", module


def test_migrate_without_configuration_says_what_to_set():
    result = run_migrate({"DATABASE_URL": "", "DATABASE_URL_SECRET": ""})
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr


def test_migrate_failure_never_prints_the_password(events_db):
    result = run_migrate({"DATABASE_URL": events_db.dsn(password="hunter2-wrong")})
    assert result.returncode == 1
    assert "hunter2-wrong" not in result.stdout + result.stderr
    assert "password authentication failed" in result.stderr

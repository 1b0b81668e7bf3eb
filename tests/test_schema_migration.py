"""`python -m db migrate` creates the events table, and running it again is harmless."""

import os
import subprocess
import sys

from function_harness import ROOT

from devtools.deadlines import scaled


def migrate(env):
    return subprocess.run(
        [sys.executable, "-m", "db", "migrate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=scaled(60),
    )


def test_migrate_creates_the_table_and_is_idempotent(fresh_database):
    for _ in range(2):
        result = migrate({"DATABASE_URL": fresh_database})
        assert result.returncode == 0, result.stderr
        assert "schema applied" in result.stdout


def test_migrate_without_configuration_says_what_to_set():
    result = migrate({"DATABASE_URL": "", "DATABASE_URL_SECRET": ""})
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr


def test_migrate_failure_never_prints_the_password(events_db):
    result = migrate({"DATABASE_URL": events_db.dsn(password="hunter2-wrong")})
    assert result.returncode == 1
    assert "hunter2-wrong" not in result.stdout + result.stderr
    assert "password authentication failed" in result.stderr

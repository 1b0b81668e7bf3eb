"""The project's dialect behaves as SQLAlchemy's stock pg8000 dialect does, except where it
exists to differ: it understands CockroachDB's version() string.

The full comparison is SQLAlchemy's compliance suite (`python -m
devtools.dialect_compliance`, docs/dialect-compliance.md); these are its fast
checks. No CockroachDB binary can run here, so for the version tests a
PostgreSQL database is made to answer `select version()` exactly as CockroachDB
does: a function in a schema that comes before pg_catalog on the role's search_path.
"""

import uuid

import pytest
import sqlalchemy
from function_harness import load_function
from sqlalchemy import exc, text

from db.dialect import DRIVERNAME, parse_server_version

STOCK = "postgresql+pg8000"

COCKROACH_VERSION = (
    "CockroachDB CCL v24.3.1 (x86_64-pc-linux-gnu, built 2024/12/09 16:05:53, go1.22.8 X:nocoverageredesign)"
)

DUPLICATE_ID = str(uuid.UUID(int=17))

# Statements that fail on the server, and the class the stock dialect raises for each:
# pg8000 maps SQLSTATE 23505 to IntegrityError and every other server error, a
# check violation or a division by zero too, to ProgrammingError.
FAILURES = {
    "duplicate key": (
        f"INSERT INTO events (id, kind) VALUES ('{DUPLICATE_ID}', 'twice')",
        exc.IntegrityError,
    ),
    "check constraint": ("INSERT INTO events (kind) VALUES ('')", exc.ProgrammingError),
    "syntax error": ("SELEC 1", exc.ProgrammingError),
    "undefined table": ("SELECT * FROM no_such_table", exc.ProgrammingError),
    "division by zero": ("SELECT 1 / 0", exc.ProgrammingError),
}


def _error_raised(events_db, drivername: str, statement: str) -> exc.DBAPIError:
    engine = sqlalchemy.create_engine(events_db.dsn().replace("postgresql://", f"{drivername}://", 1))
    try:
        with engine.connect() as connection, pytest.raises(exc.DBAPIError) as raised:
            connection.execute(text(statement))
        return raised.value
    finally:
        engine.dispose()


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_statement_raises_the_same_class_as_the_stock_dialect(events_db, failure):
    statement, expected = FAILURES[failure]
    events_db.execute(f"INSERT INTO events (id, kind) VALUES ('{DUPLICATE_ID}', 'once')", database="app")
    stock = _error_raised(events_db, STOCK, statement)
    ours = _error_raised(events_db, DRIVERNAME, statement)
    assert type(stock) is expected, "the stock dialect changed: update the expectation"
    assert type(ours) is type(stock)
    assert type(ours.orig) is type(stock.orig)  # the same pg8000 DB-API class underneath


@pytest.fixture
def cockroach_like_dsn(events_db):
    events_db.execute("CREATE SCHEMA IF NOT EXISTS crdb AUTHORIZATION app", database="app")
    events_db.execute(
        "CREATE OR REPLACE FUNCTION crdb.version() RETURNS text LANGUAGE sql "
        f"AS $$ SELECT '{COCKROACH_VERSION}'::text $$",
        database="app",
    )
    events_db.execute("CREATE ROLE crdb_app LOGIN PASSWORD 'crdb-pw' IN ROLE app")
    events_db.execute("ALTER ROLE crdb_app SET search_path = crdb, pg_catalog, public")
    yield events_db.dsn(user="crdb_app", password="crdb-pw")
    events_db.execute("DROP ROLE crdb_app")


def test_function_works_against_a_server_reporting_cockroachdb_version(
    cockroach_like_dsn, events_db, monkeypatch
):
    module, client = load_function(monkeypatch, DATABASE_URL=cockroach_like_dsn)
    events_db.reset_statement_log()
    assert client.get("/").status_code == 200
    assert client.post("/", json={"kind": "crdb"}).status_code == 201
    # The dialect saw the CockroachDB string and asked for the compatibility version.
    assert "show server_version" in events_db.statements(user="crdb_app")
    version = module.runtime.database().run(lambda connection: connection.dialect.server_version_info).value
    assert version >= (13,)
    module.runtime.database().dispose()


@pytest.mark.parametrize(
    "version, setting, expected",
    [
        (COCKROACH_VERSION, "13.0.0", (13, 0, 0)),
        ("CockroachDB OSS v23.1.11 (aarch64-unknown-linux-gnu, built 2023/09/27)", "13.0.0", (13, 0, 0)),
        ("PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu", None, (15, 18)),
        ("PostgreSQL 18devel on x86_64", None, (18,)),
    ],
)
def test_server_version_is_parsed_for_both_databases(version, setting, expected):
    assert parse_server_version(version, setting) == expected


def test_unknown_version_string_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot determine the server version"):
        parse_server_version("SomeDB 1.0")

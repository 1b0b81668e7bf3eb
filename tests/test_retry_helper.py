"""run_transaction retries SQLSTATE 40001 only, a bounded number of times.

The serialization failures here are real server errors: the transaction
raises SQLSTATE 40001 from PL/pgSQL on the attempts the test chooses.
"""

import pytest
import sqlalchemy
from sqlalchemy import text

from db import faults
from examples.transaction_retry import run_transaction

FAIL_WITH = "DO $$ BEGIN RAISE EXCEPTION 'restart transaction' USING ERRCODE = '{code}'; END $$"


@pytest.fixture
def engine(events_db):
    from db.dsn import parse_dsn

    target = parse_dsn(events_db.dsn())
    engine = sqlalchemy.create_engine(
        target.url,
        connect_args=target.connect_args,
        isolation_level="AUTOCOMMIT",
        pool_size=1,
        max_overflow=0,
    )
    yield engine
    engine.dispose()


def test_serialization_failure_is_retried_until_it_succeeds(engine, events_db):
    attempts = []

    def work(connection):
        attempts.append(1)
        connection.execute(text("INSERT INTO events (kind) VALUES ('retried')"))
        if len(attempts) < 3:
            connection.exec_driver_sql(FAIL_WITH.format(code="40001"))
        return len(attempts)

    with engine.connect() as connection:
        assert run_transaction(connection, work, initial_backoff=0.001) == 3
    # The failed attempts were rolled back: exactly one row.
    assert [row["kind"] for row in events_db.rows().values()] == ["retried"]


def test_retries_are_bounded_and_the_last_error_is_raised(engine, events_db):
    calls = []

    def work(connection):
        calls.append(1)
        connection.exec_driver_sql(FAIL_WITH.format(code="40001"))

    with engine.connect() as connection, pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
        run_transaction(connection, work, max_attempts=4, initial_backoff=0.001)
    assert len(calls) == 4
    assert faults.sqlstate(raised.value) == "40001"


@pytest.mark.parametrize("code", ["23505", "40P01", "22P02"])
def test_other_errors_are_raised_at_once(engine, code):
    calls = []

    def work(connection):
        calls.append(1)
        connection.exec_driver_sql(FAIL_WITH.format(code=code))

    with engine.connect() as connection, pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
        run_transaction(connection, work, initial_backoff=0.001)
    assert calls == [1]
    assert faults.sqlstate(raised.value) == code


def test_backoff_stays_within_its_cap(engine, monkeypatch):
    delays = []
    monkeypatch.setattr("examples.transaction_retry.time.sleep", delays.append)

    def work(connection):
        connection.exec_driver_sql(FAIL_WITH.format(code="40001"))

    with engine.connect() as connection, pytest.raises(sqlalchemy.exc.DBAPIError):
        run_transaction(connection, work, max_attempts=8, initial_backoff=0.1, max_backoff=0.5)
    assert len(delays) == 7
    assert all(0 <= delay <= 0.5 for delay in delays)


def test_pooled_connection_is_left_as_it_was_found(engine):
    # The hot path relies on AUTOCOMMIT and the session's own default isolation.
    show = "SHOW default_transaction_isolation"
    with engine.connect() as connection:
        before = connection.exec_driver_sql(show).scalar()
        run_transaction(connection, lambda c: c.execute(text("SELECT 1")).scalar())
    with engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is True
        assert connection.exec_driver_sql(show).scalar() == before
        assert connection.connection.dbapi_connection._in_transaction is False  # pg8000 state


def test_transaction_costs_only_begin_and_commit(engine, events_db):
    with engine.connect() as connection:
        events_db.reset_statement_log()
        run_transaction(connection, lambda c: c.execute(text("SELECT 1")).scalar())
    assert [s.split()[0].upper() for s in events_db.statements()] == ["BEGIN", "SELECT", "COMMIT"]

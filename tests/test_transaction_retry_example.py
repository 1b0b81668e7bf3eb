"""examples/transaction_retry.py: run_transaction retries SQLSTATE 40001 only, a bounded
number of times, and no row is written twice.

- The serialization failures of the first tests are real server errors: the
  transaction raises SQLSTATE 40001 from PL/pgSQL on the attempts the test chooses.
- Real serialization failures (SQLSTATE 40001) from concurrent SERIALIZABLE
  transactions are retried by run_transaction, and no row is written twice.
"""

import collections
import json
import threading

import pytest
import sqlalchemy
from sqlalchemy import text

from db import faults
from db.dsn import parse_dsn
from devtools.deadlines import scaled
from examples.transaction_retry import run_transaction

FAIL_WITH = "DO $$ BEGIN RAISE EXCEPTION 'restart transaction' USING ERRCODE = '{code}'; END $$"


def autocommit_engine(dsn: str, pool_size: int = 1) -> sqlalchemy.Engine:
    target = parse_dsn(dsn)
    return sqlalchemy.create_engine(
        target.url,
        connect_args=target.connect_args,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=0,
    )


@pytest.fixture
def engine(events_db):
    engine = autocommit_engine(events_db.dsn())
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


def test_backoff_stays_within_its_cap(engine):
    delays: list[float] = []

    def work(connection):
        connection.exec_driver_sql(FAIL_WITH.format(code="40001"))

    with engine.connect() as connection, pytest.raises(sqlalchemy.exc.DBAPIError):
        run_transaction(
            connection, work, max_attempts=8, initial_backoff=0.1, max_backoff=0.5, sleep=delays.append
        )
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


WORKERS = ("alice", "bob")


def test_write_skew_conflict_is_retried_until_both_transactions_commit_once(events_db):
    engine = autocommit_engine(events_db.dsn(), pool_size=len(WORKERS))
    barrier = threading.Barrier(len(WORKERS), timeout=scaled(10))
    attempts = collections.Counter()
    failures = []

    def worker(name):
        def work(connection):
            attempts[name] += 1
            seen = connection.execute(text("SELECT count(*) FROM events WHERE kind = 'ledger'")).scalar()
            if attempts[name] == 1:
                barrier.wait()  # both have read before either writes: a write skew
            connection.execute(
                text("INSERT INTO events (kind, payload) VALUES ('ledger', CAST(:payload AS JSONB))"),
                {"payload": json.dumps({"worker": name, "seen": seen})},
            )

        try:
            with engine.connect() as connection:
                run_transaction(connection, work, initial_backoff=0.01)
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            failures.append(err)

    threads = [threading.Thread(target=worker, args=(name,)) for name in WORKERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()

    assert failures == []
    assert sum(attempts.values()) > len(WORKERS), "the server raised no serialization failure"
    ledger = sorted(row["payload"]["worker"] for row in events_db.rows().values() if row["kind"] == "ledger")
    assert ledger == sorted(WORKERS)

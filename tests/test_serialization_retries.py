"""Real serialization failures (SQLSTATE 40001) from concurrent SERIALIZABLE
transactions are retried by run_transaction, and no row is written twice."""

import collections
import json
import threading

import sqlalchemy
from sqlalchemy import text

from db.dsn import parse_dsn
from examples.transaction_retry import run_transaction

WORKERS = ("alice", "bob")


def test_write_skew_conflict_is_retried_until_both_transactions_commit_once(events_db):
    target = parse_dsn(events_db.dsn())
    engine = sqlalchemy.create_engine(
        target.url,
        connect_args=target.connect_args,
        isolation_level="AUTOCOMMIT",
        pool_size=2,
        max_overflow=0,
    )
    barrier = threading.Barrier(len(WORKERS), timeout=10)
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

"""A connection string in Secret Manager that cannot be used, whatever the reason, is
read again at most once every SECRET_RETRY_INTERVAL: requests in between get a 503
without a Secret Manager call. Once the secret is fixed, the instance recovers
without a restart.

Reads are counted by the Secret Manager server the real client talks to."""

import math
import time
import uuid

import grpc
import pytest
from function_harness import load_function

PROJECT = "demo-project"
SECRET = "events-dsn"
RETRY_INTERVAL = 0.5
REQUESTS = 20
PAUSE = 0.1  # between requests, so the run spans several retry intervals


def unencoded_hash(events_db) -> str:
    password = f"pa#ss-{uuid.uuid4().hex[:8]}"
    events_db.secrets.add(password)
    return f"postgresql://app:{password}@127.0.0.1:{events_db.port}/app"


def rejected_password(events_db) -> str:
    password = f"wrong-{uuid.uuid4().hex[:8]}"
    events_db.secrets.add(password)
    return events_db.dsn(password=password)


UNUSABLE = {
    "an unencoded '#' in the password": unencoded_hash,
    "not a connection string": lambda events_db: "events database, see the wiki",
    "a rejected password": rejected_password,
    "an unknown database": lambda events_db: events_db.dsn(database="no_such_database"),
    "no such secret version": None,
    "no permission to read it": "PERMISSION_DENIED",
}


def make_unusable(secret_manager, events_db, how) -> None:
    if callable(how):
        secret_manager.put(PROJECT, SECRET, how(events_db))
    elif how == "PERMISSION_DENIED":
        secret_manager.put(PROJECT, SECRET, events_db.dsn())
        secret_manager.fail_with(grpc.StatusCode.PERMISSION_DENIED, "the caller lacks secretAccessor")


@pytest.mark.parametrize("how", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_unusable_secret_is_read_at_most_once_per_interval_then_recovers(
    events_db, secret_manager, monkeypatch, how
):
    make_unusable(secret_manager, events_db, how)
    _, client = load_function(
        monkeypatch,
        DATABASE_URL_SECRET=f"projects/{PROJECT}/secrets/{SECRET}/versions/latest",
        SECRET_MANAGER_EMULATOR_HOST=secret_manager.host,
        SECRET_RETRY_INTERVAL=str(RETRY_INTERVAL),
        DB_TIMEOUT="2",
    )
    started = time.monotonic()
    for _ in range(REQUESTS):
        reply = client.post("/", json={"kind": "unusable-secret"})
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
        time.sleep(PAUSE)
    elapsed = time.monotonic() - started
    reads = secret_manager.access_count
    assert 2 <= reads <= math.ceil(elapsed / RETRY_INTERVAL) + 1, (reads, elapsed)

    secret_manager.clear_faults()
    secret_manager.put(PROJECT, SECRET, events_db.dsn())
    time.sleep(RETRY_INTERVAL)
    assert client.post("/", json={"kind": "fixed"}).status_code == 201
    assert [row["kind"] for row in events_db.rows().values()] == ["fixed"]

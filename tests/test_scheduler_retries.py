"""Cloud Scheduler delivering one run several times, some at once, leaves one row."""

import concurrent.futures

import pytest
from function_harness import FunctionServer

HEADERS = {
    "X-CloudScheduler": "true",
    "X-CloudScheduler-JobName": "every-minute",
    "X-CloudScheduler-ScheduleTime": "2026-11-25T12:34:00Z",
    "Content-Type": "application/octet-stream",
}


@pytest.fixture
def server(events_db, tmp_path):
    with FunctionServer(
        {"DATABASE_URL": events_db.dsn(), "DB_POOL_SIZE": "2"}, tmp_path / "f.log"
    ) as running:
        yield running


def test_same_run_delivered_three_times_some_concurrently_is_stored_once(server, events_db):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        concurrent_replies = list(pool.map(lambda _: server.request(body=b"", headers=HEADERS), range(2)))
    late_retry = server.request(body=b"", headers=HEADERS)
    statuses = sorted(reply.status for reply in concurrent_replies + [late_retry])
    assert statuses == [200, 200, 201]
    rows = events_db.rows()
    assert len(rows) == 1
    [row] = rows.values()
    assert row["kind"] == "every-minute"

"""A bounded load run while backend connections are killed: nothing lost, nothing
duplicated, nothing stored for a refused request, never more connections than the pool.

CI runs the short form below. The longer form, on demand:

    LOAD_REQUESTS=20000 scripts/test.sh tests/test_load_with_faults.py -s
"""

import collections
import concurrent.futures
import http.client
import json
import os
import random
import threading
import time
import uuid

import pytest

from function_harness import FunctionServer

REQUESTS = int(os.environ.get("LOAD_REQUESTS", "5000"))
CONCURRENCY = 16
KILL_EVERY = 300  # requests between two rounds of pg_terminate_backend
POOL_SIZE = 4
THREADS = 8  # gunicorn threads: more requests at once than pooled connections


def make_request(rng: random.Random):
    """(body, ids it carries, whether it is deliberately bad)."""
    roll = rng.random()
    if roll < 0.05:
        return b'{"kind": ""}', [], True
    count = 1 if roll < 0.75 else rng.randint(2, 50)
    events = [{"id": str(uuid.uuid4()), "kind": "load", "payload": {"n": rng.randint(0, 10**6)}}
              for _ in range(count)]
    return json.dumps(events[0] if count == 1 else events).encode(), [e["id"] for e in events], False


@pytest.fixture
def server(events_db, tmp_path):
    env = {"DATABASE_URL": events_db.dsn(), "DB_POOL_SIZE": str(POOL_SIZE), "THREADS": str(THREADS),
           "DB_TIMEOUT": "5", "LOG_LEVEL": "WARNING"}
    with FunctionServer(env, tmp_path / "load.log") as running:
        yield running


def test_load_with_killed_connections_loses_and_duplicates_nothing(server, events_db):
    rng = random.Random(20261125)
    plan = [make_request(rng) for _ in range(REQUESTS)]
    results = [None] * REQUESTS
    done = 0
    done_lock = threading.Lock()
    kills = []
    max_connections = 0
    stop = threading.Event()
    local = threading.local()

    def send(index):
        nonlocal done
        body, _, _ = plan[index]
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            local.conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            reply = local.conn.getresponse()
            results[index] = (reply.status, json.loads(reply.read()))
        except (OSError, http.client.HTTPException) as err:
            local.conn.close()
            del local.conn
            results[index] = (None, repr(err))
        with done_lock:
            done += 1
            if done % KILL_EVERY == 0:
                kills.append(events_db.terminate_backends())

    def sample_connections():
        nonlocal max_connections
        while not stop.is_set():
            max_connections = max(max_connections, events_db.connection_count())
            stop.wait(0.05)

    sampler = threading.Thread(target=sample_connections)
    sampler.start()
    events_db.reset_connection_log()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(send, range(REQUESTS)))
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()

    stored = collections.Counter(
        str(row[0]) for row in events_db.execute("SELECT id FROM events WHERE kind = 'load'", database="app"))
    statuses = collections.Counter(status for status, _ in results)
    lost = duplicated = stray = 0
    rows_checked = 0
    for (_, ids, bad), (status, answer) in zip(plan, results, strict=True):
        if bad:
            assert status == 400, answer
        if status is not None and 200 <= status < 300:
            assert answer["inserted"] == len(ids) and answer["ids"] == ids
            lost += sum(1 for i in ids if stored[i] == 0)
            rows_checked += len(ids)
        else:
            stray += sum(1 for i in ids if stored[i] > 0)
        duplicated += sum(1 for i in ids if stored[i] > 1)

    figures = {
        "requests": REQUESTS, "concurrency": CONCURRENCY, "seconds": round(elapsed, 2),
        "requests_per_second": round(REQUESTS / elapsed), "statuses": dict(statuses),
        "kill_rounds": len(kills), "backends_killed": sum(kills), "rows_checked": rows_checked,
        "lost": lost, "duplicated": duplicated, "stored_for_failed_requests": stray,
        "connections_opened": events_db.connections_opened(), "max_connections_seen": max_connections,
        "pool_size": POOL_SIZE,
    }
    print("\nload with faults:", json.dumps(figures))

    assert lost == 0 and duplicated == 0 and stray == 0
    assert sum(stored.values()) == rows_checked
    assert None not in statuses, "a request got no HTTP answer"
    assert set(statuses) <= {201, 400, 503}
    assert statuses[201] >= 0.9 * REQUESTS
    assert sum(kills) > 0, "no backend was killed: the fault was not injected"
    assert max_connections <= POOL_SIZE

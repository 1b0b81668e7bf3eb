"""A connection the pool replaces (recycled, or invalidated after a fault) is gone from
the server before its replacement opens, so the server never counts more of the
function's connections than the pool, even while a busy server is slow to end a backend."""

import os
import signal
import threading
import time

from fault_helpers import ConnectionSampler
from function_harness import load_function

RECYCLE = 1  # seconds: DB_POOL_RECYCLE's minimum
SLOW_EXIT = 0.15  # seconds the old backend is kept from running, as on a saturated server


def test_recycled_connection_has_left_the_server_before_its_replacement_connects(events_db, monkeypatch):
    _, client = load_function(
        monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1", DB_POOL_RECYCLE=str(RECYCLE)
    )
    assert client.post("/", json={"kind": "first"}).status_code == 201
    [old_backend] = events_db.backend_pids()
    time.sleep(RECYCLE + 0.1)  # the next checkout replaces the connection

    os.kill(old_backend, signal.SIGSTOP)
    threading.Timer(SLOW_EXIT, os.kill, (old_backend, signal.SIGCONT)).start()
    with ConnectionSampler(events_db, interval=0.005) as sampler:
        assert client.post("/", json={"kind": "after-recycle"}).status_code == 201
        after = events_db.backend_pids()
    time.sleep(SLOW_EXIT)  # let the timer fire even if the request was quicker

    assert old_backend not in after and len(after) == 1
    assert sampler.most == 1, sampler.counts

"""One worker's memory stays bounded whatever batch sizes it is sent (issue: 806 MiB before).

Through the real server: functions-framework with one gunicorn worker, one
thread and a pool of one, as a 256 MiB instance would run it. Every batch size
from 1 to 500, twice; the worker's resident memory is read from /proc after
every batch. A statement text per batch size (SQLAlchemy's compiled cache holding
one compiled INSERT of up to 2,000 parameters per size) made it grow to 806 MiB
after one pass.
"""

import json

from function_harness import FunctionServer

LIMIT_MIB = 160
MIB = 1024 * 1024


def test_worker_memory_stays_under_160_mib_after_every_batch_size_twice(events_db, tmp_path):
    env = {"DATABASE_URL": events_db.dsn(), "THREADS": "1", "DB_POOL_SIZE": "1"}
    with FunctionServer(env, tmp_path / "function.log") as server:
        assert server.request(body=b'{"kind": "memory"}').status == 201
        assert len(server.worker_pids()) == 1
        rss_mib: list[list[float]] = []  # per pass, after each batch size
        for _ in range(2):
            rss_mib.append([])
            for size in range(1, 501):
                reply = server.request(body=json.dumps([{"kind": "m"}] * size).encode())
                assert reply.status == 201, (size, reply.body[:300])
                assert reply.json()["inserted"] == size
                rss_mib[-1].append(server.worker_rss_bytes() / MIB)
    highest = max(max(sizes) for sizes in rss_mib)
    assert highest < LIMIT_MIB, f"worker RSS reached {highest:.1f} MiB"
    # The second pass reuses what the first built: no growth beyond noise.
    assert max(rss_mib[1]) - max(rss_mib[0]) < 16, f"highest RSS per pass: {[max(p) for p in rss_mib]} MiB"
    assert events_db.execute("SELECT count(*) FROM events", database="app")[0][0] == 1 + 2 * sum(
        range(1, 501)
    )

"""scripts/run-local.sh serves as many requests at once as the deployment (THREADS =
DB_POOL_SIZE), so a burst while the database is slow queues, as on Cloud Run,
instead of waiting on the pool and answering 503; an explicit THREADS is kept
and the difference said plainly.

The burst: 5 requests while a table lock holds every INSERT for longer than
DB_POOL_TIMEOUT. `devtools.serve_local` is what run-local.sh runs (after making
the virtualenv); it is given the test database through DATABASE_URL.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import function_harness
from function_harness import ROOT, free_port

from devtools.deadlines import scaled

BURST = 5
LOCK_SECONDS = 1.5
POOL_TIMEOUT = "0.5"


class LocalRun:
    """`python -m devtools.serve_local --port P` with `env` added, its output in `output`."""

    def __init__(self, env: dict[str, str], output: pathlib.Path):
        self.port = free_port()
        self.output = output
        function_harness.capture.log_files.append(output)
        unset = ("THREADS", "WORKERS", *function_harness.FUNCTION_ENV)
        base = {k: v for k, v in os.environ.items() if k not in unset}
        command = [sys.executable, "-m", "devtools.serve_local", "--port", str(self.port)]
        with open(output, "wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**base, **env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + scaled(60)
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve_local did not start: {output.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def post(self) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/", data=b'{"kind": "burst"}', method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=scaled(30)) as reply:
                function_harness.capture.add(reply.read().decode())
                return reply.status
        except urllib.error.HTTPError as error:
            function_harness.capture.add(error.read().decode())
            return error.code

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=scaled(30))


def burst_on_a_local_run(events_db, env: dict[str, str], output: pathlib.Path) -> tuple[list[int], str]:
    """(the statuses of a burst while INSERTs wait longer than DB_POOL_TIMEOUT, what the run printed)."""
    run = LocalRun({"DATABASE_URL": events_db.dsn(), "DB_POOL_TIMEOUT": POOL_TIMEOUT, **env}, output)
    statuses: list[int] = []
    try:
        with events_db.block_inserts():
            clients = [threading.Thread(target=lambda: statuses.append(run.post())) for _ in range(BURST)]
            for client in clients:
                client.start()
            wait_until_an_insert_waits_on_the_lock(events_db)
            time.sleep(LOCK_SECONDS)  # the lock is held past DB_POOL_TIMEOUT: what is being tested
        for client in clients:
            client.join(timeout=scaled(30))
    finally:
        run.stop()
    return sorted(statuses), output.read_text()


def wait_until_an_insert_waits_on_the_lock(events_db) -> None:
    """The burst has reached the database: from now on the lock holds the requests back."""
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND wait_event_type = 'Lock'"
    deadline = time.monotonic() + scaled(30)
    while events_db.execute(waiting)[0][0] == 0:
        assert time.monotonic() < deadline, "no INSERT of the burst reached the lock"
        time.sleep(0.01)


def test_by_default_a_burst_queues_as_on_the_deployment(events_db, tmp_path):
    statuses, output = burst_on_a_local_run(events_db, {}, tmp_path / "local.log")
    assert statuses == [201] * BURST
    assert len(events_db.rows()) == BURST
    assert "serving 1 request(s) at a time: THREADS = DB_POOL_SIZE = 1" in output


def test_threads_follow_the_pool_size(events_db, tmp_path):
    run = LocalRun({"DATABASE_URL": events_db.dsn(), "DB_POOL_SIZE": "3"}, tmp_path / "local.log")
    run.stop()
    assert "serving 3 request(s) at a time: THREADS = DB_POOL_SIZE = 3" in run.output.read_text()


def test_more_threads_than_the_pool_is_said_plainly_and_answers_503_where_cloud_run_would_queue(
    events_db, tmp_path
):
    statuses, output = burst_on_a_local_run(events_db, {"THREADS": "4"}, tmp_path / "local.log")
    assert "warning: serving with WORKERS=1 x THREADS=4 against DB_POOL_SIZE=1" in output
    assert "may wait on the pool and get 503 where Cloud Run would queue it" in output
    assert 503 in statuses and 201 in statuses
    assert len(events_db.rows()) == statuses.count(201)
    unavailable = [
        json.loads(line) for line in output.splitlines() if line.startswith("{") and '"POST / 503"' in line
    ]
    assert len(unavailable) == statuses.count(503)

"""The local loop as a new user meets it: scripts/run-local.sh's Python side, devtools.serve_local.

It says "serving" only once the function answers, refuses a taken port naming
--port, stops cleanly on Ctrl-C, and shows the local data on request.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from function_harness import ROOT, capture

from devtools.postgres import free_port


@pytest.fixture
def data_dir():
    parent = pathlib.Path(tempfile.mkdtemp(prefix="serve-local-test-"))
    parent.chmod(0o711)  # as root, PostgreSQL runs as `nobody`, which must reach its folder
    yield parent / "pgdata"
    shutil.rmtree(parent, ignore_errors=True)


def local_run(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    # A session of its own, so Ctrl-C can be sent as a terminal sends it: to the whole process group.
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.serve_local", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)


def read_until(process: subprocess.Popen, text: str, timeout: float = 60.0) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never printed; output was:\n{''.join(seen)}")


def test_serving_is_printed_once_it_answers_and_ctrl_c_stops_everything_cleanly(data_dir):
    port, db_port = free_port(), free_port()
    sockets_before = set(pathlib.Path(tempfile.gettempdir()).glob("devtools-pgsock-*"))
    process = local_run("--port", str(port), "--db-port", str(db_port), "--data-dir", str(data_dir))
    try:
        read_until(process, "is serving on")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", data=b'{"kind": "local"}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as reply:  # right after the line: no retry
            assert reply.status == 201
        started = time.monotonic()
        ctrl_c(process)
        output, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    capture.add(output)
    assert process.returncode == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in output and "embedded PostgreSQL stopped" in output
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", db_port), timeout=1).close()
    assert set(pathlib.Path(tempfile.gettempdir()).glob("devtools-pgsock-*")) <= sockets_before


def test_a_taken_port_is_named_with_the_option_to_change_it(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = local_run(
            "--port", str(taken.getsockname()[1]), "--db-port", str(free_port()), "--data-dir", str(data_dir)
        )
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "is taken; choose another with --port" in output
    assert "serving" not in output


def test_show_prints_the_newest_local_events(data_dir):
    port, db_port = free_port(), free_port()
    process = local_run("--port", str(port), "--db-port", str(db_port), "--data-dir", str(data_dir))
    try:
        read_until(process, "is serving on")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", data=b'{"kind": "shown-later"}', method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()
        ctrl_c(process)
        process.communicate(timeout=20)
    finally:
        process.kill()
    shown = local_run("--show", "5", "--db-port", str(db_port), "--data-dir", str(data_dir))
    output, _ = shown.communicate(timeout=60)
    assert shown.returncode == 0, output
    assert "shown-later" in output

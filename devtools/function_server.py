"""Run a Functions Framework target as the platform does: `functions-framework` in its own process.

The one harness the tests (tests/function_harness.py) and the benchmark use:

    with FunctionServer({"DATABASE_URL": dsn}, log_path) as server:
        reply = server.request("POST", b'{"kind": "hello"}')
        reply.status, reply.json()
        server.worker_rss_bytes()       # the gunicorn worker that serves requests

    server = FunctionServer({}, target="hello", source=ROOT / "devtools" / "bench_hello.py",
                            wrap=quota.command)   # e.g. inside a devtools.cpu_quota group
    server.spawn()
    seconds = server.wait_first_success("POST", body)   # process start to the first 2xx

Like Cloud Functions, `functions-framework` imports the source in a gunicorn
master, which forks one worker that serves the requests (THREADS threads).
The child's environment is this one minus every setting of the function
(FUNCTION_ENV), plus `env`.
"""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

from config import VARIABLES as FUNCTION_ENV  # a child sees only the function settings it is given
from devtools.deadlines import scaled
from devtools.postgres import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent
# How long a start, a stop and an answer may take (devtools.deadlines).
START_DEADLINE = scaled(30.0)
STOP_DEADLINE = scaled(10.0)
ANSWER_DEADLINE = scaled(30.0)


def json_lines(text: str) -> list[dict]:
    """The JSON objects among `text`'s lines (the function's log lines); other lines are skipped."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def environment_without_function_settings() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in FUNCTION_ENV}


class Response:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class FunctionServer:
    """`functions-framework --target TARGET --source SOURCE` on a free loopback port.

    log_path: where its stdout and stderr go (None: discarded); with
    separate_streams, stdout goes there and stderr to LOG_PATH.stderr, to tell
    which stream a line reached.
    wrap: turns the command line into the one to run (e.g. CpuQuota.command).
    port: where to listen (default: a free port); inherit_output: write to this
    process's terminal instead of a file; new_session: a process group of its
    own, so a Ctrl-C reaches only the caller, which stops the server in order
    (the local run, devtools.serve_local).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: pathlib.Path | None = None,
        *,
        target: str = "handler",
        source: pathlib.Path = ROOT / "main.py",
        wrap: Callable[[list[str]], list[str]] | None = None,
        separate_streams: bool = False,
        port: int | None = None,
        inherit_output: bool = False,
        new_session: bool = False,
    ):
        self.port = port or free_port()
        self._inherit_output = inherit_output
        self._new_session = new_session
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.stderr_path = (
            log_path.with_name(log_path.name + ".stderr")
            if separate_streams and log_path is not None
            else None
        )
        self.target = target
        self.source = source
        self._wrap = wrap or (lambda argv: argv)
        self._env = {**environment_without_function_settings(), **env, "PYTHONUNBUFFERED": "1"}
        self._process: subprocess.Popen | None = None
        self._outputs: list = []
        self.spawned_at: float | None = None  # time.perf_counter() when the process was started

    # ------------------------------------------------------------ lifecycle

    def spawn(self) -> FunctionServer:
        """Start the process and return at once (see wait_first_success)."""
        command = [
            str(pathlib.Path(sys.executable).with_name("functions-framework")),
            "--target",
            self.target,
            "--source",
            str(self.source),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        stdout, stderr = (None, None) if self._inherit_output else (subprocess.DEVNULL, subprocess.STDOUT)
        if self.log_path is not None:
            stdout = open(self.log_path, "ab")  # noqa: SIM115 - open for the server's life, closed by stop()
            self._outputs.append(stdout)
        if self.stderr_path is not None:
            stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - likewise
            self._outputs.append(stderr)
        self.spawned_at = time.perf_counter()
        self._process = subprocess.Popen(
            self._wrap(command),
            cwd=ROOT,
            env=self._env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=self._new_session,
        )
        return self

    def start(self, timeout: float = START_DEADLINE) -> FunctionServer:
        """Start the process and wait until it listens."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"functions-framework did not start listening within {timeout:g} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for output in self._outputs:
            output.close()
        self._outputs = []

    def terminate(self) -> None:
        """SIGTERM, as Cloud Run sends it before stopping an instance."""
        if self._process is not None:
            self._process.terminate()

    def wait(self, timeout: float | None) -> int:
        """The exit code, once the server has exited (TimeoutExpired after `timeout` s; None: no limit)."""
        assert self._process is not None, "the server is not started"
        return self._process.wait(timeout=timeout)

    def __enter__(self) -> FunctionServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The gunicorn master's process id (None before spawn)."""
        return self._process.pid if self._process is not None else None

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path else ""
            raise RuntimeError(f"functions-framework exited ({self._process.returncode}): {tail}")

    # ------------------------------------------------------------ requests

    def request(
        self,
        method: str = "POST",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = ANSWER_DEADLINE,
        path: str = "/",
    ) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            reply = connection.getresponse()
            return Response(reply.status, reply.headers, reply.read())
        finally:
            connection.close()

    def wait_first_success(
        self,
        method: str = "POST",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> float:
        """Seconds from spawn() to the first 2xx answer (retrying while nothing listens yet)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                reply = self.request(method, body, headers, timeout=timeout)
            except OSError:
                self._check_alive()
                time.sleep(0.002)
                continue
            if 200 <= reply.status < 300:
                return time.perf_counter() - self.spawned_at
            raise RuntimeError(f"first answer was {reply.status}: {reply.body[:500]!r}")
        raise RuntimeError(f"no 2xx answer within {timeout} s")

    # ------------------------------------------------------------ what it holds

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (the master's children), sorted."""
        if self.pid is None:
            return []
        return sorted(child for child in _all_pids() if _parent_of(child) == self.pid)

    def worker_rss_bytes(self) -> int:
        """Resident memory of the one worker (THREADS serve requests inside it)."""
        workers = self.worker_pids()
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        return memory_of(workers[0])["rss"]

    def instance_memory_bytes(self) -> int:
        """Master and workers together, shared pages counted once (sum of PSS)."""
        return sum(memory_of(pid)["pss"] for pid in [self.pid, *self.worker_pids()] if pid is not None)

    def stdout_text(self) -> str:
        """What the server wrote to stdout (and to stderr, unless the streams are separate)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        """What the server wrote to stderr (separate streams only)."""
        if self.stderr_path is None:
            raise ValueError("this server's stderr goes to its log with stdout: use separate_streams=True")
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def log_lines(self) -> list[dict]:
        """The JSON lines the function wrote to stdout (other output, like gunicorn's, is skipped)."""
        return json_lines(self.stdout_text())


def memory_of(pid: int) -> dict[str, int]:
    """{"rss": bytes, "pss": bytes} of a process, from /proc/PID/smaps_rollup."""
    values = {}
    for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key.lower()] = int(rest.split()[0]) * 1024
    return values


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent_of(pid: int) -> int | None:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])

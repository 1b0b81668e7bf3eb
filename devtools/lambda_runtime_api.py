"""A local Lambda Runtime API, and the handler run under AWS's runtime interface client against it.

    with LambdaRuntimeApi() as api, LambdaProcess(api, {"DATABASE_URL": dsn}, log_path) as function:
        result = api.invoke({"version": "2.0", ...})   # what Lambda's Invoke would return
        result.payload, result.error                    # the handler's answer, or its error

Lambda runs a Python function as `python -m awslambdaric HANDLER` (the managed
runtimes' bootstrap is the same client), which asks the Runtime API for the next
event, calls the handler, and posts the answer or the error back:

    GET  /2018-06-01/runtime/invocation/next            blocks until an event is queued
    POST /2018-06-01/runtime/invocation/{id}/response   the handler's return value
    POST /2018-06-01/runtime/invocation/{id}/error      what the handler raised
    POST /2018-06-01/runtime/init/error                 the import of the handler failed
    GET  /2018-06-01/runtime/restore/next               SnapStart: the snapshot is taken
                                                        here; returns on `restore()`
    POST /2018-06-01/runtime/restore/error              an after-restore hook failed

With SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start) the client runs the
before-snapshot hooks after the import, then calls restore/next: while that call
waits (`wait_for_snapshot()`), the process is what Lambda would snapshot.

Nothing here is meant for production; it is the tests' and the benchmark's harness.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from devtools.function_server import ROOT, environment_without_function_settings, json_lines

PREFIX = "/2018-06-01/runtime"
HANDLER = "aws.lambda_function.lambda_handler"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:events"


class InvocationResult:
    """What Lambda's Invoke returns: the payload, or the error the handler raised (then `error`)."""

    def __init__(self, body: bytes, error_type: str | None, answered_at: float = 0.0, request_id: str = ""):
        self.body = body
        self.request_id = request_id  # Lambda-Runtime-Aws-Request-Id: the handler's context.aws_request_id
        self.error_type = error_type
        self.answered_at = answered_at  # time.perf_counter() when the answer arrived

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict | None:
        return self.payload if self.error_type is not None else None


class _Invocation:
    def __init__(self, event: Any):
        self.id = str(uuid.uuid4())
        self.body = json.dumps(event).encode()
        self.done = threading.Event()
        self.result: InvocationResult | None = None


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime that is stopped mid-request (the tests end environments) resets its
        # connection: that is how environments end, not an error worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LambdaRuntimeApi:
    """The Runtime API on a free loopback port: `address` is AWS_LAMBDA_RUNTIME_API."""

    def __init__(self, host: str = "127.0.0.1"):
        self._queue: queue.Queue[_Invocation] = queue.Queue()
        self._pending: dict[str, _Invocation] = {}
        self._lock = threading.Lock()
        self.snapshot_taken = threading.Event()
        self._restored = threading.Event()
        # time.perf_counter() of each GET .../invocation/next: the first ends the init phase.
        self.next_calls: list[float] = []
        self.init_errors: list[dict] = []
        self.restore_errors: list[dict] = []
        self._server = _Server((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LambdaRuntimeApi:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restored.set()  # a client waiting in restore/next may go
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any, timeout: float = 30.0) -> InvocationResult:
        """Queue `event` for the function and wait for its answer."""
        invocation = self.submit(event)
        if not invocation.done.wait(timeout):
            raise TimeoutError(f"the function did not answer within {timeout} s")
        assert invocation.result is not None
        return invocation.result

    def submit(self, event: Any) -> _Invocation:
        """Queue `event` for the function; its `done` is set when the answer arrives."""
        invocation = _Invocation(event)
        with self._lock:
            self._pending[invocation.id] = invocation
        self._queue.put(invocation)
        return invocation

    def wait_for_snapshot(self, timeout: float = 30.0) -> None:
        """Return once the client has run the before-snapshot hooks and asked to be restored."""
        if not self.snapshot_taken.wait(timeout):
            raise TimeoutError(f"no snapshot point within {timeout} s (is SnapStart on?)")

    def restore(self) -> None:
        """Let the client go on as a restored copy: it runs the after-restore hooks next."""
        self._restored.set()

    # -------------------------------------------------- called by the HTTP handler

    def _next(self) -> _Invocation:
        self.next_calls.append(time.perf_counter())
        return self._queue.get()

    def _finish(self, invocation_id: str, body: bytes, error_type: str | None) -> bool:
        with self._lock:
            invocation = self._pending.pop(invocation_id, None)
        if invocation is None:
            return False
        invocation.result = InvocationResult(body, error_type, time.perf_counter(), invocation.id)
        invocation.done.set()
        return True

    def _wait_for_restore(self) -> None:
        self.snapshot_taken.set()
        self._restored.wait()


def _handler_for(api: LambdaRuntimeApi) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the client keeps its connection open
        # Headers and body go out in two writes: with Nagle's algorithm the second waits
        # for the client's delayed ACK (40 ms), which Lambda's own endpoint does not add.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read results, not an access log

        def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _read(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path == f"{PREFIX}/invocation/next":
                invocation = api._next()
                deadline_ms = int((time.time() + 300) * 1000)
                self._send(
                    200,
                    invocation.body,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": invocation.id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                    },
                )
            elif self.path == f"{PREFIX}/restore/next":
                api._wait_for_restore()
                self._send(200)
            else:
                self._send(404, b'{"errorMessage": "unknown path"}')

        def do_POST(self) -> None:
            body = self._read()
            parts = self.path[len(PREFIX) + 1 :].split("/") if self.path.startswith(PREFIX) else []
            if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                error_type = None
                if parts[2] == "error":
                    error_type = self.headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled"
                found = api._finish(parts[1], body, error_type)
                self._send(202 if found else 404)
            elif parts == ["init", "error"]:
                api.init_errors.append(json.loads(body or b"{}"))
                self._send(202)
            elif parts == ["restore", "error"]:
                api.restore_errors.append(json.loads(body or b"{}"))
                self._send(202)
            else:
                self._send(404)

    return Handler


class LambdaProcess:
    """`python -m awslambdaric aws.lambda_function.lambda_handler` against `api`.

    The child's environment is this one minus the function's settings, plus what
    Lambda sets and `env`; its output goes to `log_path`. `snap_start` sets
    AWS_LAMBDA_INITIALIZATION_TYPE=snap-start, as Lambda does when it builds a snapshot.
    """

    def __init__(
        self,
        api: LambdaRuntimeApi,
        env: Mapping[str, str],
        log_path: pathlib.Path,
        *,
        snap_start: bool = False,
        wrap: Any = None,
        python: str = sys.executable,
        task_root: pathlib.Path = ROOT,
        handler: str = HANDLER,
    ):
        self.api = api
        self.log_path = log_path
        self.env = {
            # Nothing of the caller's AWS configuration: the tests never reach a real account.
            **{k: v for k, v in environment_without_function_settings().items() if not k.startswith("AWS_")},
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "events",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_REGION": "us-east-1",
            "LAMBDA_TASK_ROOT": str(task_root),
            "PYTHONPATH": str(task_root),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if snap_start else "on-demand",
            **env,
        }
        self.argv = [python, "-m", "awslambdaric", handler]
        self.task_root = task_root
        self._wrap = wrap
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LambdaProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        argv = self._wrap(self.argv) if self._wrap else self.argv
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.task_root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        """End the execution environment as Lambda does (SIGKILL after a grace period)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def invoke(self, event: Any) -> InvocationResult:
        """Invoke and wait for as long as the environment lives: no fixed deadline, which a
        busy machine would break, and a process that dies is an error at once."""
        invocation = self.api.submit(event)
        while not invocation.done.wait(0.05):
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the function's process ended before answering: see {self.log_path}")
        assert invocation.result is not None
        return invocation.result

    def wait_for_snapshot(self) -> None:
        """Return at the snapshot point (SnapStart), waiting for as long as the process lives."""
        while not self.api.snapshot_taken.wait(0.05):
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(
                    f"the function's process ended before the snapshot point: see {self.log_path}"
                )

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []

    def json_log_lines(self) -> list[dict]:
        return json_lines("\n".join(self.log_lines()))

"""Running the function the two ways the tests need: in process, and over real HTTP.

In process, `functions_framework.create_app` loads main.py exactly as the
framework does in production (a fresh module each time, so each test gets its
own engine and pool). Over HTTP, the `functions-framework` command serves it
from a subprocess (gunicorn, as in Cloud Functions), its log lines captured.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import functions_framework

from db import settings

from devtools.postgres import free_port  # noqa: F401 - re-exported for the tests

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUNCTION_ENV = settings.VARIABLES


_loaded_instances: list = []


class OutputCapture:
    """Everything the function said during one test: log lines and response bodies.

    An autouse fixture starts a fresh capture per test and, at teardown, checks
    that no known secret (passwords, DSNs, secret payloads) appears in any of it.
    """

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.log_files: list[pathlib.Path] = []

    def add(self, text: str) -> None:
        self.texts.append(text)

    def everything(self) -> list[str]:
        files = [path.read_text(errors="replace") for path in self.log_files if path.exists()]
        return self.texts + files


capture = OutputCapture()


class KnownSecrets:
    """Every password and connection string the tests' servers use, for the leak check.

    Registered where they are made (every PostgresServer's passwords, every
    password a DSN is built with), so a test is checked against the secrets of
    every server it touches, whichever fixtures it asked for. Kept for the whole
    session: a secret that reaches the output of a later test is still a leak.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._retiring: set[str] = set()

    def add(self, *values: str | None) -> None:
        self._values.update(value for value in values if value)

    def retire_after_this_test(self, value: str) -> None:
        """Stop checking `value` (and DSNs holding it) once this test has been checked:
        for a password the test made and revoked, such as a common word that later
        tests may print for good reasons."""
        self._retiring.add(value)

    def end_test(self) -> None:
        self._values = {value for value in self._values
                        if not any(retired in value for retired in self._retiring)}
        self._retiring.clear()

    def plain(self) -> set[str]:
        """Each secret as is and percent-encoded (inside a DSN)."""
        return self._values | {urllib.parse.quote(value, safe="") for value in self._values}

    def every_form(self) -> set[str]:
        """Also escaped for JSON, as they would appear inside a JSON line."""
        plain = self.plain()
        return plain | {json.dumps(value, ensure_ascii=False)[1:-1] for value in plain} \
            | {json.dumps(value)[1:-1] for value in plain}


known_secrets = KnownSecrets()


def _record_response(response):
    capture.add(response.get_data(as_text=True))
    return response


def load_function(monkeypatch, **env: str):
    """(module, Flask test client) for a fresh instance of main.py with `env` set.

    Each call is a new "instance" with its own engine; `dispose_instances`
    (an autouse fixture calls it after every test) closes their connections.
    """
    for name in FUNCTION_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = functions_framework.create_app(target="handler", source=str(ROOT / "main.py"))
    app.after_request(_record_response)
    module = sys.modules["main"]
    _loaded_instances.append(module)
    return module, app.test_client()


def dispose_instances() -> None:
    while _loaded_instances:
        module = _loaded_instances.pop()
        module.runtime.close()


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class FunctionServer:
    """`functions-framework --target handler` in a subprocess on a free port.

    Its stdout and stderr go to `log_path` together, or, with
    `separate_streams`, to `log_path` (stdout) and `stderr_path` apart, to
    tell which stream a line reached. `source` serves another file than main.py.
    """

    def __init__(self, env: dict[str, str], log_path: pathlib.Path, *, separate_streams: bool = False,
                 source: pathlib.Path = ROOT / "main.py"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.stderr_path = log_path.with_name(log_path.name + ".stderr") if separate_streams else None
        capture.log_files.extend(path for path in (log_path, self.stderr_path) if path is not None)
        self.source = source
        base = {k: v for k, v in os.environ.items() if k not in FUNCTION_ENV}
        self._env = {**base, **env, "PYTHONUNBUFFERED": "1"}
        self._process: subprocess.Popen | None = None
        self._outputs: list = []

    def start(self, timeout: float = 30.0) -> "FunctionServer":
        command = [str(pathlib.Path(sys.executable).with_name("functions-framework")),
                   "--target", "handler", "--source", str(self.source),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        stdout = open(self.log_path, "ab")
        stderr = open(self.stderr_path, "ab") if self.stderr_path else subprocess.STDOUT
        self._outputs = [stdout] + ([stderr] if self.stderr_path else [])
        self._process = subprocess.Popen(command, cwd=ROOT, env=self._env, stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"functions-framework exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("functions-framework did not start listening")

    @property
    def pid(self) -> int:
        """The `functions-framework` process (gunicorn's arbiter; its child serves the requests)."""
        assert self._process is not None, "the server is not started"
        return self._process.pid

    def terminate(self) -> None:
        """SIGTERM, as Cloud Run sends it before stopping an instance."""
        self._process.terminate()

    def wait(self, timeout: float) -> int:
        """The exit code, once the server has exited (TimeoutExpired after `timeout` s)."""
        return self._process.wait(timeout=timeout)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for output in self._outputs:
            output.close()
        self._outputs = []

    def __enter__(self) -> "FunctionServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def request(self, method: str = "POST", body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0, path: str = "/") -> Response:
        request = urllib.request.Request(self.url.rstrip("/") + path, data=body, method=method,
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                response = Response(reply.status, reply.headers, reply.read())
        except urllib.error.HTTPError as error:
            response = Response(error.code, error.headers, error.read())
        capture.add(response.body.decode(errors="replace"))
        return response

    def stdout_text(self) -> str:
        """What the server wrote to stdout (and to stderr, unless the streams are separate)."""
        return self.log_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        """What the server wrote to stderr (separate streams only)."""
        if self.stderr_path is None:
            raise ValueError("this server's stderr goes to its log with stdout: use separate_streams=True")
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def log_lines(self) -> list[dict]:
        """The JSON lines the function wrote (other output, like gunicorn's, is skipped)."""
        lines = []
        for raw in self.stdout_text().splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                lines.append(entry)
        return lines

"""Running the function the two ways the tests need: in process, and over real HTTP.

In process, `functions_framework.create_app` loads main.py exactly as the
framework does in production (a fresh module each time, so each test gets its
own engine and pool). Over HTTP, the `functions-framework` command serves it
from a subprocess (gunicorn, as in Cloud Functions; devtools.function_server,
the harness the benchmark uses too), its log lines captured.
"""

from __future__ import annotations

import json
import pathlib
import sys
import threading
import urllib.parse

import functions_framework

from devtools import function_server
from devtools.deadlines import scaled
from devtools.function_server import FUNCTION_ENV, ROOT  # noqa: F401 - ROOT re-exported for the tests
from devtools.postgres import free_port  # noqa: F401 - re-exported for the tests

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
        self._values = {
            value for value in self._values if not any(retired in value for retired in self._retiring)
        }
        self._retiring.clear()

    def plain(self) -> set[str]:
        """Each secret as is and percent-encoded (inside a DSN)."""
        # surrogateescape: a secret holding bytes that are not UTF-8 (as os.environ keeps
        # them) is percent-encoded as those bytes, as core.logs.redact encodes it.
        return self._values | {
            urllib.parse.quote(value, safe="", errors="surrogateescape") for value in self._values
        }

    def every_form(self) -> set[str]:
        """Also escaped for JSON, as they would appear inside a JSON line."""
        plain = self.plain()
        return (
            plain
            | {json.dumps(value, ensure_ascii=False)[1:-1] for value in plain}
            | {json.dumps(value)[1:-1] for value in plain}
        )


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


class FunctionServer(function_server.FunctionServer):
    """`functions-framework --target handler` in a subprocess on a free port
    (devtools.function_server), its output and answers captured for the leak check."""

    def __init__(self, env: dict[str, str], log_path: pathlib.Path, **options):
        super().__init__(env, log_path, **options)
        capture.log_files.extend(path for path in (self.log_path, self.stderr_path) if path is not None)

    def request(
        self,
        method: str = "POST",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = function_server.ANSWER_DEADLINE,
        path: str = "/",
    ) -> function_server.Response:
        response = super().request(method, body, headers, timeout, path)
        capture.add(response.body.decode(errors="replace"))
        return response


class HeldConnection:
    """A pooled connection kept busy by another thread until released: what a
    request that is still running looks like to the pool."""

    def __init__(self, database):
        self._holding, self._release = threading.Event(), threading.Event()
        self.connection = None

        def hold(connection) -> None:
            self.connection = connection
            self._holding.set()
            self._release.wait(scaled(30))

        self._thread = threading.Thread(target=database.run, args=(hold,), daemon=True)

    def __enter__(self) -> HeldConnection:
        self._thread.start()
        assert self._holding.wait(scaled(10)), "the pool gave no connection"
        return self

    def release(self) -> None:
        self._release.set()
        self._thread.join(scaled(10))

    def __exit__(self, *exc_info) -> None:
        self.release()

"""The Functions Framework entry point: an HTTP request in, the core's answer out.

Everything the function does is in core/ (the use case) and db/ (the database);
this file only translates between Flask and the core. The per-instance runtime
(the engine and its pool) is a module-level global, outside the handler, so
every invocation on an instance reuses it: CockroachDB's serverless best practice.

Shutdown: on SIGTERM (Cloud Run allows 10 s before SIGKILL) gunicorn's worker
stops accepting, lets the requests in flight finish, and exits; the pool is then
closed by the atexit hook below, each connection with a Terminate message.
functions-framework builds gunicorn's configuration itself (GUNICORN_CMD_ARGS
and gunicorn.conf.py are not read), so a gunicorn hook cannot be installed;
atexit runs in the worker after its request threads have been joined.
"""

from __future__ import annotations

import gc

# Cold start: the imports below (SQLAlchemy, pg8000 and what they import) create
# a few hundred thousand objects that live as long as the instance. Left on, the
# cyclic garbage collector scans them again and again while they load, and again
# in gunicorn's worker. Paused for the imports, then told to leave what they made
# alone for good (gc.freeze, which Python's documentation advises before a
# pre-fork server forks): 2 % fewer instructions to the first answer, and an
# instance that exits (on scale-in) with 80 % fewer, since the interpreter's last
# collection skips them too (README, "Cold start").
gc.disable()
try:
    import atexit
    import json
    import socket
    import sys
    from typing import TextIO

    import flask
    import functions_framework
    from functions_framework.execution_id import LoggingHandlerAddExecutionId
    from werkzeug.wsgi import get_content_length

    from core import logs, service
    from core.body import read_body
    from core.runtime import Runtime
    from db.settings import Settings
finally:
    gc.freeze()
    gc.enable()


def _process_stdout() -> TextIO:
    # Under LOG_EXECUTION_ID functions-framework swaps sys.stdout, during each
    # request, for a wrapper that re-encodes every line and sets its own spanId
    # (in decimal, where Cloud Logging wants hex). The function's lines already
    # carry the execution id and the right spanId: write beneath the wrapper.
    stream = sys.stdout
    while isinstance(stream, LoggingHandlerAddExecutionId):
        stream = stream.stream
    return stream


logs.configure(Settings.log_level_from_environment(), stream=_process_stdout)
runtime = Runtime()
# In the gunicorn worker this runs after the request threads have finished.
atexit.register(runtime.close)


@functions_framework.http
def handler(request: flask.Request) -> flask.Response:
    outcome = service.handle(
        runtime,
        service.Request(
            method=request.method,
            path=request.path,
            headers=EnvironHeaders(request.environ),
            read_body=lambda: _read_body(request),
            url=_request_url(request.environ),
            remote_ip=request.remote_addr or "",
        ),
    )
    return flask.Response(
        json.dumps(outcome.body),
        status=outcome.status,
        headers=outcome.headers,
        content_type="application/json",
    )


class EnvironHeaders:
    """The request's headers, read from the WSGI environ when the core asks for one.

    The core looks up a handful of headers by name; building werkzeug's header
    list (every header, names re-cased) for each request cost more CPU than
    those lookups. The server has already joined a repeated header into one
    value, as werkzeug's list would show it.
    """

    __slots__ = ("_environ",)

    def __init__(self, environ: dict):
        self._environ = environ

    def get(self, name: str, default: str = "") -> str:
        value = self._environ.get(_environ_key(name))
        return default if value is None else value

    def getlist(self, name: str) -> list[str]:
        value = self._environ.get(_environ_key(name))
        return [] if value is None else [value]


def _environ_key(name: str) -> str:
    # WSGI (PEP 3333): HTTP_ and the name in upper case with "_" for "-", but
    # Content-Type and Content-Length without the prefix.
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


def _read_body(request: flask.Request) -> bytes:
    # Parsed as JSON whatever the Content-Type: Cloud Scheduler's HTTP targets
    # send application/octet-stream unless the job sets a header.
    environ = request.environ
    if environ.get("wsgi.input_terminated"):
        # gunicorn, the Functions Framework's server, ends the input stream with
        # the body (chunked or not), and werkzeug would hand over that very
        # stream: read it directly, without building werkzeug's header view and
        # stream lookups for it (half of what the adapter cost per invocation).
        stream, declared_length = environ["wsgi.input"], get_content_length(environ)
    else:  # another server: werkzeug's stream stops at the Content-Length
        stream, declared_length = request.stream, request.content_length
    sock = environ.get("gunicorn.socket")  # the client's socket, under gunicorn
    # At the time limit, shutting the socket's reading side ends a read blocked on the client.
    cut_off = (lambda: sock.shutdown(socket.SHUT_RD)) if sock is not None else None
    return read_body(stream, declared_length, time_limit=runtime.body_time_limit, cut_off=cut_off)


def _request_url(environ: dict) -> str:
    # The URL as it reached the server, for the request's log line, straight from
    # the WSGI environ: werkzeug's request.url re-quotes it as an IRI, which cost
    # about a sixth of the function's own CPU per warm invocation.
    query = environ.get("QUERY_STRING")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")

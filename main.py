"""The Functions Framework entry point: an HTTP request in, the core's answer out.

Everything the function does is in core/ (the use case) and db/ (the database),
wired by runtime.py; this file translates between Flask and the core. The runtime
(the engine and its pool) is a module-level global, outside the handler, so every
invocation on an instance reuses it: CockroachDB's serverless best practice.
"""

from __future__ import annotations

import atexit
import json
import socket

import flask
import functions_framework

from core import logs, service
from core.body import read_body
from core.outcomes import Outcome, RequestRejected, outcome_for_error
from runtime import Runtime

runtime = Runtime()
logs.configure(runtime.config.log_level)
# gunicorn's worker runs this after its request threads have finished (SIGTERM
# included), so each pooled connection is closed with a Terminate message.
atexit.register(runtime.close)
# functions-framework answers these paths itself (404), then reads the body.
FRAMEWORK_PATHS = ("/robots.txt", "/favicon.ico")
# The longest request target (path and query, as decoded) answered, as common servers
# bound it (8 KiB); functions-framework lets gunicorn read request lines of any length.
MAX_TARGET_BYTES = 8 * 1024


def answer_before_routing() -> flask.Response | None:
    """A 414 for an overlong target, and the framework's own paths answered without their body."""
    request = flask.request
    target = len(request.environ.get("PATH_INFO", "")) + len(request.environ.get("QUERY_STRING", ""))
    if target > MAX_TARGET_BYTES:
        # The target itself is neither echoed nor logged: only its size.
        refused = RequestRejected(
            414, f"the request target is {target} bytes; the limit is {MAX_TARGET_BYTES}"
        )
        return _response(outcome_for_error(refused), body_left_unread=_has_body(request))
    if request.path in FRAMEWORK_PATHS and _has_body(request):
        return _response(
            Outcome(404, {"error": f"there is nothing at {request.path}"}), body_left_unread=True
        )
    return None


# functions-framework imports this file inside its app's context; a plain import has none.
if flask.has_app_context():
    flask.current_app.before_request(answer_before_routing)


@functions_framework.http
def handler(request: flask.Request) -> flask.Response:
    body_complete = False

    def read() -> bytes:
        nonlocal body_complete
        body = _read_body(request)
        body_complete = True
        return body

    outcome = runtime.handle(
        service.Request(
            method=request.method,
            path=_path(request),
            headers=service.Headers((name, _utf8(value)) for name, value in request.headers.items()),
            read_body=read,
            url=request.url,
            remote_ip=request.remote_addr or "",
        ),
    )
    return _response(outcome, body_left_unread=_has_body(request) and not body_complete)


def _path(request: flask.Request) -> str:
    # Werkzeug drops a path's leading slashes ("//" reads as "/"); only "/" itself is the function's.
    raw = request.environ.get("PATH_INFO", "")
    return "/" + request.path if raw.startswith("//") else request.path


def _utf8(value: str) -> str:
    """A header value read as the UTF-8 its sender meant: WSGI hands header bytes over as
    latin-1 text (PEP 3333). Bytes that are not UTF-8 read as U+FFFD, which no rule takes
    for what was sent."""
    try:
        return value.encode("latin-1").decode("utf-8", errors="replace")
    except UnicodeEncodeError:  # not from a WSGI server: already text
        return value


def _read_body(request: flask.Request) -> bytes:
    # Parsed as JSON whatever the Content-Type: Cloud Scheduler's HTTP targets
    # send application/octet-stream unless the job sets a header.
    sock = client_socket(request)
    # Shutting the socket's reading side ends a read blocked on a client that stalls.
    cut_off = (lambda: sock.shutdown(socket.SHUT_RD)) if sock is not None else None
    return read_body(
        request.stream, request.content_length, time_limit=runtime.config.body_timeout, cut_off=cut_off
    )


def client_socket(request: flask.Request) -> socket.socket | None:
    """The client's socket, which gunicorn (functions-framework's server) puts in the WSGI
    environ: the one server-specific detail here, since neither WSGI nor Flask can end a read
    blocked on a stalled client, nor make gunicorn's threaded worker close a connection (it
    drops the response's Connection header). tests/test_request_bodies.py fails if an
    upgrade drops it."""
    return request.environ.get("gunicorn.socket")


def _has_body(request: flask.Request) -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _response(outcome: Outcome, *, body_left_unread: bool) -> flask.Response:
    text = json.dumps(outcome.body)
    if not body_left_unread:
        return flask.Response(text, outcome.status, outcome.headers, content_type="application/json")
    # functions-framework reads whatever body the function left after every
    # response that is not streamed, and gunicorn's threaded worker drains it for
    # up to 5 s before reusing the connection. Answered without reading it (404,
    # 405, 413, a GET with a body), the response is streamed, and once it is
    # written the connection is shut, so the rest is never read or waited for.
    headers = {**outcome.headers, "Connection": "close", "Content-Length": str(len(text.encode()))}
    response = flask.Response(iter([text]), outcome.status, headers, content_type="application/json")
    sock = client_socket(flask.request)
    if sock is not None:
        response.call_on_close(lambda: _shut(sock))
    return response


def _shut(sock: socket.socket) -> None:
    # Called by the server once the response is written. Reading side only: a read then
    # returns at once (the server's drain of the body and its lingering close wait for
    # nothing), while bytes already sent are still read, within the server's own caps.
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass  # the client is already gone

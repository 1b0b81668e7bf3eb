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
from core.outcomes import Outcome
from runtime import Runtime

runtime = Runtime()
logs.configure(runtime.config.log_level)
# gunicorn's worker runs this after its request threads have finished (SIGTERM
# included), so each pooled connection is closed with a Terminate message.
atexit.register(runtime.close)
# functions-framework answers these paths itself (404), then reads the body.
FRAMEWORK_PATHS = ("/robots.txt", "/favicon.ico")


def answer_framework_paths_without_their_body() -> flask.Response | None:
    request = flask.request
    if request.path in FRAMEWORK_PATHS and _has_body(request):
        return _response(
            Outcome(404, {"error": f"there is nothing at {request.path}"}), body_left_unread=True
        )
    return None


# functions-framework imports this file inside its app's context; a plain import has none.
if flask.has_app_context():
    flask.current_app.before_request(answer_framework_paths_without_their_body)


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
            path=request.path,
            headers=request.headers,
            read_body=read,
            url=request.url,
            remote_ip=request.remote_addr or "",
        ),
    )
    return _response(outcome, body_left_unread=_has_body(request) and not body_complete)


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
    blocked on a stalled client. tests/test_request_bodies.py fails if an upgrade drops it."""
    return request.environ.get("gunicorn.socket")


def _has_body(request: flask.Request) -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _response(outcome: Outcome, *, body_left_unread: bool) -> flask.Response:
    text = json.dumps(outcome.body)
    if not body_left_unread:
        return flask.Response(text, outcome.status, outcome.headers, content_type="application/json")
    # functions-framework reads whatever body the function left, without a limit
    # of time or size, after every response that is not streamed. Answered
    # without reading it (404, 405, 413, a GET with a body), the response is
    # streamed and the connection closed, so the rest is never read.
    headers = {**outcome.headers, "Connection": "close", "Content-Length": str(len(text.encode()))}
    return flask.Response(iter([text]), outcome.status, headers, content_type="application/json")

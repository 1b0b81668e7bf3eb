"""The Functions Framework entry point: an HTTP request in, the core's answer out.

Everything the function does is in core/ (the use case) and db/ (the database);
this file only translates between Flask and the core. The per-instance runtime
(the engine and its pool) is a module-level global, outside the handler, so
every invocation on an instance reuses it: CockroachDB's serverless best practice.
"""

from __future__ import annotations

import json
import socket

import flask
import functions_framework

from core import logs, service
from core.body import read_body
from core.runtime import Runtime
from db.settings import Settings

logs.configure(Settings.log_level_from_environment())
runtime = Runtime()


@functions_framework.http
def handler(request: flask.Request) -> flask.Response:
    outcome = service.handle(runtime, service.Request(
        method=request.method,
        path=request.path,
        headers=service.Headers(request.headers.items()),
        read_body=lambda: _read_body(request),
        url=request.url,
        remote_ip=request.remote_addr or "",
    ))
    return flask.Response(json.dumps(outcome.body), status=outcome.status, headers=outcome.headers,
                          mimetype="application/json")


def _read_body(request: flask.Request) -> bytes:
    # Parsed as JSON whatever the Content-Type: Cloud Scheduler's HTTP targets
    # send application/octet-stream unless the job sets a header.
    sock = request.environ.get("gunicorn.socket")  # the client's socket, under gunicorn
    # At the time limit, shutting the socket's reading side ends a read blocked on the client.
    cut_off = (lambda: sock.shutdown(socket.SHUT_RD)) if sock is not None else None
    return read_body(request.stream, request.content_length, time_limit=runtime.body_time_limit,
                     cut_off=cut_off)

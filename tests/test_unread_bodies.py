"""A request answered without reading its body (404, 405, 413, a GET or HEAD with a body)
is answered at once and its connection closed; the rest is never read.

functions-framework reads whatever body the function left, with no limit of time or
size, after every response that is not streamed. With one thread per instance, as
deployed, a client that declares a body and sends none would otherwise hold the
instance, and one that sends 200 MiB would grow it by as much. Raw sockets against
the real `functions-framework` server.
"""

import http.client
import json
import socket
import time

import pytest
from function_harness import FunctionServer, capture

# Longer than any answer takes here, far shorter than the hang it guards against.
ANSWER_WITHIN = 5.0


@pytest.fixture(scope="module")
def server(events_server, tmp_path_factory):
    env = {"DATABASE_URL": events_server.dsn(), "THREADS": "1"}
    with FunctionServer(env, tmp_path_factory.mktemp("unread") / "function.log") as running:
        yield running


def send_head(server, method: str, path: str, framing: str) -> socket.socket:
    """A request whose head is sent and whose body is announced but not sent."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: function\r\n{framing}\r\n\r\n".encode())
    return sock


def answer(sock: socket.socket) -> tuple[int, dict, bool]:
    """(status, JSON body, whether the server closed the connection after it)."""
    reply = http.client.HTTPResponse(sock, method="GET")
    try:
        reply.begin()
        body = reply.read()
        closed = sock.recv(1) == b""
    finally:
        sock.close()
    capture.add(body.decode(errors="replace"))
    return reply.status, json.loads(body) if body else {}, closed


@pytest.mark.parametrize(
    "method, path, status",
    [("POST", "/other", 404), ("PUT", "/", 405), ("GET", "/", 200), ("POST", "/robots.txt", 404)],
    ids=["unknown-path", "other-method", "get-with-a-body", "framework-path"],
)
def test_a_body_the_function_does_not_read_is_never_waited_for(server, events_db, method, path, status):
    sock = send_head(server, method, path, "Content-Length: 10")
    assert answer(sock)[::2] == (status, True)
    # The instance's only thread is free again: the next request is answered.
    assert server.request("GET", timeout=ANSWER_WITHIN).status == 200
    assert events_db.rows() == {}


def test_a_head_request_with_a_body_is_answered_and_closed(server):
    sock = send_head(server, "HEAD", "/", "Content-Length: 10")
    reply = http.client.HTTPResponse(sock, method="HEAD")
    reply.begin()
    assert reply.status == 200 and reply.getheader("Connection") == "close"
    assert sock.recv(1) == b""
    sock.close()


def test_a_body_declared_too_large_gets_its_413_at_once(server, events_db):
    sock = send_head(server, "POST", "/", "Content-Type: application/json\r\nContent-Length: 2000000")
    status, body, closed = answer(sock)
    assert (status, closed) == (413, True)
    assert "2000000 bytes; the limit is 1048576" in body["error"]
    assert events_db.rows() == {}


def test_a_large_chunked_body_to_another_path_leaves_memory_bounded(server):
    before = server.worker_rss_bytes()
    sock = send_head(server, "POST", "/nothing", "Transfer-Encoding: chunked")
    chunk = b"%x\r\n%s\r\n" % (1024 * 1024, b"x" * 1024 * 1024)
    sent = 0
    try:
        while sent < 200:  # MiB, unless the server closes first, as it should
            sock.sendall(chunk)
            sent += 1
    except OSError:
        pass  # the server answered and closed the connection
    finally:
        sock.close()
    assert server.request("GET", timeout=ANSWER_WITHIN).status == 200
    assert server.worker_rss_bytes() - before < 20 * 1024 * 1024


def test_sigterm_with_a_client_holding_an_unread_body_exits_promptly_and_closes_the_pool(
    events_server, tmp_path
):
    env = {"DATABASE_URL": events_server.dsn(), "THREADS": "1"}
    server = FunctionServer(env, tmp_path / "function.log").start()
    try:
        assert server.request("GET").status == 200  # a pooled connection to close at exit
        held = send_head(server, "POST", "/other", "Content-Length: 10")
        assert answer(held)[0] == 404
        lingering = send_head(server, "POST", "/other", "Content-Length: 10")
        server.terminate()
        started = time.monotonic()
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        lingering.close()
    finally:
        server.stop()
    assert [line["message"] for line in server.log_lines()][-1] == "database connections closed"

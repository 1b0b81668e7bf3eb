"""A body that never arrives in full is refused and stores nothing, and a client that
stalls or trickles holds a server thread for BODY_TIMEOUT at most.

Raw sockets against the real `functions-framework` server (gunicorn's threads),
because the faults are in the transport: a client that half-closes early, one that
stops sending, one that sends a byte now and then.
"""

import http.client
import json
import socket
import time

import pytest
from function_harness import FunctionServer, capture, load_function

BODY_TIMEOUT = 1.0
THREADS = 8
SLACK = 1.5  # seconds allowed beyond the limit on a shared 2-core machine


@pytest.fixture(scope="module")
def server(events_server, tmp_path_factory):
    env = {"DATABASE_URL": events_server.dsn(), "BODY_TIMEOUT": str(BODY_TIMEOUT), "THREADS": str(THREADS)}
    with FunctionServer(env, tmp_path_factory.mktemp("bodies") / "function.log") as running:
        yield running


def start_post(server, content_length: int | None, sent: bytes, chunked: bool = False) -> socket.socket:
    """A POST whose headers and first `sent` bytes are on their way; the caller decides the rest."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {content_length}"
    head = f"POST / HTTP/1.1\r\nHost: function\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    sock.sendall(head.encode() + sent)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict, bool]:
    """(status, JSON body, whether the server then closed the connection); closes `sock`."""
    reply = http.client.HTTPResponse(sock)
    try:
        reply.begin()
        body = reply.read()
        sock.settimeout(2)
        closed = sock.recv(1) == b""
    finally:
        sock.close()
    capture.add(body.decode(errors="replace"))
    return reply.status, json.loads(body), closed


def test_body_shorter_than_its_content_length_then_half_close_is_400(server, events_db):
    body = b'{"kind": "cut-short"}'
    sock = start_post(server, 100, body)
    sock.shutdown(socket.SHUT_WR)
    status, reply, _ = answer(sock)
    assert status == 400
    assert f"ended after {len(body)} of the 100 bytes" in reply["error"]
    assert events_db.rows() == {}


def test_chunked_body_cut_off_mid_chunk_is_400(server, events_db):
    sock = start_post(server, None, b'40\r\n{"kind": "chunk-cut"}', chunked=True)
    sock.shutdown(socket.SHUT_WR)
    status, reply, _ = answer(sock)
    assert status == 400
    assert "chunked" in reply["error"]
    assert events_db.rows() == {}


def post_chunked(server, body: bytes, size: int) -> tuple[int, dict]:
    """POST `body` in chunks of `size` bytes, without a Content-Length; (status, JSON reply)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        pieces = (body[i : i + size] for i in range(0, len(body), size))
        connection.request(
            "POST", "/", body=pieces, headers={"Content-Type": "application/json"}, encode_chunked=True
        )
        reply = connection.getresponse()
        text = reply.read().decode()
    finally:
        connection.close()
    capture.add(text)
    return reply.status, json.loads(text)


def test_complete_chunked_body_is_stored(server, events_db):
    """Without a Content-Length the body ends where the chunks end (gunicorn's stream, read directly)."""
    body = json.dumps([{"kind": "chunked", "payload": {"n": n}} for n in range(40)]).encode()
    status, reply = post_chunked(server, body, 100)
    assert status == 201, reply
    assert reply["inserted"] == 40
    assert [row["kind"] for row in events_db.rows().values()] == ["chunked"] * 40


def test_chunked_body_over_the_limit_is_413(server, events_db):
    body = json.dumps({"kind": "too-big", "payload": {"text": "x" * (1024 * 1024)}}).encode()
    status, reply = post_chunked(server, body, 64 * 1024)
    assert status == 413
    assert "larger than the limit" in reply["error"]
    assert events_db.rows() == {}


def test_body_one_byte_short_is_408_at_the_time_limit(server, events_db):
    body = b'{"kind": "one-byte-short"}'
    started = time.monotonic()
    sock = start_post(server, len(body) + 1, body)
    status, reply, closed = answer(sock)
    elapsed = time.monotonic() - started
    assert status == 408
    assert closed, "the connection stayed open after the time limit"
    assert f"within {BODY_TIMEOUT:g} s" in reply["error"]
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + SLACK
    assert events_db.rows() == {}


def test_trickling_body_is_cut_off_at_the_time_limit(server, events_db):
    # A byte every 0.2 s: each read succeeds well within any per-read timeout,
    # so only a limit on the whole body ends this request.
    sock = start_post(server, 1000, b"{")
    started = time.monotonic()
    sent = 1
    while time.monotonic() - started < BODY_TIMEOUT + 2 * SLACK:
        time.sleep(0.2)
        try:
            sock.sendall(b" ")
        except OSError:
            break  # the server closed the connection
        sent += 1
        if _has_answer(sock):
            break
    status, reply, _ = answer(sock)
    elapsed = time.monotonic() - started
    assert status == 408, reply
    assert elapsed < BODY_TIMEOUT + SLACK
    assert events_db.rows() == {}


def test_stalled_clients_on_every_thread_delay_health_by_the_time_limit_at_most(server, events_db):
    stalled = [start_post(server, 100, b'{"kind": "stalled"') for _ in range(THREADS)]
    time.sleep(0.2)  # every thread is now waiting for a body
    started = time.monotonic()
    health = server.request("GET", timeout=BODY_TIMEOUT + 10)
    elapsed = time.monotonic() - started
    assert health.status == 200
    assert elapsed < BODY_TIMEOUT + SLACK
    assert [answer(sock)[0] for sock in stalled] == [408] * THREADS
    assert events_db.rows() == {}


def _has_answer(sock: socket.socket) -> bool:
    """Whether the server has sent something (without consuming it)."""
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)
        sock.settimeout(30)


def test_malformed_body_timeout_is_a_503_naming_the_setting(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), BODY_TIMEOUT="soon")
    reply = client.post("/", json={"kind": "misconfigured"})
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
    assert "BODY_TIMEOUT must be a number of seconds from 0.1 to 3600, got 'soon'" in capfd.readouterr().out
    assert events_db.rows() == {}

"""Request bodies in the transport: a body that is incomplete, slow, unread or large
never holds a server thread past its limit, never grows the worker's memory without
bound, and a refused body stores nothing.

- A body that never arrives in full is refused and stores nothing, and a client that
  stalls or trickles holds a server thread for BODY_TIMEOUT at most: a client that
  half-closes early, one that stops sending, one that sends a byte now and then.
- A request answered without reading its body (404, 405, 413, a GET or HEAD with a
  body) is answered at once and its connection closed; the rest is never read.
  functions-framework reads whatever body the function left, with no limit of time or
  size, after every response that is not streamed; gunicorn's threaded worker drains it
  for up to 5 s before reusing the connection, and its sync worker lingers 2 s on close.
  A client that declares a body and sends none would otherwise hold a thread, and one
  that sends 200 MiB would grow the instance by as much.
- Both of gunicorn's workers, as functions-framework picks them: sync with THREADS=1
  (the deployment's default concurrency), threaded with THREADS=2 and more.
- One worker's memory stays bounded whatever batch sizes it is sent (issue: 806 MiB
  before): functions-framework with one gunicorn worker, one thread and a pool of one,
  as a 256 MiB instance would run it. Every batch size from 1 to 500, twice; the
  worker's resident memory is read from /proc after every batch. A statement text per
  batch size (SQLAlchemy's compiled cache holding one compiled INSERT of up to 2,000
  parameters per size) made it grow to 806 MiB after one pass.

Raw sockets against the real `functions-framework` server (gunicorn's threads), because
the faults are in the transport.
"""

import http.client
import json
import pathlib
import socket
import time

import pytest
from function_harness import ROOT, FunctionServer, capture, load_function

from devtools.deadlines import scaled

BODY_TIMEOUT = 1.0
SLACK = scaled(1.5)  # seconds allowed beyond the limit on a shared 2-core machine

# functions-framework runs gunicorn's sync worker with THREADS=1 (the deployment's default
# concurrency of 1) and its threaded worker with more: deploy.sh sets THREADS to the pool
# size, so both occur, and each test of the edge runs under both.
WORKERS = pytest.mark.parametrize("threads", ["1", "2"], ids=["sync", "gthread"], indirect=True)


@pytest.fixture(scope="module")
def threads(request):
    return request.param


@pytest.fixture(scope="module")
def server(events_server, tmp_path_factory, threads):
    env = {"DATABASE_URL": events_server.dsn(), "BODY_TIMEOUT": str(BODY_TIMEOUT), "THREADS": threads}
    with FunctionServer(env, tmp_path_factory.mktemp("bodies") / "function.log") as running:
        yield running


def start_post(server, content_length: int | None, sent: bytes, chunked: bool = False) -> socket.socket:
    """A POST whose headers and first `sent` bytes are on their way; the caller decides the rest."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=scaled(30))
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
        sock.settimeout(scaled(2))
        closed = sock.recv(1) == b""
    finally:
        sock.close()
    capture.add(body.decode(errors="replace"))
    return reply.status, json.loads(body), closed


@WORKERS
def test_body_shorter_than_its_content_length_then_half_close_is_400(server, events_db):
    body = b'{"kind": "cut-short"}'
    sock = start_post(server, 100, body)
    sock.shutdown(socket.SHUT_WR)
    status, reply, _ = answer(sock)
    assert status == 400
    assert f"ended after {len(body)} of the 100 bytes" in reply["error"]
    assert events_db.rows() == {}


@WORKERS
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


@WORKERS
def test_complete_chunked_body_is_stored(server, events_db):
    """Without a Content-Length the body ends where the chunks end (gunicorn's stream, read directly)."""
    body = json.dumps([{"kind": "chunked", "payload": {"n": n}} for n in range(40)]).encode()
    status, reply = post_chunked(server, body, 100)
    assert status == 201, reply
    assert reply["inserted"] == 40
    assert [row["kind"] for row in events_db.rows().values()] == ["chunked"] * 40


@WORKERS
def test_chunked_body_over_the_limit_is_413(server, events_db):
    body = json.dumps({"kind": "too-big", "payload": {"text": "x" * (1024 * 1024)}}).encode()
    status, reply = post_chunked(server, body, 64 * 1024)
    assert status == 413
    assert "larger than the limit" in reply["error"]
    assert events_db.rows() == {}


@WORKERS
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


@WORKERS
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


def connections_read_to_the_end(port: int) -> int:
    """How many open connections to `port` the server has read all that was sent on
    (an empty receive queue in /proc/net/tcp: columns local address, state, queues)."""
    count = 0
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, _, state, queues, *_ = line.split()
        established = state == "01"
        if established and int(local.split(":")[1], 16) == port and int(queues.split(":")[1], 16) == 0:
            count += 1
    return count


def wait_until_read_to_the_end(port: int, connections: int) -> None:
    """Until the server has read all that was sent on `connections` connections: a worker
    holds each request (none waits in the listen queue) and waits for the rest of its body."""
    deadline = time.monotonic() + scaled(10)
    while connections_read_to_the_end(port) < connections:
        assert time.monotonic() < deadline, "the server did not read every stalled client's first bytes"
        time.sleep(0.01)


@WORKERS
def test_stalled_clients_on_every_thread_delay_health_by_the_time_limit_at_most(server, events_db, threads):
    stalled = [start_post(server, 100, b'{"kind": "stalled"') for _ in range(int(threads))]
    # Every thread has read its client's head and first bytes, and now waits for the rest.
    wait_until_read_to_the_end(server.port, int(threads))
    started = time.monotonic()
    health = server.request("GET", timeout=BODY_TIMEOUT + 10)
    elapsed = time.monotonic() - started
    assert health.status == 200
    assert elapsed < BODY_TIMEOUT + SLACK
    assert [answer(sock)[0] for sock in stalled] == [408] * int(threads)
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


# Longer than any answer takes here, far shorter than the hang it guards against.
ANSWER_WITHIN = scaled(5.0)


@pytest.fixture(scope="module")
def unread_server(events_server, tmp_path_factory, threads):
    env = {"DATABASE_URL": events_server.dsn(), "THREADS": threads}
    with FunctionServer(env, tmp_path_factory.mktemp("unread") / "function.log") as running:
        yield running


def send_head(server, method: str, path: str, framing: str) -> socket.socket:
    """A request whose head is sent and whose body is announced but not sent."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: function\r\n{framing}\r\n\r\n".encode())
    return sock


def answer_unread(sock: socket.socket) -> tuple[int, dict, bool]:
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


@WORKERS
@pytest.mark.parametrize(
    "method, path, status",
    [("POST", "/other", 404), ("PUT", "/", 405), ("GET", "/", 200), ("POST", "/robots.txt", 404)],
    ids=["unknown-path", "other-method", "get-with-a-body", "framework-path"],
)
def test_a_body_the_function_does_not_read_is_never_waited_for(
    unread_server, events_db, method, path, status
):
    sock = send_head(unread_server, method, path, "Content-Length: 10")
    assert answer_unread(sock)[::2] == (status, True)
    # The instance's only thread is free again: the next request is answered.
    assert unread_server.request("GET", timeout=ANSWER_WITHIN).status == 200
    assert events_db.rows() == {}


@WORKERS
def test_a_head_request_with_a_body_is_answered_and_closed(unread_server):
    sock = send_head(unread_server, "HEAD", "/", "Content-Length: 10")
    reply = http.client.HTTPResponse(sock, method="HEAD")
    reply.begin()
    assert reply.status == 200
    assert sock.recv(1) == b""
    sock.close()


@WORKERS
def test_a_body_declared_too_large_gets_its_413_at_once(unread_server, events_db):
    sock = send_head(unread_server, "POST", "/", "Content-Type: application/json\r\nContent-Length: 2000000")
    status, body, closed = answer_unread(sock)
    assert (status, closed) == (413, True)
    assert "2000000 bytes; the limit is 1048576" in body["error"]
    assert events_db.rows() == {}


@WORKERS
def test_a_large_chunked_body_to_another_path_leaves_memory_bounded(unread_server):
    before = unread_server.worker_rss_bytes()
    sock = send_head(unread_server, "POST", "/nothing", "Transfer-Encoding: chunked")
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
    assert unread_server.request("GET", timeout=ANSWER_WITHIN).status == 200
    assert unread_server.worker_rss_bytes() - before < 20 * 1024 * 1024


@pytest.mark.parametrize("threads", ["1", "2"], ids=["sync", "gthread"])
def test_sigterm_with_a_client_holding_an_unread_body_exits_promptly_and_closes_the_pool(
    events_server, tmp_path, threads
):
    env = {"DATABASE_URL": events_server.dsn(), "THREADS": threads}
    server = FunctionServer(env, tmp_path / "function.log").start()
    try:
        assert server.request("GET").status == 200  # a pooled connection to close at exit
        held = send_head(server, "POST", "/other", "Content-Length: 10")
        assert answer_unread(held)[0] == 404
        lingering = send_head(server, "POST", "/other", "Content-Length: 10")
        server.terminate()
        started = time.monotonic()
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        lingering.close()
    finally:
        server.stop()
    assert [line["message"] for line in server.log_lines()][-1] == "database connections closed"


@pytest.mark.parametrize("threads", ["1", "2"], ids=["sync", "gthread"])
def test_sigterm_during_a_stalled_body_at_the_default_time_limit_exits_in_time_and_closes_the_pool(
    events_server, tmp_path, threads
):
    env = {"DATABASE_URL": events_server.dsn(), "THREADS": threads}  # BODY_TIMEOUT left at its default
    server = FunctionServer(env, tmp_path / "function.log").start()
    try:
        assert server.request("GET").status == 200  # a pooled connection to close at exit
        stalled = start_post(server, 100, b'{"kind":')
        wait_until_read_to_the_end(server.port, 1)  # SIGTERM then comes during the body
        server.terminate()
        started = time.monotonic()
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - started < 10  # Cloud Run's SIGKILL comes 10 s after SIGTERM
        assert answer(stalled)[0] == 408
    finally:
        server.stop()
    assert [line["message"] for line in server.log_lines()][-1] == "database connections closed"


@WORKERS
def test_clients_that_never_send_their_declared_bodies_delay_no_other_request(unread_server):
    """gunicorn's threaded worker drains an unread body for up to 5 s on the request's thread
    before it reuses a connection: two such 404s held both threads of THREADS=2 and made a
    third client's GET wait 4.8 s. The function shuts each such connection once answered."""
    started = time.monotonic()
    assert unread_server.request("GET", timeout=ANSWER_WITHIN).status == 200
    baseline = time.monotonic() - started
    held = [send_head(unread_server, "POST", "/other", "Content-Length: 10") for _ in range(2)]
    for sock in held:  # answered; the clients keep their connections open, sending nothing
        reply = http.client.HTTPResponse(sock, method="POST")
        reply.begin()
        assert reply.status == 404
        capture.add(reply.read().decode())
    started = time.monotonic()
    assert unread_server.request("GET", timeout=ANSWER_WITHIN).status == 200
    # Well under the drain's 5 s and gunicorn's 2 s linger, whatever the machine's load.
    assert time.monotonic() - started < baseline + 1.0
    for sock in held:
        assert sock.recv(1) == b"", "the server kept a connection whose body it never read"
        sock.close()


LIMIT_MIB = 160
MIB = 1024 * 1024


def test_worker_memory_stays_under_160_mib_after_every_batch_size_twice(events_db, tmp_path):
    env = {"DATABASE_URL": events_db.dsn(), "THREADS": "1", "DB_POOL_SIZE": "1"}
    with FunctionServer(env, tmp_path / "function.log") as server:
        assert server.request(body=b'{"kind": "memory"}').status == 201
        assert len(server.worker_pids()) == 1
        rss_mib: list[list[float]] = []  # per pass, after each batch size
        for _ in range(2):
            rss_mib.append([])
            for size in range(1, 501):
                reply = server.request(body=json.dumps([{"kind": "m"}] * size).encode())
                assert reply.status == 201, (size, reply.body[:300])
                assert reply.json()["inserted"] == size
                rss_mib[-1].append(server.worker_rss_bytes() / MIB)
    highest = max(max(sizes) for sizes in rss_mib)
    assert highest < LIMIT_MIB, f"worker RSS reached {highest:.1f} MiB"
    # The second pass reuses what the first built: no growth beyond noise.
    assert max(rss_mib[1]) - max(rss_mib[0]) < 16, f"highest RSS per pass: {[max(p) for p in rss_mib]} MiB"
    assert events_db.execute("SELECT count(*) FROM events", database="app")[0][0] == 1 + 2 * sum(
        range(1, 501)
    )


def test_the_server_hands_the_function_the_clients_socket_to_cut_off(tmp_path):
    """The body time limit shuts a stalled client's socket; under functions-framework's
    server, main.client_socket finds it (an upgrade that moves it fails here)."""
    source = ROOT / "tests" / "handler_that_reports_its_client_socket.py"
    env = {"PYTHONPATH": str(ROOT)}  # the test source imports main.py
    with FunctionServer(
        env, tmp_path / "function.log", target="reports_client_socket", source=source
    ) as server:
        reply = server.request("GET")
    assert (reply.status, reply.json()) == (200, {"client_socket": True})

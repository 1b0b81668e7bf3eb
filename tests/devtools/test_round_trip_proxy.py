"""devtools.round_trip_proxy counts client-to-server flights, whatever the writes look like."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time

import pg8000.native
import pytest

from devtools.deadlines import scaled
from devtools.round_trip_proxy import RoundTripProxy


class _LineEcho(socketserver.StreamRequestHandler):
    """Answers each complete line, so a line sent in pieces is still one question."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(b"got " + line)
            self.wfile.flush()


@pytest.fixture
def line_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _LineEcho)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _ask(sock: socket.socket, *pieces: bytes) -> bytes:
    for piece in pieces:
        sock.sendall(piece)
        time.sleep(0.02)  # separate writes, likely separate segments: still one flight
    answer = b""
    while not answer.endswith(b"\n"):
        answer += sock.recv(100)
    return answer


def _connect_through(proxy: RoundTripProxy, postgres, application_name: str) -> pg8000.native.Connection:
    return pg8000.native.Connection(
        "app",
        password=postgres.app_password,
        host="127.0.0.1",
        port=proxy.port,
        database="app",
        ssl_context=False,
        application_name=application_name,
        timeout=scaled(10),
    )


def test_one_question_in_several_writes_is_one_round_trip(line_server):
    with (
        RoundTripProxy("127.0.0.1", line_server) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as sock,
    ):
        assert _ask(sock, b"he", b"l", b"lo\n") == b"got hello\n"
        assert proxy.round_trips == 1
        assert _ask(sock, b"again\n") == b"got again\n"
        assert _ask(sock, b"and ", b"again\n") == b"got and again\n"
        assert proxy.round_trips == 3
        assert proxy.connections == 1


def test_counts_add_up_over_connections_and_reset_starts_from_zero(line_server):
    with (
        RoundTripProxy("127.0.0.1", line_server) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as first,
        socket.create_connection(("127.0.0.1", proxy.port)) as second,
    ):
        _ask(first, b"a\n")
        _ask(second, b"b\n")
        _ask(first, b"c\n")
        assert (proxy.round_trips, proxy.connections) == (3, 2)
        proxy.reset()
        assert (proxy.round_trips, proxy.connections) == (0, 0)
        _ask(second, b"d\n")
        assert proxy.round_trips == 1


def test_postgresql_protocol_flights(postgres):
    """A simple query and a named prepared statement wait once each; pg8000's
    unnamed statement with parameters waits three times (Parse, Describe, Bind/Execute)."""
    with RoundTripProxy("127.0.0.1", postgres.port) as proxy:
        connection = _connect_through(proxy, postgres, "proxy-flights-test")
        try:
            assert proxy.round_trips > 1  # start-up and SCRAM authentication
            proxy.reset()
            assert connection.run("SELECT 1") == [[1]]
            assert proxy.round_trips == 1

            statement = connection.prepare("SELECT CAST(:n AS int) + 1")
            proxy.reset()
            assert statement.run(n=41) == [[42]]
            assert statement.run(n=1) == [[2]]
            assert proxy.round_trips == 2

            proxy.reset()
            assert connection.run("SELECT CAST(:n AS int) + 1", n=1) == [[2]]
            assert proxy.round_trips == 3
        finally:
            connection.close()


def test_a_connection_the_server_ends_is_ended_for_the_client(postgres):
    with RoundTripProxy("127.0.0.1", postgres.port) as proxy:
        connection = _connect_through(proxy, postgres, "proxy-kill-test")
        assert proxy.open_connections == 1
        postgres.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE application_name = 'proxy-kill-test'"
        )
        with pytest.raises((pg8000.native.InterfaceError, pg8000.native.DatabaseError)):
            connection.run("SELECT 1")
        with contextlib.suppress(pg8000.native.InterfaceError):
            connection.close()  # its Terminate message may not get through; the socket closes anyway
        deadline = time.monotonic() + scaled(5)
        while proxy.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.open_connections == 0


def test_stopping_the_proxy_ends_the_servers_side_of_every_connection(postgres):
    """stop() ends the server connections even while the proxy waits on them: a
    backend left open would count against the next test's connections."""
    proxy = RoundTripProxy("127.0.0.1", postgres.port).start()
    connection = _connect_through(proxy, postgres, "proxy-stop-test")
    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'proxy-stop-test'"
    assert postgres.execute(count) == [[1]]
    proxy.stop()  # the client's connection is still open, and the server's side idle
    deadline = time.monotonic() + scaled(5)
    while postgres.execute(count) != [[0]] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert postgres.execute(count) == [[0]]
    with contextlib.suppress(pg8000.native.InterfaceError):
        connection.close()

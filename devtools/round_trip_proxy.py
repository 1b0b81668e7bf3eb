"""A TCP proxy on loopback that counts network round trips, as the wire sees them.

    with RoundTripProxy("127.0.0.1", server.port) as proxy:
        dsn = server.dsn(host="127.0.0.1").replace(f":{server.port}/", f":{proxy.port}/")
        ...                      # connect through proxy.port
        proxy.reset()
        ...                      # one invocation
        assert proxy.round_trips == 2

A round trip is a client-to-server flight: bytes the client sends after the
server has answered (or as the first bytes of a connection). Several writes of
the client before the server says anything are one flight, and so are several
writes of the server before the client speaks again, so the count does not
depend on how a driver splits its messages into writes or TCP segments, only on
how often it waits for the server. This is what a remote database makes a
client pay for: each flight costs one network round trip, whatever it carries.
TLS does not change the count (the proxy sees ciphertext and counts flights).

Counting is per connection and summed over every connection through the proxy,
so a reconnect's handshake (TCP, TLS, SCRAM: several flights) and a pool's
Terminate message on close are counted too: reset() after the set-up you do not
want to count, and read the count before closing what you do not want counted.

The server's direction is marked before its bytes are forwarded, so when a
client call that waited for the server's answer returns, every flight of that
call has been counted: `round_trips` is exact at that moment, with no sleep.

Threads, one pair per connection; nothing here is meant for production.
"""

from __future__ import annotations

import socket
import threading

CLIENT, SERVER = "client", "server"


class _Link:
    """One client connection and its server connection, and who spoke last."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client = client
        self.server = server
        self.last_speaker: str | None = None
        self.directions_done = 0

    def close(self) -> None:
        # shutdown() first: close() alone, while the other pipe thread is blocked
        # in recv() on the socket, neither wakes that thread nor sends a FIN (the
        # blocked call keeps the socket alive), so PostgreSQL would keep the backend.
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more
            sock.close()


class RoundTripProxy:
    """Forward 127.0.0.1:`port` to (target_host, target_port), counting round trips.

    Public interface: `port` and `host` (where to connect), `round_trips`
    (client-to-server flights since start or reset(), all connections),
    `connections` (connections accepted since start or reset()), `open_connections`,
    `reset()`, `start()`/`stop()` or `with`.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._round_trips = 0
        self._connections = 0
        self._running = False

    # ------------------------------------------------------------ the counts

    @property
    def round_trips(self) -> int:
        """Client-to-server flights since start or the last reset(), over every connection."""
        with self._lock:
            return self._round_trips

    @property
    def connections(self) -> int:
        """Connections accepted since start or the last reset()."""
        with self._lock:
            return self._connections

    @property
    def open_connections(self) -> int:
        """Connections open through the proxy now."""
        with self._lock:
            return len(self._links)

    def reset(self) -> None:
        """Count from zero. A connection keeps its state: a client whose last flight
        is still unanswered does not start a new round trip until the server answers."""
        with self._lock:
            self._round_trips = 0
            self._connections = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> RoundTripProxy:
        if not self._running:
            self._running = True
            threading.Thread(target=self._accept, name="round-trip-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every connection through the proxy; idempotent."""
        self._running = False
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            links, self._links = list(self._links), set()
        for link in links:
            link.close()

    def __enter__(self) -> RoundTripProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<RoundTripProxy {self.host}:{self.port} -> {self.target[0]}:{self.target[1]} "
            f"round_trips={self.round_trips}>"
        )

    # ------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                # Forward each write at once: the proxy must not merge or delay flights.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, server)
            with self._lock:
                if not self._running:
                    link.close()
                    return
                self._links.add(link)
                self._connections += 1
            threading.Thread(target=self._pipe, args=(link, CLIENT), daemon=True).start()
            threading.Thread(target=self._pipe, args=(link, SERVER), daemon=True).start()

    def _pipe(self, link: _Link, speaker: str) -> None:
        source, destination = (link.client, link.server) if speaker == CLIENT else (link.server, link.client)
        try:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                with self._lock:
                    if link.last_speaker != speaker:
                        link.last_speaker = speaker
                        if speaker == CLIENT:
                            self._round_trips += 1
                try:
                    destination.sendall(data)
                except OSError:
                    break
        finally:
            # Pass the end of the stream on (a server that ended the connection
            # is seen by the client as such), then drop the link once both are done.
            try:
                destination.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with self._lock:
                link.directions_done += 1
                done = link.directions_done == 2
                if done:
                    self._links.discard(link)
            if done:
                link.close()

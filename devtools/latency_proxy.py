"""A TCP proxy on loopback that delays every byte by a fixed time, each way.

The benchmark puts it between the client and PostgreSQL to show what an
invocation costs when the database is a network round trip away (the same GCP
region: roughly half a millisecond), not a loopback one. Threads and
time.sleep, not asyncio: the event loop's timers have millisecond resolution.
"""

from __future__ import annotations

import queue
import socket
import threading
import time


class LatencyProxy:
    def __init__(self, target_port: int, one_way_delay: float, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.delay = one_way_delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()

    def start(self) -> "LatencyProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, server)
            self._pipe(server, client)

    def _pipe(self, source: socket.socket, destination: socket.socket) -> None:
        """Forward source -> destination, each chunk `delay` seconds after it arrived."""
        pending: queue.Queue = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                pending.put((time.perf_counter() + self.delay, data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = pending.get()
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    try:
                        destination.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                try:
                    destination.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

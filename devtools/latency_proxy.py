"""A TCP proxy on loopback that delays every byte by a fixed time, each way.

The benchmark puts it between the client and PostgreSQL to show what an
invocation costs when the database is a network round trip away (the same GCP
region: roughly half a millisecond), not a loopback one. Threads and
time.sleep, not asyncio: the event loop's timers have millisecond resolution.

`LatencyProxyProcess` runs it in a process of its own: in the process being
measured, the proxy's threads would compete for its GIL and delay a client
that is busy in Python more than one that waits on the socket.

    python -m devtools.latency_proxy --target-port 5432 --one-way-delay 0.00025
"""

from __future__ import annotations

import argparse
import queue
import signal
import socket
import subprocess
import sys
import threading
import time


class LatencyProxy:
    def __init__(self, target_port: int, one_way_delay: float, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.delay = one_way_delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()

    def start(self) -> LatencyProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

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


class LatencyProxyProcess:
    """A LatencyProxy in a child process: `with LatencyProxyProcess(port, delay) as proxy: proxy.port`."""

    def __init__(self, target_port: int, one_way_delay: float, target_host: str = "127.0.0.1"):
        self._command = [
            sys.executable,
            "-m",
            "devtools.latency_proxy",
            "--target-host",
            target_host,
            "--target-port",
            str(target_port),
            "--one-way-delay",
            repr(one_way_delay),
        ]
        self._process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> LatencyProxyProcess:
        self._process = subprocess.Popen(self._command, stdout=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process.stdout.close()
            self._process = None

    def __enter__(self) -> LatencyProxyProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.latency_proxy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--one-way-delay", type=float, required=True, help="seconds added to each direction")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    proxy = LatencyProxy(args.target_port, args.one_way_delay, args.target_host).start()
    print(f"port {proxy.port}", flush=True)  # a parent may wait for this line
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reading a request body within limits: size, completeness, time.

The transport (main.py for the Functions Framework) hands over a stream, the
declared Content-Length and, when it can, a way to cut the client off; the
rules are the same for every entry point:

- over 1 MiB, declared or sent: 413;
- shorter than its Content-Length, or a chunked body that ends early or is
  malformed (the client half-closed, or its connection broke): 400, because
  storing what arrived would store a request the client never finished;
- not all there within the time limit (BODY_TIMEOUT, 10 s by default): 408 and
  the connection is closed, so a client that stalls, or trickles a byte now and
  then, holds a server thread for that long at most.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import IO

from core.outcomes import RequestRejected
from db.settings import DEFAULTS

MAX_BODY_BYTES = 1024 * 1024
# Seconds for the whole body: 1 MiB in 10 s is 100 KiB/s, far below any client
# that is really sending.
BODY_TIME_LIMIT = DEFAULTS.body_timeout
_CHUNK = 64 * 1024
_CLOSE = {"Connection": "close"}


class _Watch:
    """One body being read: cut off at `deadline` unless cancelled first."""

    def __init__(self, deadline: float, cut_off: Callable[[], None]):
        self.deadline = deadline
        self.cut_off = cut_off
        self.finished = False  # read, cancelled or cut off
        self.fired = False  # cut off


class _Watchdog:
    """One thread that cuts off every body still being read at its deadline.

    A socket timeout bounds each read, not the body: a client that sends a byte
    just before every timeout would hold its thread for ever. Cutting the
    connection's reading side at the deadline ends the blocked read at once.
    One thread serves every request, so a request pays a heap push and no
    thread start; it is started on first use, in the process that serves
    (gunicorn forks its workers after importing the function).
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, cut_off: Callable[[], None]) -> _Watch:
        watch = _Watch(deadline, cut_off)
        with self._condition:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="body-watchdog", daemon=True)
                self._thread.start()
            heapq.heappush(self._pending, (deadline, next(self._order), watch))
            if self._pending[0][2] is watch:
                self._condition.notify()  # it is now the earliest deadline
        return watch

    def cancel(self, watch: _Watch) -> None:
        with self._condition:
            watch.finished = True
            watch.cut_off = _nothing  # the entry waits in the heap until its deadline: hold no socket

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                while self._pending and (self._pending[0][2].finished or self._pending[0][0] <= now):
                    _, _, watch = heapq.heappop(self._pending)
                    if not watch.finished:
                        watch.finished = watch.fired = True
                        _cut(watch)
                wait = self._pending[0][0] - now if self._pending else None
                self._condition.wait(wait)


def _nothing() -> None:
    pass


def _cut(watch: _Watch) -> None:
    try:
        watch.cut_off()
    except OSError:
        pass  # the connection is already gone: nothing left to cut


_watchdog = _Watchdog()


def read_body(
    stream: IO[bytes],
    declared_length: int | None,
    *,
    time_limit: float = BODY_TIME_LIMIT,
    cut_off: Callable[[], None] | None = None,
) -> bytes:
    """The whole body, or RequestRejected.

    `cut_off()`, called from another thread when the time limit is reached,
    must end a read blocked on the client (a socket's `shutdown(SHUT_RD)`).
    """
    if declared_length is not None and declared_length > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is {declared_length} bytes; the limit is {MAX_BODY_BYTES}")
    wanted = MAX_BODY_BYTES + 1 if declared_length is None else declared_length
    deadline = time.monotonic() + time_limit
    watch = _watchdog.watch(deadline, cut_off) if cut_off is not None else None
    try:
        body, failure = _read(stream, wanted, deadline)
    finally:
        if watch is not None:
            _watchdog.cancel(watch)
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is larger than the limit of {MAX_BODY_BYTES} bytes")
    complete = failure is None and (declared_length is None or len(body) == declared_length)
    if complete:
        return body
    if (watch is not None and watch.fired) or time.monotonic() >= deadline:
        raise RequestRejected(
            408, f"the body did not arrive within {time_limit:g} s; nothing was stored", headers=dict(_CLOSE)
        )
    raise RequestRejected(400, _incomplete(len(body), declared_length, failure), headers=dict(_CLOSE))


def _read(stream: IO[bytes], wanted: int, deadline: float) -> tuple[bytes, str | None]:
    """What arrived (up to `wanted` bytes), and why reading failed, if it did."""
    chunks: list[bytes] = []
    received = 0
    while received < wanted:
        if time.monotonic() >= deadline:
            return b"".join(chunks), "the time limit"
        try:
            chunk = stream.read(min(_CHUNK, wanted - received))
        except Exception as err:  # noqa: BLE001 - the server's stream failed: the body cannot be had
            return b"".join(chunks), type(err).__name__
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks), None


def _incomplete(received: int, declared_length: int | None, failure: str | None) -> str:
    if declared_length is None:
        return (
            f"the chunked body could not be read ({failure}): it ended early or is malformed; "
            "nothing was stored"
        )
    return (
        f"the body ended after {received} of the {declared_length} bytes its Content-Length "
        "announced; nothing was stored"
    )

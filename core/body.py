"""Reading a request body within limits: size, completeness, time.

The entry point hands over a stream, the declared Content-Length and, when it
can, a way to cut the client off; the rules are the same for every platform:

- over 1 MiB, declared or sent: 413;
- shorter than its Content-Length, or a chunked body that ends early or is
  malformed: 400, because storing what arrived would store a request the
  client never finished;
- not all there within the time limit (BODY_TIMEOUT): 408 and the connection
  is closed, so a client that stalls, or trickles a byte now and then, holds
  a server thread for that long at most.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import IO

from core.logs import HeaderLookup
from core.outcomes import RequestRejected

MAX_BODY_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_CLOSE = {"Connection": "close"}


def read_body(
    stream: IO[bytes],
    declared_length: int | None,
    *,
    time_limit: float,
    cut_off: Callable[[], None] | None = None,
) -> bytes:
    """The whole body, or RequestRejected.

    `cut_off()`, called from the watchdog thread at the time limit, must end a
    read blocked on the client (a socket's `shutdown(SHUT_RD)`): a socket timeout
    bounds each read, not the body, and a trickling client would never hit it.
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
            watch.cancel()
    check_size(body)
    if failure is None and (declared_length is None or len(body) == declared_length):
        return body
    if time.monotonic() >= deadline:
        raise RequestRejected(
            408, f"the body did not arrive within {time_limit:g} s; nothing was stored", headers=dict(_CLOSE)
        )
    raise RequestRejected(400, _incomplete(len(body), declared_length, failure), headers=dict(_CLOSE))


def refuse_codings(headers: HeaderLookup) -> None:
    """A body is stored as sent: a coding the function would not undo is refused, not stored
    still encoded. Values are not quoted back (a header may hold anything)."""
    codings = [coding.strip().lower() for coding in headers.get("Transfer-Encoding", "").split(",")]
    if [coding for coding in codings if coding] not in ([], ["chunked"]):
        raise RequestRejected(
            400, "Transfer-Encoding may only be chunked; send the body without other codings"
        )
    if headers.get("Content-Encoding", "").strip().lower() not in ("", "identity"):
        raise RequestRejected(415, "Content-Encoding is not supported; send the body uncompressed")


def check_size(body: bytes) -> bytes:
    """`body`, or 413 if it is over the limit (for platforms that hand over the whole body)."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is larger than the limit of {MAX_BODY_BYTES} bytes")
    return body


class _Watch:
    def __init__(self, cut_off: Callable[[], None]):
        self.cut_off: Callable[[], None] | None = cut_off

    def cancel(self) -> None:
        self.cut_off = None  # the body is read: the entry waits out its deadline, holding nothing


class _Watchdog:
    """One thread that cuts off every body still being read at its deadline.

    One thread for the process, started on first use (in the worker gunicorn
    forks), rather than a timer thread per request: starting a thread costs a
    request more than reading its body does.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._pending: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, cut_off: Callable[[], None]) -> _Watch:
        watch = _Watch(cut_off)
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="body-watchdog", daemon=True)
                self._thread.start()
            heapq.heappush(self._pending, (deadline, next(self._order), watch))
            if self._pending[0][2] is watch:
                self._wake.notify()  # it is now the earliest deadline
        return watch

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending or self._pending[0][0] > time.monotonic():
                    self._wake.wait(self._pending[0][0] - time.monotonic() if self._pending else None)
                _, _, watch = heapq.heappop(self._pending)
            cut_off, watch.cut_off = watch.cut_off, None
            if cut_off is not None:
                try:
                    cut_off()
                except OSError:
                    pass  # the connection is already gone: nothing left to cut


_watchdog = _Watchdog()


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

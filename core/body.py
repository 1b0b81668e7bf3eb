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

import threading
import time
from collections.abc import Callable
from typing import IO

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

    `cut_off()`, called from a timer thread at the time limit, must end a read
    blocked on the client (a socket's `shutdown(SHUT_RD)`): a socket timeout
    bounds each read, not the body, and a trickling client would never hit it.
    """
    if declared_length is not None and declared_length > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is {declared_length} bytes; the limit is {MAX_BODY_BYTES}")
    wanted = MAX_BODY_BYTES + 1 if declared_length is None else declared_length
    deadline = time.monotonic() + time_limit
    timer = threading.Timer(time_limit, _quietly, (cut_off,)) if cut_off is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        body, failure = _read(stream, wanted, deadline)
    finally:
        if timer is not None:
            timer.cancel()
    check_size(body)
    if failure is None and (declared_length is None or len(body) == declared_length):
        return body
    if time.monotonic() >= deadline:
        raise RequestRejected(
            408, f"the body did not arrive within {time_limit:g} s; nothing was stored", headers=dict(_CLOSE)
        )
    raise RequestRejected(400, _incomplete(len(body), declared_length, failure), headers=dict(_CLOSE))


def check_size(body: bytes) -> bytes:
    """`body`, or 413 if it is over the limit (for platforms that hand over the whole body)."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is larger than the limit of {MAX_BODY_BYTES} bytes")
    return body


def _quietly(cut_off: Callable[[], None]) -> None:
    try:
        cut_off()
    except OSError:
        pass  # the connection is already gone: nothing left to cut


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

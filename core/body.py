"""Reading a request body within limits: size, completeness, time.

The transport (main.py for the Functions Framework) hands over a stream, the
declared Content-Length and, when it can, a way to bound each socket read; the
rules are the same for every entry point:

- over 1 MiB, declared or sent: 413;
- shorter than its Content-Length (the client half-closed, or its connection
  broke): 400, because storing what arrived would store a request the client
  never finished;
- not all there within BODY_TIME_LIMIT: 408 and the connection is closed, so a
  client that stalls holds a server thread for that long at most.
"""

from __future__ import annotations

import time
from typing import IO, Callable

from core.outcomes import RequestRejected

MAX_BODY_BYTES = 1024 * 1024
# Seconds for the whole body: 1 MiB in 10 s is 100 KiB/s, far below any client
# that is really sending.
BODY_TIME_LIMIT = 10.0
_CHUNK = 64 * 1024
_CLOSE = {"Connection": "close"}


def read_body(stream: IO[bytes], declared_length: int | None, *,
              limit_each_read: Callable[[float], None] | None = None,
              time_limit: float = BODY_TIME_LIMIT) -> bytes:
    """The whole body, or RequestRejected. `limit_each_read(seconds)` bounds the next read."""
    if declared_length is not None and declared_length > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is {declared_length} bytes; the limit is {MAX_BODY_BYTES}")
    wanted = MAX_BODY_BYTES + 1 if declared_length is None else declared_length
    deadline = time.monotonic() + time_limit
    chunks: list[bytes] = []
    received = 0
    while received < wanted:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _too_slow()
        if limit_each_read is not None:
            limit_each_read(remaining)
        try:
            chunk = stream.read(min(_CHUNK, wanted - received))
        except TimeoutError:
            raise _too_slow() from None
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    if received > MAX_BODY_BYTES:
        raise RequestRejected(413, f"the body is larger than the limit of {MAX_BODY_BYTES} bytes")
    if declared_length is not None and received < declared_length:
        raise RequestRejected(
            400, f"the body ended after {received} of the {declared_length} bytes its Content-Length "
                 "announced; nothing was stored", headers=dict(_CLOSE))
    return b"".join(chunks)


def _too_slow() -> RequestRejected:
    return RequestRejected(408, f"the body did not arrive within {BODY_TIME_LIMIT:g} s; nothing was stored",
                           headers=dict(_CLOSE))

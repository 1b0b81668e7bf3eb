"""The limits and rules of an event, in one place.

db/migrations/versions/0001_create_events.py repeats the kind limit as a CHECK
constraint (SQL cannot import this file); tests against the migrated table hold the two together.
"""

from __future__ import annotations

import re
import uuid

MAX_EVENTS = 500  # per request
MAX_KIND_CHARS = 100
# The payload as the database prints it back (JSONB's text form), so what a
# reader gets back is bounded too, not only what was sent.
MAX_PAYLOAD_BYTES = 64 * 1024
# The longest a single number may print as. PostgreSQL prints JSONB numbers
# without an exponent: 1e-16383 is sent as 8 characters and read back as 16,385.
MAX_NUMBER_CHARS = 100
# Deeper documents are refused before the database's own recursion limits
# (and Python's) turn them into server errors.
MAX_DEPTH = 64
DEFAULT_KIND = "event"

# A UUID in ASCII hex, with or without its hyphens and braces (Python's
# uuid.UUID alone would also take full-width digits and other Unicode decimals).
_UUID = re.compile(r"\{?[0-9a-fA-F]{8}(-?)[0-9a-fA-F]{4}\1[0-9a-fA-F]{4}\1[0-9a-fA-F]{4}\1[0-9a-fA-F]{12}\}?")
# Placeholders, not identities: a client that always sends one of these would
# see every event after its first counted as a duplicate and lost.
_PLACEHOLDER_IDS = frozenset({uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)})


def kind_problem(value: object) -> str | None:
    """Why `value` cannot be a kind (an event's kind or a Scheduler job name), or None.

    A kind is a label people read in logs and queries: 1 to 100 characters,
    printable (no control characters, line breaks or bidirectional overrides,
    which would let a kind disguise itself), and not only spaces.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KIND_CHARS:
        return f"must be a string of 1 to {MAX_KIND_CHARS} characters"
    if not value.isprintable():
        return "must hold printable characters only (no control characters, line breaks or format characters)"
    if not value.strip():
        return "must not be only spaces"
    return None


def canonical_id(value: object) -> str:
    """A valid event id in its canonical form; ValueError saying why when it is not one."""
    if isinstance(value, str) and _UUID.fullmatch(value) and value.startswith("{") == value.endswith("}"):
        parsed = uuid.UUID(value)
        if parsed in _PLACEHOLDER_IDS:
            raise ValueError(f"must not be the placeholder UUID {parsed}; send a real id or none")
        return str(parsed)
    raise ValueError(f"must be a UUID in hex such as {uuid.UUID(int=0x1234)}")


def random_id() -> str:
    """A new random event id (version 4: random, so inserts spread across CockroachDB's ranges)."""
    return str(uuid.uuid4())

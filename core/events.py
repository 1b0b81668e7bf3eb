"""Request bodies into event records, or a 4xx that says exactly what is wrong.

A body is empty (one event with defaults), one JSON object (one event) or a
JSON array of 1 to 500 of them. An event is

    {"kind": "text of 1 to 100 characters", "payload": {...at most 64 KiB...}, "id": "UUID"}

with every field optional. Everything a database would refuse later (NUL
characters, unpaired surrogates, NaN, absurd nesting) is refused here, so a
rejected request never reaches the database and an accepted one always fits.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from core.logs import shortened
from core.outcomes import RequestRejected
from core.rules import (
    DEFAULT_KIND,
    MAX_DEPTH,
    MAX_EVENTS,
    MAX_NUMBER_CHARS,
    MAX_PAYLOAD_BYTES,
    canonical_id,
    kind_problem,
    random_id,
)
from core.scheduler import SchedulerDelivery
from core.store import EventRecord

# The fields an event may have; each is stored in the events column of its name
# (tests/test_http_api.py reads every one back).
FIELDS = ("id", "kind", "payload")
_KNOWN_FIELDS = frozenset(FIELDS)


def parse_events(body: bytes, delivery: SchedulerDelivery | None = None) -> list[EventRecord]:
    """Validate a request body; return its events with every default filled in.

    For a Cloud Scheduler delivery the kind defaults to the job name, the
    schedule time is recorded, and ids derive from the delivery, so a retried
    delivery produces the same ids. A client-supplied id always wins.
    """
    if not body.strip():
        return [_event({}, "", 0, delivery)]
    document = _decode(body)
    if document is None:
        raise RequestRejected(
            400, "the body is JSON null; send an event object, an array of them, or nothing"
        )
    if isinstance(document, dict):
        return [_event(document, "", 0, delivery)]
    if not isinstance(document, list):
        raise RequestRejected(400, "the body must be a JSON object (one event) or an array of events")
    if not 1 <= len(document) <= MAX_EVENTS:
        raise RequestRejected(400, f"a batch must hold 1 to {MAX_EVENTS} events, got {len(document)}")
    # In a batch, messages name the event: "events[3].kind must be ...".
    return [_event(item, f"events[{i}].", i, delivery) for i, item in enumerate(document)]


def _decode(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestRejected(400, f"the body is not valid UTF-8 (byte {err.start})") from None
    if text.startswith("\ufeff"):
        raise RequestRejected(
            400, "the body starts with a byte order mark (U+FEFF); send the JSON without it"
        )
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as err:
        raise RequestRejected(
            400, f"the body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise RequestRejected(400, f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:  # from the parse hooks, or an integer too long to convert
        raise RequestRejected(400, f"the body is not valid JSON: {err}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> Decimal:
    # Kept as the exact decimal that was sent (a float would turn 0.1000000000000000055
    # into 0.1), but limited to what a double can hold, which most readers of
    # the stored JSON (JavaScript, Python) will parse it into.
    if not math.isfinite(float(literal)):
        # The literal is not quoted back: it is the request's value (and may be 60,000 digits).
        raise ValueError("a number is out of range for a double (beyond about 1.8e308)")
    return Decimal(literal)


# Built once: json.loads and json.dumps with any argument build a new codec on every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_COMPACT_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _event(item: Any, where: str, index: int, delivery: SchedulerDelivery | None) -> EventRecord:
    if not isinstance(item, dict):
        raise RequestRejected(400, f"{where.rstrip('.') or 'the body'} must be a JSON object")
    unknown = item.keys() - _KNOWN_FIELDS
    if unknown:
        raise RequestRejected(
            400,
            f"{where}{shortened(min(unknown), 40)} is not a known field; an event has {', '.join(FIELDS)}",
        )
    return EventRecord(
        id=_id(item.get("id"), where, index, delivery),
        kind=_kind(item.get("kind"), where, delivery),
        payload_json=_payload_json(item.get("payload"), where),
        scheduled_at=delivery.schedule_time if delivery else None,
    )


def _id(value: Any, where: str, index: int, delivery: SchedulerDelivery | None) -> str:
    if value is None:
        return delivery.event_id(index) if delivery else random_id()
    try:
        return canonical_id(value)
    except ValueError as problem:
        raise RequestRejected(400, f"{where}id {problem}") from None


def _kind(value: Any, where: str, delivery: SchedulerDelivery | None) -> str:
    if value is None:
        return delivery.job_name if delivery else DEFAULT_KIND
    problem = kind_problem(value)
    if problem is not None:
        raise RequestRejected(400, f"{where}kind {problem}")
    return value


def _payload_json(value: Any, where: str) -> str:
    """The payload as the compact JSON text that is stored, checked on the way."""
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise RequestRejected(400, f"{where}payload must be a JSON object")
    printed, has_decimal = _check_document(value, f"{where}payload")
    if printed > MAX_PAYLOAD_BYTES:
        raise RequestRejected(
            400,
            f"{where}payload is {printed} bytes as the database prints it back; "
            f"the limit is {MAX_PAYLOAD_BYTES}",
        )
    if has_decimal:
        return _to_json(value)
    # No fractional numbers: the encoder writes the same text as _to_json, in C.
    return _COMPACT_ENCODER.encode(value)


def _to_json(value: Any) -> str:
    """Compact JSON text, with numbers written exactly as they were sent.

    (json.dumps cannot write a Decimal as a number.) Only called on documents
    that passed _check_document, so the recursion depth is bounded.
    """
    if isinstance(value, dict):
        return "{" + ",".join(f"{_to_json(key)}:{_to_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_to_json(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _check_document(document: Any, where: str) -> tuple[int, bool]:
    """Depth, text and number checks over a whole JSON document, without recursion.

    Returns the document's size in bytes as PostgreSQL prints JSONB back
    (`payload::text`): ", " and ": " between items, numbers in full without an
    exponent; and whether it holds a fractional number (a Decimal).
    Paths in messages are built only for the value being refused.
    """
    size = 0
    has_decimal = False
    stack: list[tuple[Any, int, tuple]] = [(document, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            size += _text_size(value, where, path)
        elif isinstance(value, bool) or value is None:
            size += 4 if value in (True, None) else 5
        elif isinstance(value, (int, Decimal)):
            has_decimal = has_decimal or isinstance(value, Decimal)
            length = _printed_length(value)
            if length > MAX_NUMBER_CHARS:
                raise RequestRejected(
                    400,
                    f"{_where(where, path)} is a number the database would print as {length} "
                    f"characters; the limit is {MAX_NUMBER_CHARS} (write it as a string)",
                )
            size += length
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise RequestRejected(400, f"{where} nests deeper than {MAX_DEPTH} levels")
            size += 2 + 2 * max(0, len(value) - 1)  # brackets, and ", " between items
            if isinstance(value, dict):
                for key in value:
                    size += _text_size(key, where, path) + 2  # ": "
                children = [(child, depth + 1, (*path, key)) for key, child in value.items()]
            else:
                children = [(child, depth + 1, (*path, i)) for i, child in enumerate(value)]
            stack.extend(reversed(children))  # popped in document order: the first bad value is named
    return size, has_decimal


def _printed_length(number: int | Decimal) -> int:
    """Characters of PostgreSQL's numeric output: every digit, no exponent."""
    if isinstance(number, int):
        return len(str(number))
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite: NaN and Infinity were refused at parse time
    count = len(digits)
    if exponent >= 0:
        length = count + exponent if digits != (0,) else 1
    elif count > -exponent:
        length = count + 1  # a decimal point inside the digits
    else:
        length = -exponent + 2  # "0." and leading zeros
    return length + (sign if any(digits) else 0)  # numeric has no negative zero: -0.0 prints as 0.0


def _where(where: str, path: tuple) -> str:
    return where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _text_size(value: str, where: str, path: tuple) -> int:
    """Bytes of a checked string as JSON text (quotes and escapes included)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return len(value) + 2  # the usual case, exact without encoding anything
    _check_text(value, _where(where, path))
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _check_text(value: str, where: str) -> None:
    if "\x00" in value:
        raise RequestRejected(
            400, f"{where} contains a NUL character (\\u0000), which the database cannot store"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestRejected(
            400, f"{where} contains an unpaired UTF-16 surrogate, which is not valid text"
        ) from None

"""The 64 KiB payload limit bounds what a reader gets back, not only what was sent.

PostgreSQL prints every digit of a JSONB number (1e-16383 comes back as 16,385
characters) and separates items with ", " and ": ". So a number that would print
longer than 100 characters is refused, naming the field, and the payload's size is
measured as `payload::text` prints it: the database itself is the judge here.
"""

import pytest
from function_harness import load_function

from core.rules import MAX_NUMBER_CHARS, MAX_PAYLOAD_BYTES


@pytest.fixture
def client(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    return client


def post_payload(client, payload_text: str):
    return client.post("/", data='{"kind": "numbers", "payload": ' + payload_text + "}")


def printed_bytes(events_db, payload_text: str) -> int:
    """How many bytes PostgreSQL prints `payload_text` back as, asked of PostgreSQL."""
    return events_db.execute(
        "SELECT octet_length(CAST(CAST(:doc AS text) AS jsonb)::text)", database="app", doc=payload_text
    )[0][0]


def test_payload_of_tiny_numbers_that_print_huge_is_refused_naming_the_first(client, events_db):
    payload = '{"a": [' + ",".join(["1e-16383"] * 7000) + "]}"
    assert len(payload) < MAX_PAYLOAD_BYTES  # small as sent
    reply = post_payload(client, payload)
    assert reply.status_code == 400
    assert reply.get_json()["error"] == (
        "payload.a[0] is a number the database would print as 16385 characters; "
        f"the limit is {MAX_NUMBER_CHARS} (write it as a string)"
    )
    assert events_db.rows() == {}


@pytest.mark.parametrize(
    "number", ["1e-98", "-1e-97", "1e99", "9" * 100, "-" + "9" * 99, "0.5e-97", "12.5e98"]
)
def test_number_printing_exactly_at_the_limit_is_stored_to_the_last_digit(client, events_db, number):
    assert post_payload(client, '{"n": ' + number + "}").status_code == 201
    [[printed, same]] = events_db.execute(
        "SELECT (payload->'n')::text, (payload->>'n')::numeric = CAST(:n AS numeric) FROM events",
        database="app",
        n=number,
    )
    assert len(printed) == MAX_NUMBER_CHARS and same


@pytest.mark.parametrize("number", ["1e-99", "-1e-98", "1e100", "9" * 101, "-" + "9" * 100, "1.0e-98"])
def test_number_printing_one_character_past_the_limit_is_refused(client, events_db, number):
    reply = post_payload(client, '{"n": ' + number + "}")
    assert reply.status_code == 400
    assert reply.get_json()["error"].startswith(
        f"payload.n is a number the database would print as {MAX_NUMBER_CHARS + 1} "
    )
    assert events_db.rows() == {}


SHAPES = {
    "flat": '{"s": "plain"}',
    "numbers": '{"a": [1, 2.50, -0.001, 1E+2, 0e10, -0.0, -0, 1.00e1, true, false, null], "b": {}, "c": []}',
    "escapes and non-ASCII": '{"t": "é\\n\\"\\\\\\t\\u0001\\u007f 😀 \\u2028 /", "z": {"y": [[], {}]}}',
    "repeated key": '{"k": 1, "k": 22}',
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_payload_printing_as_exactly_64_kib_is_stored_and_one_byte_more_refused(client, events_db, shape):
    filler = MAX_PAYLOAD_BYTES - printed_bytes(events_db, shape) - len(', "~": ""')
    at_limit = shape[:-1] + ', "~": "' + "x" * filler + '"}'
    over = shape[:-1] + ', "~": "' + "x" * (filler + 1) + '"}'
    assert printed_bytes(events_db, at_limit) == MAX_PAYLOAD_BYTES

    refused = post_payload(client, over)
    assert refused.status_code == 400
    assert refused.get_json()["error"] == (
        f"payload is {MAX_PAYLOAD_BYTES + 1} bytes as the database "
        f"prints it back; the limit is {MAX_PAYLOAD_BYTES}"
    )
    assert post_payload(client, at_limit).status_code == 201
    assert events_db.execute("SELECT octet_length(payload::text) FROM events", database="app") == [
        [MAX_PAYLOAD_BYTES]
    ]

"""Request bodies become event records, or a 4xx naming the field and the rule."""

import json
import uuid

import pytest

from core.events import MAX_DEPTH, MAX_PAYLOAD_BYTES, parse_events
from core.outcomes import RequestRejected


def rejection(body: bytes) -> str:
    with pytest.raises(RequestRejected) as raised:
        parse_events(body)
    assert raised.value.status == 400
    return raised.value.message


def test_empty_body_is_one_event_with_defaults():
    [record] = parse_events(b"")
    assert record.kind == "event"
    assert record.payload_json == "{}"
    assert uuid.UUID(record.id).version == 4
    assert record.scheduled_at is None


def test_object_body_is_one_event_with_its_fields():
    event_id = str(uuid.uuid4())
    [record] = parse_events(
        json.dumps({"id": event_id, "kind": "signup", "payload": {"user": "ana", "n": 1.5}}).encode()
    )
    assert (record.id, record.kind) == (event_id, "signup")
    assert json.loads(record.payload_json) == {"user": "ana", "n": 1.5}


def test_array_body_is_a_batch_in_order():
    records = parse_events(json.dumps([{"kind": f"k{i}"} for i in range(500)]).encode())
    assert [r.kind for r in records] == [f"k{i}" for i in range(500)]


def test_uuid_is_normalised_to_canonical_form():
    [record] = parse_events(b'{"id": "{12345678-1234-5678-1234-567812345678}"}')
    assert record.id == "12345678-1234-5678-1234-567812345678"


def test_unicode_text_is_kept_exactly():
    [record] = parse_events('{"kind": "café ☕", "payload": {"emoji": "😀"}}'.encode())
    assert record.kind == "café ☕"
    assert json.loads(record.payload_json) == {"emoji": "😀"}


@pytest.mark.parametrize(
    "body, names",
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'\xef\xbb\xbf{"kind": "x"}', "starts with a byte order mark"),
        (b"42", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"[]", "1 to 500 events, got 0"),
        (json.dumps([{}] * 501).encode(), "1 to 500 events, got 501"),
        (b"[1]", "events[0] must be a JSON object"),
        (b'{"kind": ""}', "kind must be a string of 1 to 100"),
        (b'{"kind": 5}', "kind must be a string"),
        (json.dumps({"kind": "k" * 101}).encode(), "kind must be a string of 1 to 100"),
        (b'[{"kind": "ok"}, {"kind": null, "id": "nope"}]', "events[1].id must be a UUID"),
        (b'{"id": 7}', "id must be a UUID"),
        (b'{"payload": [1, 2]}', "payload must be a JSON object"),
        (b'{"payload": "x"}', "payload must be a JSON object"),
        (b'{"kynd": "typo"}', "kynd is not a known field"),
        (b'{"kind": "a\\u0000b"}', "kind must hold printable characters only"),
        (b'{"payload": {"k": "\\u0000"}}', "payload.k contains a NUL character"),
        (b'{"payload": {"\\u0000": 1}}', "payload contains a NUL character"),
        (b'{"payload": {"k": "\\ud800"}}', "unpaired UTF-16 surrogate"),
        (b'{"payload": {"k": NaN}}', "NaN is not a JSON number"),
        (b'{"payload": {"k": Infinity}}', "Infinity is not a JSON number"),
        (b'{"payload": {"k": 1e999}}', "out of range"),
    ],
)
def test_bad_body_is_rejected_with_a_message_naming_the_problem(body, names):
    assert names in rejection(body)


def test_payload_over_64_kib_is_rejected_with_its_size():
    big = json.dumps({"payload": {"x": "a" * MAX_PAYLOAD_BYTES}}).encode()
    assert f"the limit is {MAX_PAYLOAD_BYTES}" in rejection(big)


def test_payload_of_exactly_64_kib_is_accepted():
    # Measured as the database prints it back: {"x": "..."}, with a space after the colon.
    filler = "a" * (MAX_PAYLOAD_BYTES - len('{"x": ""}'))
    [record] = parse_events(json.dumps({"payload": {"x": filler}}).encode())
    assert len(record.payload_json.encode()) == MAX_PAYLOAD_BYTES - 1
    with pytest.raises(RequestRejected):
        parse_events(json.dumps({"payload": {"x": filler + "a"}}).encode())


def test_deep_nesting_is_rejected_not_crashed():
    nested = {"payload": {}}
    cursor = nested["payload"]
    for _ in range(MAX_DEPTH + 1):
        cursor["a"] = {}
        cursor = cursor["a"]
    assert f"deeper than {MAX_DEPTH}" in rejection(json.dumps(nested).encode())


def test_nesting_beyond_the_json_parser_stack_is_rejected_not_crashed():
    assert rejection(b'{"payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")

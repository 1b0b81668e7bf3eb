"""Event validation: request bodies become event records, or a 4xx naming the field and
the rule, and a refused request stores nothing.

- The rules themselves, on parse_events: ids, kinds, payloads, batches.
- Values a careful API refuses: placeholder and non-ASCII ids, kinds that are not
  readable labels, a body of `null`. Each is a 400 naming the field and the rule, and
  stores nothing; a Scheduler job name (which becomes the kind) follows the kind's rule.
  The values next to them that are fine are accepted, so the rules are not too broad.
- Every documented bad input gets a 4xx naming the problem, and stores nothing.
- The 64 KiB payload limit bounds what a reader gets back, not only what was sent.
  PostgreSQL prints every digit of a JSONB number (1e-16383 comes back as 16,385
  characters) and separates items with ", " and ": ". So a number that would print
  longer than 100 characters is refused, naming the field, and the payload's size is
  measured as `payload::text` prints it: the database itself is the judge here.
- The migrated table and core/rules.py agree: the database refuses exactly what validation
  refuses. SQL cannot import Python, so the kind limit is written twice (the CHECK in
  db/migrations); these tests, against the migrated table, keep the two copies one rule.
- Property-based (Hypothesis): whatever arrives, the answer is 2xx or 4xx, a refused
  request stores nothing, and an accepted payload reads back exactly as it was sent.
"""

import decimal
import json
import os
import uuid

import pg8000.exceptions
import pytest
from function_harness import load_function
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.events import MAX_DEPTH, parse_events
from core.outcomes import RequestRejected
from core.rules import MAX_KIND_CHARS, MAX_NUMBER_CHARS, MAX_PAYLOAD_BYTES, kind_problem
from db.migrate import apply_schema


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


SCHEDULE_TIME = "2026-11-25T09:00:00Z"

REFUSED_IDS = {
    "nil UUID": "00000000-0000-0000-0000-000000000000",
    "max UUID": "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "nil UUID without hyphens": "0" * 32,
    "full-width digits": "１" * 32,
    "Arabic-Indic digits": "٠١٢٣٤٥٦٧" * 4,
    "urn prefix": "urn:uuid:12345678-1234-5678-1234-567812345678",
    "unbalanced brace": "{12345678-1234-5678-1234-567812345678",
}
REFUSED_KINDS = {
    "bell": "alert\x07",
    "line break": "first\nsecond",
    "carriage return": "line\r",
    "right-to-left override": "invoice\u202egpj.exe",
    "left-to-right isolate": "\u2066label\u2069",
    "zero-width space": "a\u200bb",
    "C1 control": "\x85next",
    "only spaces": "   ",
    "only a tab": "\t",
    "only an ideographic space": "\u3000",
    "empty": "",
}
ACCEPTED_KINDS = ["signup", "café ☕", "日本語のイベント", "a b", "x" * 100]


@pytest.fixture
def client(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    return client


def refusal(reply, events_db) -> str:
    assert reply.status_code == 400
    assert events_db.rows() == {}
    return reply.get_json()["error"]


@pytest.mark.parametrize("event_id", REFUSED_IDS.values(), ids=REFUSED_IDS.keys())
def test_id_that_is_a_placeholder_or_not_ascii_hex_is_refused(client, events_db, event_id):
    message = refusal(client.post("/", json=[{"kind": "ok"}, {"id": event_id}]), events_db)
    assert message.startswith("events[1].id must")


def test_placeholder_id_message_says_to_send_a_real_id_or_none(client, events_db):
    message = refusal(client.post("/", json={"id": str(uuid.UUID(int=0))}), events_db)
    assert "placeholder" in message and "send a real id or none" in message


@pytest.mark.parametrize("kind", REFUSED_KINDS.values(), ids=REFUSED_KINDS.keys())
def test_kind_that_is_not_a_readable_label_is_refused(client, events_db, kind):
    message = refusal(client.post("/", json=[{"kind": "ok"}, {"kind": kind}]), events_db)
    assert message.startswith("events[1].kind must")


@pytest.mark.parametrize(
    "job_name", ["nightly\x85", "\x9bjob", "   "], ids=["C1 control", "CSI", "only spaces"]
)
def test_scheduler_job_name_follows_the_kind_rule(client, events_db, job_name):
    # Header bytes are read as UTF-8; the test client sends each character as one latin-1 byte.
    sent = job_name.encode().decode("latin-1")
    headers = {"X-CloudScheduler-JobName": sent, "X-CloudScheduler-ScheduleTime": SCHEDULE_TIME}
    message = refusal(client.post("/", data=b"", headers=headers), events_db)
    assert message.startswith("X-CloudScheduler-JobName must")


@pytest.mark.parametrize("body", [b"null", b" null\n"])
def test_body_of_json_null_is_refused(client, events_db, body):
    message = refusal(client.post("/", data=body), events_db)
    assert "null" in message


def test_null_event_in_a_batch_is_refused(client, events_db):
    assert "events[1] must be a JSON object" in refusal(client.post("/", data=b"[{}, null]"), events_db)


def test_readable_kinds_and_ids_in_any_hex_form_are_accepted(client, events_db):
    event_id = uuid.uuid4()
    events = [{"kind": kind} for kind in ACCEPTED_KINDS]
    events += [{"id": str(event_id).upper()}, {"id": "{" + str(uuid.uuid4()) + "}"}, {"id": uuid.uuid4().hex}]
    reply = client.post("/", json=events)
    assert reply.status_code == 201, reply.get_json()
    stored = events_db.rows()
    assert set(ACCEPTED_KINDS) <= {row["kind"] for row in stored.values()}
    assert str(event_id) in stored
    assert len(stored) == len(events)


GOOD = {"kind": "fine", "payload": {"ok": True}}
SCHEDULER = {"X-CloudScheduler-JobName": "job", "X-CloudScheduler-ScheduleTime": "2026-11-25T09:00:00Z"}

BAD_REQUESTS = [
    # (body, headers, status, words in the message)
    (b"{not json", {}, 400, "not valid JSON"),
    (b"\xc3\x28", {}, 400, "not valid UTF-8"),
    (b"true", {}, 400, "must be a JSON object"),
    (b"[]", {}, 400, "1 to 500 events"),
    (json.dumps([GOOD] * 501).encode(), {}, 400, "got 501"),
    (json.dumps([GOOD, {"kind": ""}]).encode(), {}, 400, "events[1].kind"),
    (json.dumps([GOOD, {"id": "123"}]).encode(), {}, 400, "events[1].id must be a UUID"),
    (json.dumps([GOOD, {"payload": []}]).encode(), {}, 400, "events[1].payload must be a JSON object"),
    (json.dumps([GOOD, {"color": "red"}]).encode(), {}, 400, "color is not a known field"),
    (json.dumps([GOOD, {"kind": "x" * 101}]).encode(), {}, 400, "1 to 100 characters"),
    (json.dumps([GOOD, {"payload": {"k": "v" * 70000}}]).encode(), {}, 400, "the limit is 65536"),
    (json.dumps([GOOD, {"payload": {"k": "nul\u0000"}}]).encode(), {}, 400, "NUL character"),
    (b'[{"kind": "ok"}, {"payload": {"k": "\\udc00"}}]', {}, 400, "surrogate"),
    (b'[{"kind": "ok"}, {"payload": {"k": NaN}}]', {}, 400, "NaN"),
    (
        b"{}",
        {"X-CloudScheduler-ScheduleTime": "2026-11-25T09:00:00Z"},
        400,
        "without X-CloudScheduler-JobName",
    ),
    (b"{}", {**SCHEDULER, "X-CloudScheduler-ScheduleTime": "now"}, 400, "RFC 3339"),
    (b" " * (1024 * 1024 + 1), {}, 413, "limit"),
]


@pytest.mark.parametrize("body, headers, status, words", BAD_REQUESTS)
def test_bad_request_is_refused_with_a_message_and_nothing_is_stored(
    events_db, monkeypatch, body, headers, status, words
):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    reply = client.post("/", data=body, headers=headers)
    assert reply.status_code == status
    assert words in reply.get_json()["error"]
    assert events_db.rows() == {}


def test_rejected_request_does_not_touch_the_database(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    events_db.reset_connection_log()
    assert client.post("/", data=b"{oops").status_code == 400
    assert events_db.connections_opened() == 0


def test_rejection_is_logged_as_a_warning_with_the_reason(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    client.post("/", data=b'{"kind": 3}')
    warnings = [
        json.loads(line)
        for line in capfd.readouterr().out.splitlines()
        if line.startswith("{") and '"WARNING"' in line
    ]
    assert any("kind must be a string" in entry["message"] for entry in warnings)


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


@pytest.mark.parametrize("length", [1, MAX_KIND_CHARS])
def test_the_longest_and_shortest_valid_kinds_are_stored(events_db, length):
    assert kind_problem("k" * length) is None
    events_db.execute("INSERT INTO events (kind) VALUES (:kind)", kind="k" * length)


@pytest.mark.parametrize("length", [0, MAX_KIND_CHARS + 1])
def test_a_kind_the_validator_refuses_the_database_refuses_too(events_db, length):
    assert kind_problem("k" * length) is not None
    with pytest.raises(pg8000.exceptions.DatabaseError) as refused:
        events_db.execute("INSERT INTO events (kind) VALUES (:kind)", kind="k" * length)
    assert refused.value.args[0]["C"] == "23514"  # check_violation


settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Every code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=30,
)
event_fields = st.fixed_dictionaries(
    {},
    optional={
        "kind": json_values | st.text(min_size=1, max_size=100),
        "payload": json_values | st.dictionaries(any_text, json_values, max_size=6),
    },
)
header_value = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)


@pytest.fixture
def instance(events_db, monkeypatch):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    return client


def count_rows(events_db) -> int:
    return events_db.execute("SELECT count(*) FROM events", database="app")[0][0]


def check_reply(reply, events_db, before: int) -> dict:
    assert reply.status_code < 500, reply.get_data(as_text=True)
    body = reply.get_json()
    if reply.status_code >= 400:
        assert body["error"]
        assert count_rows(events_db) == before
    else:
        assert count_rows(events_db) == before + body["inserted"]
    return body


@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_get_2xx_or_4xx(instance, events_db, body):
    before = count_rows(events_db)
    check_reply(instance.post("/", data=body, content_type="application/octet-stream"), events_db, before)


@given(document=json_values)
def test_arbitrary_json_gets_2xx_or_4xx(instance, events_db, document):
    before = count_rows(events_db)
    check_reply(instance.post("/", data=json.dumps(document)), events_db, before)


@given(events=st.lists(event_fields, min_size=1, max_size=8))
def test_accepted_events_read_back_exactly_as_sent(instance, events_db, events):
    sent = [{**fields, "id": str(uuid.uuid4())} for fields in events]
    before = count_rows(events_db)
    reply = instance.post("/", data=json.dumps(sent))
    body = check_reply(reply, events_db, before)
    if reply.status_code >= 400:
        return
    assert body["ids"] == [event["id"] for event in sent]
    stored = {
        str(row_id): (kind, exact_json(payload))
        for row_id, kind, payload in events_db.execute(
            "SELECT id, kind, payload::text FROM events WHERE id = ANY(CAST(:ids AS UUID[]))",
            database="app",
            ids=body["ids"],
        )
    }
    for event in sent:
        # A null field means "absent": the default applies.
        expected_payload = exact_json(json.dumps(event.get("payload") or {}))
        assert stored[event["id"]] == (event.get("kind") or "event", expected_payload)


def exact_json(text: str):
    """Parse JSON with every number as a Decimal: equal means the same decimal value."""
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


@given(depth=st.integers(min_value=1, max_value=5000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_or_stored_never_a_server_error(instance, events_db, depth, opener):
    closer = "]" if opener == "[" else "}"
    body = '{"payload": {"deep": ' + opener * depth + "1" + closer * depth + "}}"
    before = count_rows(events_db)
    check_reply(instance.post("/", data=body), events_db, before)


@settings(max_examples=20)
@given(text=st.text(min_size=0, max_size=20).map(lambda t: t * 5000))
def test_huge_strings_are_refused_or_stored_never_a_server_error(instance, events_db, text):
    before = count_rows(events_db)
    check_reply(
        instance.post("/", data=json.dumps({"kind": "big", "payload": {"s": text}})), events_db, before
    )


@given(
    job=st.lists(header_value, max_size=3),
    schedule=st.lists(header_value | st.datetimes().map(lambda d: d.isoformat() + "Z"), max_size=3),
    extra=st.dictionaries(
        st.sampled_from(
            ["Content-Type", "Content-Encoding", "X-CloudScheduler", "Transfer-Encoding-Hint", "Accept"]
        ),
        header_value,
        max_size=3,
    ),
)
def test_odd_duplicated_and_forged_headers_get_2xx_or_4xx(instance, events_db, job, schedule, extra):
    headers = [("X-CloudScheduler-JobName", value) for value in job]
    headers += [("X-CloudScheduler-ScheduleTime", value) for value in schedule]
    headers += list(extra.items())
    before = count_rows(events_db)
    check_reply(instance.post("/", data=b"", headers=headers), events_db, before)


# A value no message may quote back: in text, and as the digits of a number. (A field's
# name, `{"kynd": 1}`, is named: it is the field, not a value.)
MARKER = "Zq7xMarkerValue"
DIGITS = "7319046285117"
RULE_BREAKERS = [
    {"kind": MARKER * 10},
    {"kind": MARKER + "\n"},
    {"kind": 5, "payload": {"m": MARKER}},
    {"id": MARKER},
    {"payload": MARKER},
    {"payload": {"text": MARKER + "\u0000"}},
    {"payload": {"n": float("inf")}},
    [MARKER],
    MARKER,
]
RAW_RULE_BREAKERS = [
    b'{"payload": {"n": ' + DIGITS.encode() + b"e999}}",
    b'{"payload": {"n": ' + DIGITS.encode() * 10 + b"}}",
    b'{"payload": {"n": ' + DIGITS.encode() * 400 + b"}}",
    b'{"kind": "' + MARKER.encode() + b'\xff"}',
    b'{"kind": "' + MARKER.encode() + b'"',
]
# Constraints whose failure PostgreSQL describes by quoting the value: the function maps
# each SQLSTATE (class 22, 23514, 23505) to an answer that names the rule instead.
CONSTRAINTS = {
    "22P02": ("CHECK ((payload->>'amount')::numeric >= 0)", {"amount": MARKER}),
    "22003": ("CHECK ((payload->>'n')::int >= 0)", {"n": DIGITS}),
    "22007": ("CHECK ((payload->>'at')::timestamptz > '2000-01-01')", {"at": MARKER}),
    "23514": ("CHECK (payload->>'tag' IS DISTINCT FROM 'Zq7xMarkerValue')", {"tag": MARKER}),
}


def test_no_refused_value_reaches_a_response_or_a_log_line(fresh_database, events_server, monkeypatch, capfd):
    apply_schema(fresh_database)
    database = fresh_database.rsplit("/", 1)[1]
    for code, (check, _) in CONSTRAINTS.items():
        events_server.execute(
            f'ALTER TABLE events ADD CONSTRAINT "c{code}" {check} NOT VALID', database=database
        )
    events_server.execute("CREATE UNIQUE INDEX one_per_u ON events ((payload->>'u'))", database=database)
    _, client = load_function(monkeypatch, DATABASE_URL=fresh_database)
    bodies = [json.dumps(body).encode() for body in RULE_BREAKERS] + RAW_RULE_BREAKERS
    bodies += [json.dumps({"payload": payload}).encode() for _, payload in CONSTRAINTS.values()]
    assert client.post("/", data=json.dumps({"payload": {"u": MARKER}})).status_code == 201
    bodies.append(json.dumps({"payload": {"u": MARKER}}).encode())
    answers = [client.post("/", data=body) for body in bodies]
    headers = [
        {"X-CloudScheduler-JobName": MARKER * 10, "X-CloudScheduler-ScheduleTime": "2026-11-25T09:00:00Z"},
        {"X-CloudScheduler-JobName": "job", "X-CloudScheduler-ScheduleTime": MARKER},
        {"X-CloudScheduler-ScheduleTime": MARKER},
        {"Content-Encoding": MARKER},
        {"Transfer-Encoding": MARKER},
    ]
    answers += [client.post("/", data=b"{}", headers=header) for header in headers]
    statuses = [answer.status_code for answer in answers]
    # 23505 from an index that is not the primary key is the table's drift: a 503.
    duplicate = len(bodies) - 1
    assert statuses[duplicate] == 503
    assert all(400 <= status < 500 for i, status in enumerate(statuses) if i != duplicate), statuses
    seen = [answer.get_data(as_text=True) for answer in answers] + [capfd.readouterr().out]
    for code in CONSTRAINTS:
        assert any(f"SQLSTATE {code}" in text for text in seen), code
    for text in seen:
        assert MARKER not in text and DIGITS not in text, text[:500]
    assert "Failing row" not in seen[-1] and "invalid input syntax" not in seen[-1]

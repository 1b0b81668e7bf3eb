"""An event sent without an id gets a random version 4 UUID, written as str(uuid.UUID) writes it."""

import uuid

from core.events import parse_events
from core.rules import canonical_id, random_id


def test_each_generated_id_is_a_canonical_version_4_uuid():
    ids = [random_id() for _ in range(2000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text == canonical_id(text)
    assert len(set(ids)) == len(ids)


def test_every_random_bit_varies():
    # 122 of the 128 bits are random; the 6 version and variant bits are fixed.
    values = [uuid.UUID(random_id()).int for _ in range(2000)]
    ones = zeros = 0
    for value in values:
        ones |= value
        zeros |= ~value
    fixed_bits = 0xF << 76 | 0x3 << 62
    random_bits = (2**128 - 1) & ~fixed_bits
    assert ones & random_bits == random_bits and zeros & random_bits == random_bits
    assert all(value & fixed_bits == (0x4 << 76 | 0x2 << 62) for value in values)


def test_events_without_an_id_get_distinct_generated_ids():
    records = parse_events(b'[{"kind": "a"}, {"kind": "b"}, {"kind": "c"}]')
    assert len({record.id for record in records}) == 3
    assert all(uuid.UUID(record.id).version == 4 for record in records)

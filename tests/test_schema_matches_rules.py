"""db/schema.sql and core/rules.py agree: the database refuses exactly what validation refuses.

SQL cannot import Python, so the kind limit is written twice; this test is
what keeps the two copies one rule.
"""

import re

import pg8000.exceptions
import pytest

from core.rules import MAX_KIND_CHARS, kind_problem
from db.migrate import SCHEMA


def test_the_schema_check_names_the_validators_kind_limit():
    check = re.search(r"CHECK \(char_length\(kind\) BETWEEN (\d+) AND (\d+)\)", SCHEMA.read_text())
    assert check is not None, "the kind CHECK constraint is missing from db/schema.sql"
    assert (int(check.group(1)), int(check.group(2))) == (1, MAX_KIND_CHARS)


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

"""Exactly when a 503 says `"outcome": "unknown"`: the INSERT had been sent and then the
connection ended without the server's error, or CockroachDB reported an ambiguous
result (40003, XXUUU). A server error after the INSERT was sent means the server
rolled it back; anything before it was sent stored nothing. (tests/
test_lock_wait_ends_on_the_server.py and test_load_with_faults.py produce the
PostgreSQL cases for real; CockroachDB's codes are built here as pg8000 raises them.)"""

import pg8000.dbapi
import pytest
import sqlalchemy.exc

from core.outcomes import outcome_for_error
from db.faults import translate


def server_error(code: str, message: str) -> sqlalchemy.exc.DatabaseError:
    return sqlalchemy.exc.DatabaseError(
        "INSERT", None, pg8000.dbapi.DatabaseError({"S": "ERROR", "C": code, "M": message})
    )


def lost_connection() -> sqlalchemy.exc.InterfaceError:
    return sqlalchemy.exc.InterfaceError("INSERT", None, pg8000.dbapi.InterfaceError("network error"))


@pytest.mark.parametrize(
    "error",
    [
        lost_connection(),
        server_error("40003", "result is ambiguous"),
        server_error("XXUUU", "result is ambiguous (error=rpc error)"),
    ],
    ids=["connection lost", "40003", "XXUUU"],
)
def test_after_the_insert_was_sent_these_leave_the_outcome_unknown(error):
    outcome = outcome_for_error(translate(error, statement_sent=True))
    assert (outcome.status, outcome.body.get("outcome")) == (503, "unknown")
    assert outcome.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    "error, sent",
    [
        (server_error("57014", "canceling statement due to statement timeout"), True),
        (server_error("40001", "restart transaction"), True),
        (lost_connection(), False),
        (server_error("40003", "result is ambiguous"), False),
    ],
    ids=["statement timeout", "serialization failure", "lost before sending", "ambiguous before sending"],
)
def test_a_server_error_or_a_failure_before_sending_is_a_plain_503(error, sent):
    outcome = outcome_for_error(translate(error, statement_sent=sent))
    assert outcome.status == 503 and "outcome" not in outcome.body

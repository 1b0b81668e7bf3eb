"""devtools.dialect_compliance fails on every failure or error that expected.txt does not
list with its reason, whichever server version or parameters the test ran with."""

from __future__ import annotations

import pytest

from devtools.dialect_compliance.__main__ import Run, expected_non_passes, unexpected_non_passes

LISTED = "test_suite.ComputedColumnTest_postgresql+pg8000_15_18::test_select_all"


def run(outcomes: dict[str, str]) -> Run:
    return Run("postgresql+pg8000", outcomes, summary="", seconds=0.0, exit_code=1)


def test_a_failure_not_listed_is_unexpected_and_a_listed_one_is_not(tmp_path):
    listed = tmp_path / "expected.txt"
    listed.write_text("# why each fails\nComputedColumnTest::test_select_all a reason\n")
    expected = expected_non_passes(listed)
    outcomes = {
        LISTED: "error",
        LISTED.replace("15_18", "18_1"): "error",  # another server version: still the listed test
        "test_suite.ExceptionTest_postgresql+pg8000_15_18::test_integrity_error[x-_exclusions_0]": "failed",
        "test_suite.TimeTZTest_postgresql+pg8000_15_18::test_round_trip": "skipped",
    }
    assert unexpected_non_passes([run(outcomes)], expected) == {
        "test_suite.ExceptionTest_postgresql+pg8000_15_18::test_integrity_error[x-_exclusions_0]": {
            "postgresql+pg8000": "failed"
        }
    }


def test_the_project_list_gives_every_test_a_reason():
    assert all(expected_non_passes().values())


def test_a_test_listed_without_a_reason_is_refused(tmp_path):
    listed = tmp_path / "expected.txt"
    listed.write_text("# a comment\n\nComputedColumnTest::test_select_all\n")
    with pytest.raises(SystemExit, match="expected.txt:3: ComputedColumnTest::test_select_all"):
        expected_non_passes(listed)

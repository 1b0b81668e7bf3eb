"""docs/benchmark.md is generated from the benchmark's JSON: the run, the targets and every
table come from the JSON, and a section the run did not measure is left out."""

from __future__ import annotations

import json
import pathlib

import pytest

from devtools import benchmark_report
from devtools.benchmark_report import markdown


def cell(share: float, mode: str, median: float, hello: float, floor: float) -> dict:
    return {
        "share": share,
        "mode": mode,
        "median_ms": median,
        "runs_ms": [median - 10, median, median + 20],
        "cpu_ms": median / 10,
        "warm_median_ms": 2.5,
        "phases": {},
        "ratio_to_hello": round(median / hello, 2),
        "ratio_to_floor": round(median / floor, 2),
    }


@pytest.fixture
def results() -> dict:
    return {
        "machine": {
            "cpu": "Test CPU @ 1 GHz",
            "cores": 2,
            "architecture": "x86_64",
            "system": "Linux 6.1",
            "python": "3.13.0",
            "postgresql": "15.18",
            "libraries": {"SQLAlchemy": "2.0.58", "pg8000": "1.31.6"},
            "cpu_quota": "cgroup v1 CPU quota",
        },
        "command": "python -m devtools.benchmark --json docs/benchmark.json",
        "date": "2026-12-07 03:00 UTC",
        "seconds": 712.4,
        "round_trips": {
            "invocations": [
                {
                    "invocation": "first invocation of the instance",
                    "events": 1,
                    "round_trips": 12,
                    "statements": 5,
                },
                {"invocation": "warm, batch of 1", "events": 1, "round_trips": 2, "statements": 2},
                {"invocation": "warm, batch of 500", "events": 500, "round_trips": 2, "statements": 2},
            ],
            "patterns": {"floor": 2, "cockroach_sample": 3},
        },
        "warm_latency_same_region": {
            "round_trip_ms": 1.0,
            "patterns": {
                "floor": {"median_ms": 2.0, "p99_ms": 3.0, "samples": 600, "ratio_to_floor": 1.0},
                "function": {"median_ms": 2.4, "p99_ms": 3.5, "samples": 600, "ratio_to_floor": 1.2},
                "cockroach_sample": {"median_ms": 3.0, "p99_ms": 4.0, "samples": 600, "ratio_to_floor": 1.5},
            },
        },
        "cold_start": {
            "quota": True,
            "quota_unavailable_because": None,
            "runs": 3,
            "shares": [0.167],
            "probe_share": 0.167,
            "modes": ["hello", "floor", "file"],
            "cells": {
                "0.167/hello": cell(0.167, "hello", 1000, 1000, 2000),
                "0.167/floor": cell(0.167, "floor", 2000, 1000, 2000),
                "0.167/file": cell(0.167, "file", 2400, 1000, 2000),
            },
        },
        "memory": {
            "worker_rss_mib": {"first request": 50.5, "sizes 1..500, pass 1": 52.0},
            "instance_pss_mib": 60.1,
            "limit_mib": 160,
        },
    }


def test_the_run_is_described_by_its_command_date_and_machine(results: dict):
    page = markdown(results)

    assert "- Command: `python -m devtools.benchmark --json docs/benchmark.json` (712 s)" in page
    assert "- Date: 2026-12-07 03:00 UTC" in page
    assert "- Machine: Test CPU @ 1 GHz, 2 cores (x86_64), Linux 6.1" in page
    assert "- Python 3.13.0; PostgreSQL 15.18; SQLAlchemy 2.0.58, pg8000 1.31.6" in page


def test_each_table_is_built_from_its_section(results: dict):
    lines = markdown(results).splitlines()

    assert "| warm, batch of 500 | 2 | 2 |" in lines
    assert (
        "| **the function** (main.handler: Flask request in, response out) | 2 | 2.4 | 3.5 | 1.2 |" in lines
    )
    assert "| CockroachDB's sample: pool of 1, BEGIN / INSERT / COMMIT | 3 | 3.0 | 4.0 | 1.5 |" in lines
    assert '| hello world (functions-framework, returns "ok") | 1,000 |' in lines
    assert "| this design's floor (devtools/bench_floor.py) | 2,000 (2.0×) |" in lines
    assert (
        "| **the function, `DATABASE_URL_FILE`** (a secret mounted as a file; the default) | 2,400 (2.4×, 1.2×) |"
        in lines
    )
    assert "| after the sizes 1..500, pass 1 | 52.0 |" in lines


def test_the_targets_table_says_which_are_met(results: dict):
    lines = markdown(results).splitlines()

    targets = lines[lines.index("| target | measured | met |") + 2 :]
    assert targets[0] == (
        "| 2 network round trips per warm invocation, every batch size "
        "| 2 over 2 warm invocations (batches of 1 to 500) | yes |"
    )
    assert targets[1] == (
        "| warm, same-region round trip: within 1.25 × the 2-round-trip floor "
        "| 1.2 × (CockroachDB's sample pattern 1.5 ×) | yes |"
    )
    assert targets[2] == (
        "| cold start at 0.167 CPU (`DATABASE_URL_FILE`): within 1.15 × this design's floor "
        "| 1.2 × the floor, 2.4 × hello world (the floor 2.0 ×) | **no** |"
    )
    assert targets[3] == (
        "| one worker's RSS bounded (under 160 MiB after every batch size, twice) | at most 52.0 MiB | yes |"
    )


def test_a_section_the_run_did_not_measure_is_left_out(results: dict):
    del results["cold_start"], results["memory"]

    page = markdown(results)

    assert "## Cold start" not in page and "## Memory" not in page
    assert "cold start at 0.167" not in page


def test_the_page_holds_no_figure_that_is_not_in_the_json(results: dict):
    """The static text names no run: the same JSON gives the same page, and the text
    around the tables says nothing about 'this run' or a previous one."""
    page = markdown(results)

    assert page == markdown(json.loads(json.dumps(results)))
    for phrase in ("this run", "previous run", "last run"):
        assert phrase not in page.lower()


def test_the_command_line_writes_the_page_from_a_json_file(
    results: dict, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
):
    source = tmp_path / "benchmark.json"
    source.write_text(json.dumps(results))

    assert benchmark_report.main([str(source)]) == 0

    assert capsys.readouterr().out == markdown(results)

"""Run SQLAlchemy's dialect compliance suite for the stock pg8000 dialect and this project's,
on one PostgreSQL server this command starts, and print the two results side by side.

usage: python -m devtools.dialect_compliance [--output-dir DIR] [--only DRIVERNAME] [-- PYTEST_ARGS...]

Each dialect gets a fresh database on the same server, so what one run leaves
behind cannot change the other's result. Exit status 0 when every test has the
same outcome under both dialects and every failure or error is listed, with its
reason, in expected.txt; 1 when an outcome differs or a failure is not listed
(both are printed); 2 when a run could not complete. The logs and JUnit XML of each run stay in the output
folder (default .local/dialect-compliance) for a closer look.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import pg8000
import sqlalchemy

from db.dialect import DRIVERNAME
from devtools.postgres import PostgresServer

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITE_DIR = pathlib.Path(__file__).resolve().parent
STOCK = "postgresql+pg8000"
DIALECTS = (STOCK, DRIVERNAME)
OUTCOMES = ("passed", "failed", "error", "skipped")
# Skips are the requirements' business (requirements.py says why each feature is closed).
NON_PASSES = ("failed", "error")
EXPECTED = SUITE_DIR / "expected.txt"


@dataclasses.dataclass
class Run:
    """One dialect's run: each test's outcome, pytest's own summary line, and its duration."""

    drivername: str
    outcomes: dict[str, str]
    summary: str
    seconds: float
    exit_code: int

    def count(self, outcome: str) -> int:
        return sum(1 for found in self.outcomes.values() if found == outcome)


def main(argv: list[str] | None = None) -> int:
    args = _parse_arguments(sys.argv[1:] if argv is None else argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    dialects = [args.only] if args.only else list(DIALECTS)
    expected = expected_non_passes()  # read first: a malformed list stops before minutes of running
    with PostgresServer() as server:
        versions = _versions(server)
        print(f"PostgreSQL {versions['postgresql']} on port {server.port}; output in {args.output_dir}")
        runs = [_run_suite(server, drivername, args.output_dir, args.pytest_args) for drivername in dialects]
    differences = _differences(runs)
    unexpected = unexpected_non_passes(runs, expected)
    print(_report(runs, differences))
    print(_expectations_report(runs, expected, unexpected))
    _write_json(args.output_dir / "results.json", runs, differences, versions, unexpected)
    if any(run.exit_code not in (0, 1) or not run.outcomes for run in runs):
        return 2  # pytest was interrupted or collected nothing: that run measured nothing
    return 1 if differences or unexpected else 0


def expected_non_passes(path: pathlib.Path = EXPECTED) -> dict[str, str]:
    """CLASS::TEST -> why it fails, from `path`: one `CLASS::TEST REASON` a line, `#` comments."""
    expected = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        test_id, _, reason = line.strip().partition(" ")
        if not test_id or test_id.startswith("#"):
            continue
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: {test_id} is listed without a reason")
        expected[test_id] = reason.strip()
    return expected


def unexpected_non_passes(runs: list[Run], expected: dict[str, str]) -> dict[str, dict[str, str]]:
    """Test id -> {drivername: outcome} for each failure or error that `expected` does not list."""
    found: dict[str, dict[str, str]] = {}
    for run in runs:
        for test_id, outcome in sorted(run.outcomes.items()):
            if outcome in NON_PASSES and suite_test(test_id) not in expected:
                found.setdefault(test_id, {})[run.drivername] = outcome
    return found


def suite_test(test_id: str) -> str:
    """CLASS::TEST of a JUnit test id: without the module, the `_DIALECT+DRIVER_VERSION`
    SQLAlchemy appends to each class name, and the parameters."""
    classname, _, name = test_id.partition("::")
    cls = re.sub(r"_[a-z0-9]+\+\w+$", "", classname.rsplit(".", 1)[-1])
    return f"{cls}::{name.split('[', 1)[0]}"


def _expectations_report(
    runs: list[Run], expected: dict[str, str], unexpected: dict[str, dict[str, str]]
) -> str:
    lines = [f"{len(unexpected)} failure(s) not listed in {EXPECTED.name}" + (":" if unexpected else ".")]
    for test_id, outcomes in unexpected.items():
        lines.append(f"  {test_id}: " + ", ".join(f"{name} {outcome}" for name, outcome in outcomes.items()))
    # Listed, yet passed wherever it ran: the list is out of date.
    ran = {suite_test(test_id): outcome for run in runs for test_id, outcome in run.outcomes.items()}
    for test in expected:
        if ran.get(test) == "passed":
            lines.append(f"  listed in {EXPECTED.name} but passed: {test}")
    return "\n".join(lines)


def _parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.dialect_compliance",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--output-dir",
        type=pathlib.Path,
        default=PROJECT_ROOT / ".local" / "dialect-compliance",
        help="where each run's log and JUnit XML, and results.json, are written",
    )
    parser.add_argument("--only", choices=DIALECTS, help="run the suite for this dialect only")
    parser.add_argument(
        "pytest_args", nargs="*", help="more pytest arguments, after --, e.g. -- -k ExceptionTest"
    )
    return parser.parse_args(argv)


def _versions(server: PostgresServer) -> dict[str, str]:
    return {
        "postgresql": server.version,
        "sqlalchemy": sqlalchemy.__version__,
        "pg8000": pg8000.__version__,
        "python": sys.version.split()[0],
    }


def _run_suite(server: PostgresServer, drivername: str, output_dir: pathlib.Path, extra: list[str]) -> Run:
    """The suite for one dialect, in a subprocess, against a database of its own."""
    name = drivername.replace("+", "_")
    database = _fresh_database(server, name)
    dburi = server.dsn(database=database).replace("postgresql://", f"{drivername}://", 1)
    junit = output_dir / f"{name}.xml"
    junit.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(SUITE_DIR / "setup.cfg"),
        "--rootdir",
        str(SUITE_DIR),
        f"--junitxml={junit}",
        f"--dburi={dburi}",
        *extra,
        str(SUITE_DIR / "test_suite.py"),
    ]
    print(f"running the suite for {drivername} ...", flush=True)
    started = time.monotonic()
    with open(output_dir / f"{name}.log", "w") as log:
        # From the project root, so `db` and `devtools` import as they do everywhere else.
        exit_code = subprocess.run(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - started
    outcomes = _read_junit(junit) if junit.exists() else {}
    return Run(drivername, outcomes, _summary_line(output_dir / f"{name}.log"), seconds, exit_code)


def _fresh_database(server: PostgresServer, name: str) -> str:
    """A new database owned by the application role, with the two schemas the suite expects."""
    database = f"compliance_{name}"
    server.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    server.execute(f"CREATE DATABASE {database} OWNER app")
    for schema in ("test_schema", "test_schema_2"):
        server.execute(f"CREATE SCHEMA {schema} AUTHORIZATION app", database=database)
    return database


def _read_junit(path: pathlib.Path) -> dict[str, str]:
    """Test id -> outcome; an error anywhere (setup, teardown) counts as the test's error."""
    outcomes = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        children = {child.tag for child in case}
        if "failure" in children:
            outcome = "failed"
        elif "error" in children:
            outcome = "error"
        elif "skipped" in children:
            outcome = "skipped"
        else:
            outcome = "passed"
        outcomes[test_id] = outcome
    return outcomes


def _summary_line(log_path: pathlib.Path) -> str:
    """pytest's last line, e.g. "===== 1562 passed, 300 skipped in 180.00s =====", as it printed it."""
    lines = [line.strip("= \n") for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _differences(runs: list[Run]) -> dict[str, dict[str, str]]:
    """Test id -> {drivername: outcome} for each test whose outcome is not the same in every run."""
    if len(runs) < 2:
        return {}
    test_ids = sorted(set().union(*(run.outcomes for run in runs)))
    found = {}
    for test_id in test_ids:
        outcomes = {run.drivername: run.outcomes.get(test_id, "absent") for run in runs}
        if len(set(outcomes.values())) > 1:
            found[test_id] = outcomes
    return found


def _report(runs: list[Run], differences: dict[str, dict[str, str]]) -> str:
    width = max(len(run.drivername) for run in runs) + 2
    lines = ["", f"{'':<10}" + "".join(f"{run.drivername:>{width}}" for run in runs)]
    for outcome in OUTCOMES:
        lines.append(f"{outcome:<10}" + "".join(f"{run.count(outcome):>{width}}" for run in runs))
    lines.append(f"{'seconds':<10}" + "".join(f"{run.seconds:>{width}.0f}" for run in runs))
    lines.append("")
    lines += [f"{run.drivername}: {run.summary}" for run in runs]
    if len(runs) > 1:
        lines.append("")
        lines.append(f"{len(differences)} test(s) with different outcomes" + (":" if differences else "."))
        for test_id, outcomes in differences.items():
            lines.append(
                f"  {test_id}: " + ", ".join(f"{name} {outcome}" for name, outcome in outcomes.items())
            )
    return "\n".join(lines)


def _write_json(
    path: pathlib.Path,
    runs: list[Run],
    differences: dict[str, dict[str, str]],
    versions: dict[str, str],
    unexpected: dict[str, dict[str, str]],
) -> None:
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "runs": {
            run.drivername: {
                **{outcome: run.count(outcome) for outcome in OUTCOMES},
                "seconds": round(run.seconds, 1),
                "pytest_summary": run.summary,
            }
            for run in runs
        },
        "differences": differences,
        "unexpected_non_passes": unexpected,
    }
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())

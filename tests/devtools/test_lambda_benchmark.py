"""devtools.lambda_benchmark's command line, without running the benchmark."""

from __future__ import annotations

import subprocess
import sys

from devtools.function_server import ROOT


def test_tables_without_results_say_so_in_one_line(tmp_path):
    missing = tmp_path / "lambda.json"
    done = subprocess.run(
        [sys.executable, "-m", "devtools.lambda_benchmark", "--tables", "--json", str(missing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"no results in {missing}: run python -m devtools.lambda_benchmark first"
    ]

"""The benchmark's instruction count of a cold start is the forked worker's first callgrind
dump: the master's work up to the fork plus the worker's own up to the dump, and nothing
either process does afterwards (the master's loop, the worker's exit)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from devtools.benchmark import CALLGRIND, dumped_instructions
from devtools.deadlines import scaled

# The master works, forks a worker that works and then waits (as a worker that has
# answered waits for the next request); after the dump the worker works a lot more.
BEFORE_FORK = "import os, sys\nsum(range(200_000))\n"
MASTER_AND_WORKER = (
    BEFORE_FORK + "worker = os.fork()\n"
    "if worker == 0:\n"
    "    sum(range(100_000))\n"
    "    print(os.getpid(), flush=True)\n"
    "    sys.stdin.readline()\n"
    "    sum(range(1_500_000))\n"
    "    os._exit(0)\n"
    "os.waitpid(worker, 0)\n"
    "os._exit(0)\n"
)


def totals(path: pathlib.Path) -> int:
    return int(next(line for line in path.read_text().splitlines() if line.startswith("totals: "))[8:])


@pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="valgrind is not installed")
def test_the_dump_counts_the_master_before_the_fork_and_the_worker_to_the_dump_only(tmp_path: pathlib.Path):
    process = subprocess.Popen(
        [*CALLGRIND, f"--callgrind-out-file={tmp_path}/cg.%p", sys.executable, "-S", "-c", MASTER_AND_WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    worker = int(process.stdout.readline())
    assert dumped_instructions(tmp_path, worker) is None  # nothing dumped yet
    subprocess.run(
        ["callgrind_control", "--dump", str(worker)], capture_output=True, check=True, timeout=scaled(60)
    )
    deadline = time.monotonic() + scaled(30)
    while (dumped := dumped_instructions(tmp_path, worker)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.stdin.write("\n")
    process.stdin.close()
    assert process.wait(timeout=scaled(60)) == 0

    master_total = totals(tmp_path / f"cg.{process.pid}")
    after_dump = totals(tmp_path / f"cg.{worker}")  # the worker's last part, written at its exit
    assert dumped is not None
    # The master's work before the fork is in the dump (without the inherited counter
    # it would be the worker's own 100,000-step sum, far less than the master's);
    # the 1,500,000-step sum after the dump is not.
    assert dumped > master_total * 0.9
    assert after_dump > dumped

"""The benchmark's instruction count of a cold start is the forked worker's: the master's
work up to the fork plus the worker's own, never the master's work after the fork."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from devtools.benchmark import CACHEGRIND, critical_path_instructions

BEFORE_FORK = "import os\nsum(range(500_000))\n"
# The master forks a worker that exits at once, then goes on working, as gunicorn's
# arbiter goes on looping while the worker answers.
MASTER_AND_WORKER = (
    BEFORE_FORK + "worker = os.fork()\nif worker == 0:\n    os._exit(0)\nos.waitpid(worker, 0)\n"
    "sum(range(1_000_000))\nos._exit(0)\n"
)


def counted(code: str, out: pathlib.Path) -> int:
    """Runs `code` under the benchmark's valgrind options; the first process's pid."""
    out.mkdir()
    process = subprocess.Popen(
        [*CACHEGRIND, f"--cachegrind-out-file={out}/cg.%p", sys.executable, "-S", "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert process.wait(timeout=60) == 0
    return process.pid


def summary(path: pathlib.Path) -> int:
    return int(next(line for line in path.read_text().splitlines() if line.startswith("summary: "))[9:])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_the_worker_count_includes_the_master_before_the_fork_and_not_after(tmp_path: pathlib.Path):
    master_pid = counted(MASTER_AND_WORKER, tmp_path / "served")
    alone_pid = counted(BEFORE_FORK + "os._exit(0)\n", tmp_path / "before-fork")

    worker = critical_path_instructions(tmp_path / "served", master_pid)

    # Everything the master did before the fork is in the worker's count (without the
    # inherited counter it would be a few thousand instructions), what it did after is not.
    assert worker is not None
    assert worker >= summary(tmp_path / "before-fork" / f"cg.{alone_pid}")
    assert worker < summary(tmp_path / "served" / f"cg.{master_pid}")


def test_no_count_until_the_worker_has_written_its_file_and_one_worker_only(tmp_path: pathlib.Path):
    (tmp_path / "cg.100").write_text("cmd: master\nevents: Ir\nsummary: 900\n")
    assert critical_path_instructions(tmp_path, 100) is None
    (tmp_path / "cg.101").write_text("cmd: worker\nevents: Ir\n")
    assert critical_path_instructions(tmp_path, 100) is None
    (tmp_path / "cg.101").write_text("cmd: worker\nevents: Ir\nsummary: 700\n")
    assert critical_path_instructions(tmp_path, 100) == 700
    (tmp_path / "cg.102").write_text("cmd: another worker\nevents: Ir\nsummary: 700\n")
    with pytest.raises(RuntimeError, match="expected one gunicorn worker"):
        critical_path_instructions(tmp_path, 100)

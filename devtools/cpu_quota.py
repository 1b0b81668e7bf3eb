"""Run a process (and the processes it forks) at a fraction of one CPU, as Cloud Run does.

    with CpuQuota(0.167) as quota:          # a cgroup v1 child with cfs_quota = 0.167 × period
        process = subprocess.Popen(quota.command([...]))
        ...
        quota.cpu_seconds                   # CPU the group used so far (cpuacct)

A 2nd gen function gets a CPU share that goes with its memory (0.167 of a vCPU
at 256 MiB); the kernel enforces such a share with the CFS bandwidth controller:
the group may run `cfs_quota_us` of CPU time per `cfs_period_us`, then waits for
the next period. This makes a throwaway child of /sys/fs/cgroup/cpu (and of
cpuacct, to read the CPU used) per measured process and removes it afterwards.

The process enters the group before it runs a single instruction of its own:
`command()` wraps the argument list in `/bin/sh -c 'echo $$ > cgroup.procs; exec "$@"'`,
so the interpreter's own start-up is inside the quota, as on the platform.

The group also gets a large CFS weight (cpu.shares, WEIGHT): on a machine shared
with other work, it then gets its whole quota whenever it can run, as an
instance with that CPU would, instead of competing on equal terms with every
other runnable process. The quota still caps it.

Needs root and a writable cgroup v1 CPU controller; `available()` says whether
this machine has one (and why not), so callers can measure without a quota.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import time
import uuid

CPU_ROOT = pathlib.Path("/sys/fs/cgroup/cpu")
CPUACCT_ROOT = pathlib.Path("/sys/fs/cgroup/cpuacct")
# cpu.shares of a measured group: ten times a default process's weight (1024).
WEIGHT = 10240


def available() -> str | None:
    """None when quotas can be set here; otherwise why not."""
    if not (CPU_ROOT / "cpu.cfs_quota_us").exists():
        return f"no cgroup v1 CPU controller at {CPU_ROOT}"
    if not os.access(CPU_ROOT, os.W_OK):
        return f"{CPU_ROOT} is not writable (not root?)"
    return None


class CpuQuota:
    """One cgroup at `share` of a CPU (None: no limit, CPU still accounted)."""

    def __init__(self, share: float | None, *, name: str | None = None):
        self.share = share
        name = name or f"bench-{uuid.uuid4().hex[:12]}"
        self._groups = [CPU_ROOT / name]
        if (CPUACCT_ROOT / "cpuacct.usage").exists() and CPUACCT_ROOT.resolve() != CPU_ROOT.resolve():
            self._groups.append(CPUACCT_ROOT / name)
        self._created = False

    def __enter__(self) -> CpuQuota:
        for group in self._groups:
            group.mkdir()
        self._created = True
        cpu = self._groups[0]
        (cpu / "cpu.shares").write_text(str(WEIGHT))
        if self.share is not None:
            period = int((cpu / "cpu.cfs_period_us").read_text())
            (cpu / "cpu.cfs_quota_us").write_text(str(max(1000, round(self.share * period))))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def command(self, argv: list[str]) -> list[str]:
        """`argv`, started inside this group."""
        targets = " ".join(shlex.quote(str(group / "cgroup.procs")) for group in self._groups)
        script = f'for g in {targets}; do echo $$ > "$g"; done; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *argv]

    def add(self, pid: int) -> None:
        """Move a running process into the group (its later children follow it)."""
        for group in self._groups:
            (group / "cgroup.procs").write_text(str(pid))

    @property
    def cpu_seconds(self) -> float:
        """CPU time used by the group's processes so far (0.0 without cpuacct)."""
        usage = self._groups[-1] / "cpuacct.usage"
        return int(usage.read_text()) / 1e9 if usage.exists() else 0.0

    @property
    def throttled_seconds(self) -> float:
        """Time the group spent waiting for its next CPU period."""
        for line in (self._groups[0] / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":
                return int(value) / 1e9
        return 0.0

    def pids(self) -> list[int]:
        text = (self._groups[0] / "cgroup.procs").read_text() if self._created else ""
        return [int(pid) for pid in text.split()]

    def close(self) -> None:
        """Remove the group. Processes still in it are moved back to the root group first."""
        if not self._created:
            return
        for group in self._groups:
            for _ in range(50):
                try:
                    for pid in (group / "cgroup.procs").read_text().split():
                        try:
                            (group.parent / "cgroup.procs").write_text(pid)
                        except OSError:
                            pass  # ended meanwhile
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # a process was still leaving
        self._created = False


class NoQuota:
    """CpuQuota's interface where quotas cannot be set: no limit, no accounting."""

    share = None
    cpu_seconds = 0.0
    throttled_seconds = 0.0

    def __enter__(self) -> NoQuota:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def command(self, argv: list[str]) -> list[str]:
        return list(argv)


def quota(share: float | None) -> CpuQuota | NoQuota:
    """A CpuQuota at `share` where this machine allows one, else a NoQuota."""
    return CpuQuota(share) if available() is None else NoQuota()

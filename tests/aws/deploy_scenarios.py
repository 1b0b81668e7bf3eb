"""aws/deploy.sh run with the real AWS CLI against a moto server of its own, in the background.

The AWS CLI starts in about 0.4 s per call and a deployment makes about 25 calls,
so the runs start once collection is done (conftest.py) and go on beside the other
tests, at a low CPU priority; the tests that read them run last and wait for them.
Each run's output and the calls moto recorded during it are kept.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile
import threading
import zipfile
from typing import NamedTuple

from devtools.function_server import ROOT
from devtools.moto_server import Call, MotoServer

REGION = "us-east-2"
# The region comes from the cluster's host; the password is one the leak check knows.
PASSWORD = "deploy-scenario-password-7f3a"
DSN = f"postgresql://app:{PASSWORD}@events-1.aws-{REGION}.cockroachlabs.cloud:26257/defaultdb?sslmode=verify-full&sslrootcert=system"
ACCOUNT = "123456789012"


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    calls: list[Call]


def deploy_environment(moto: MotoServer | None, dsn: str | None = DSN) -> dict[str, str]:
    env = {
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        "HOME": tempfile.gettempdir(),
        "DEPLOY_BACKOFF_MS": "10",
        "DEPLOY_IAM_RETRY_SECONDS": "1",
    }
    if moto is not None:
        env.update(moto.client_environment(REGION))
    if dsn is not None:
        env["DATABASE_URL"] = dsn
    return env


def run_deploy(args: list[str], env: dict[str, str], *, nice: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "aws" / "deploy.sh"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )


def stand_in_package(path: pathlib.Path) -> pathlib.Path:
    """A zip that stands for the package (moto stores code, it does not run it)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("aws/lambda_function.py", "# a stand-in for the package\n")
    return path


class DeployScenarios:
    """first: a new deployment; again: the same, repeated; delete, delete-again: the teardown twice."""

    STEPS = (
        ("first", ["--no-smoke-test"]),
        ("again", ["--no-smoke-test"]),
        ("delete", ["--delete", "--delete-secret"]),
        ("delete-again", ["--delete"]),
    )

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._runs: dict[str, Run] = {}
        self._error: BaseException | None = None
        self.done = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_all, daemon=True, name="aws-deploy-scenarios")
            self._thread.start()

    def _run_all(self) -> None:
        try:
            with tempfile.TemporaryDirectory() as workdir, MotoServer(pathlib.Path(workdir)) as moto:
                package = stand_in_package(pathlib.Path(workdir) / "package.zip")
                for name, args in self.STEPS:
                    moto.reset_recording()
                    done = run_deploy([*args, "--zip", str(package)], deploy_environment(moto), nice=10)
                    self._runs[name] = Run(done.returncode, done.stdout, done.stderr, moto.calls())
        except BaseException as err:  # noqa: BLE001 - reported to the tests that read the runs
            self._error = err
        finally:
            self.done.set()

    def run(self, name: str, timeout: float = 300) -> Run:
        self.start()
        if not self.done.wait(timeout):
            raise TimeoutError(f"the deploy.sh scenarios did not finish within {timeout} s")
        if self._error is not None:
            raise RuntimeError("the deploy.sh scenarios failed") from self._error
        return self._runs[name]


DEPLOY_SCENARIOS = DeployScenarios()

"""aws/deploy.sh run whole, smoke test included, with the real AWS CLI against moto's server.

The server answers Invoke by running the uploaded package under awslambdaric
(devtools.moto_server.LambdaStandIn), so the smoke test really calls the handler,
which reads its DSN from moto's Secrets Manager and connects to a PostgreSQL
server started here, its schema applied with `python -m db migrate`.

The AWS CLI starts in about 0.4 s per call and a deployment makes about 30 calls,
so the runs start once collection is done (conftest.py) and go on beside the other
tests, at a low CPU priority; the tests that read them run last and wait for them.
No run has a deadline: every step of deploy.sh is bounded itself, and a run that
fails is reported with its output. Each run's output and the calls moto recorded
during it are kept.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import zipfile
from typing import NamedTuple

from function_harness import known_secrets

from aws.package import own_files
from devtools.function_server import ROOT
from devtools.moto_server import Call, MotoServer
from devtools.postgres import APP_DATABASE, APP_USER, PostgresServer

# AWS CLI v1 sends SQS calls in older regions to SQS's legacy endpoint names, not to
# AWS_ENDPOINT_URL; in a region newer than that table they reach the stand-in.
REGION = "mx-central-1"
# A cluster's host names its region; the password is one the leak check knows.
PASSWORD = "deploy-scenario-password-7f3a"
DSN = f"postgresql://app:{PASSWORD}@events-1.aws-{REGION}.cockroachlabs.cloud:26257/defaultdb?sslmode=verify-full&sslrootcert=system"
ACCOUNT = "123456789012"
# A database nobody ran `python -m db migrate` on.
NO_SCHEMA = "no_schema"
# A new account's quota: 10 concurrent executions, all of them unreserved; raised later to
# 120, which leaves room for 20 of the 25 executions deploy.sh would reserve.
NEW_ACCOUNT_CONCURRENCY = 10
RAISED_CONCURRENCY = 120


class Step(NamedTuple):
    """One aws/deploy.sh run of a scenario: its arguments, the database its DSN names, and the
    account's quota raised to `concurrency` before it (None: unchanged)."""

    name: str
    args: tuple[str, ...] = ()
    database: str = APP_DATABASE  # migrated
    concurrency: int | None = None


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    calls: list[Call]
    function_logs: list[str]


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
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )


def code_package(path: pathlib.Path) -> pathlib.Path:
    """The function's own files, zipped; the stand-in's Python supplies the dependencies
    (aws/requirements.txt's, installed in .venv), so no wheel is downloaded."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in own_files():
            archive.write(ROOT / name, name)
    return path


def migrate(dsn: str) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": dsn}
    subprocess.run(
        [sys.executable, "-m", "db", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True
    )


class DeployScenarios:
    """Two accounts, each deployed to in order, side by side.

    An established account: a first deployment, a change, and a change whose database's schema
    was never applied. A new account (quota 10): a first deployment, the same again, the
    teardown twice, then, its quota raised to 120, a deployment within the deleted secret's
    recovery window."""

    ESTABLISHED = (
        Step("first"),
        Step("changed", ("--memory", "512")),
        Step("changed-schema-missing", ("--memory", "768"), NO_SCHEMA),
    )
    NEW = (
        Step("new-account"),
        Step("again"),
        Step("delete", ("--delete", "--delete-secret")),
        Step("delete-again", ("--delete",)),
        # The schema-less database's DSN, so that the restored secret gets a new version.
        Step("quota-raised-within-recovery-window", ("--no-smoke-test",), NO_SCHEMA, RAISED_CONCURRENCY),
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
            with (
                tempfile.TemporaryDirectory() as workdir,
                PostgresServer() as postgres,
                MotoServer(pathlib.Path(workdir) / "established") as established,
                MotoServer(pathlib.Path(workdir) / "new", concurrency=NEW_ACCOUNT_CONCURRENCY) as new_account,
            ):
                known_secrets.add(postgres.app_password, postgres.admin_password)
                migrate(postgres.dsn())
                postgres.execute(f"CREATE DATABASE {NO_SCHEMA} OWNER {APP_USER}")
                package = code_package(pathlib.Path(workdir) / "package.zip")

                def deploy_in_order(moto: MotoServer, steps: tuple[Step, ...]) -> None:
                    for step in steps:
                        if step.concurrency is not None:
                            moto.raise_concurrency(step.concurrency)
                        args = [*step.args, "--region", REGION, "--zip", str(package)]
                        self._run(step.name, moto, args, postgres.dsn(database=step.database))

                # The accounts are independent: their runs go side by side, each account's in order.
                with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="aws-deploy") as pool:
                    accounts = [
                        pool.submit(deploy_in_order, established, self.ESTABLISHED),
                        pool.submit(deploy_in_order, new_account, self.NEW),
                    ]
                    for done in accounts:
                        done.result()
        except BaseException as err:  # noqa: BLE001 - reported to the tests that read the runs
            self._error = err
        finally:
            self.done.set()

    def _run(self, name: str, moto: MotoServer, args: list[str], dsn: str) -> None:
        moto.reset_recording()
        logs_before = len(moto.function_logs())
        done = run_deploy(args, deploy_environment(moto, dsn), nice=10)
        logs = moto.function_logs()[logs_before:]
        self._runs[name] = Run(done.returncode, done.stdout, done.stderr, moto.calls(), logs)

    def run(self, name: str) -> Run:
        """A run's result, once every run is done (each is bounded by deploy.sh itself)."""
        self.start()
        self.done.wait()
        if self._error is not None:
            raise RuntimeError("the deploy.sh scenarios failed") from self._error
        return self._runs[name]


DEPLOY_SCENARIOS = DeployScenarios()

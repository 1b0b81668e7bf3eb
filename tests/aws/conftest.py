"""Fixtures for the AWS Lambda entry point: the handler under awslambdaric against a
local Lambda Runtime API, and moto's server for Secrets Manager and the AWS CLI.

Every server here is started by the tests, on loopback; nothing reaches AWS.
"""

from __future__ import annotations

import pytest
from function_harness import capture

from devtools.lambda_runtime_api import LambdaProcess, LambdaRuntimeApi
from devtools.moto_server import MotoServer


class LambdaFunction:
    """One execution environment: the runtime interface client running the handler,
    its log captured for the leak check."""

    def __init__(self, env: dict[str, str], log_path, *, snap_start: bool = False):
        self.api = LambdaRuntimeApi()
        self.process = LambdaProcess(self.api, env, log_path, snap_start=snap_start)
        capture.log_files.append(log_path)

    def __enter__(self) -> LambdaFunction:
        self.api.__enter__()
        self.process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.stop()
        self.api.__exit__()

    def invoke(self, event):
        # The leak check reads the log of every function a test invoked.
        if self.process.log_path not in capture.log_files:
            capture.log_files.append(self.process.log_path)
        # No deadline: it waits as long as the environment's process lives.
        result = self.process.invoke(event)
        capture.add(result.body.decode(errors="replace"))
        return result

    def request_lines(self) -> list[dict]:
        """The core's one line per request (those with an httpRequest or a status)."""
        return [line for line in self.process.json_log_lines() if "status" in line]


def _functions(directory):
    started: list[LambdaFunction] = []

    def start(env: dict[str, str], *, snap_start: bool = False) -> LambdaFunction:
        function = LambdaFunction(env, directory / f"lambda-{len(started)}.log", snap_start=snap_start)
        started.append(function.__enter__())
        return function

    yield start
    for function in started:
        function.__exit__()


@pytest.fixture
def lambda_function(tmp_path):
    """Start a function with `env` (and snap_start=True for SnapStart); stopped after the test."""
    yield from _functions(tmp_path)


@pytest.fixture(scope="module")
def module_lambda_function(tmp_path_factory):
    """The same, stopped after the module: one warm environment for many tests."""
    yield from _functions(tmp_path_factory.mktemp("lambda"))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's server on a free loopback port, every request recorded."""
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def aws(moto_server):
    """moto's server, emptied of resources and of recorded calls."""
    moto_server.reset()
    return moto_server


def _reads_deploy_scenarios(item) -> bool:
    return getattr(getattr(item, "module", None), "DEPLOY_SCENARIOS", None) is not None


def pytest_collection_modifyitems(items):
    """Tests that read the deploy.sh runs go last, so the runs go on beside the others."""
    items.sort(key=_reads_deploy_scenarios)  # stable: each group keeps its order


def pytest_collection_finish(session):
    if session.config.option.collectonly or session.testsfailed:
        return
    if any(_reads_deploy_scenarios(item) for item in session.items):
        from deploy_scenarios import DEPLOY_SCENARIOS

        DEPLOY_SCENARIOS.start()

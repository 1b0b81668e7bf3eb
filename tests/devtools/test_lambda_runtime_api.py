"""devtools.lambda_runtime_api speaks the Lambda Runtime API as awslambdaric expects it:
answers, a handler's error with its type, an import failure as an init error, and
SnapStart's pause at the snapshot point."""

from __future__ import annotations

import pytest

from devtools.deadlines import scaled
from devtools.lambda_runtime_api import LambdaProcess, LambdaRuntimeApi

HANDLERS = """
import os

def echo(event, context):
    return {"event": event, "request_id": context.aws_request_id, "pid": os.getpid()}

def fail(event, context):
    raise ValueError("refused on purpose")
"""


@pytest.fixture
def task_root(tmp_path):
    (tmp_path / "handlers.py").write_text(HANDLERS)
    (tmp_path / "broken.py").write_text("import a_module_that_does_not_exist\n")
    return tmp_path


def test_answers_come_back_in_order_from_one_environment(task_root):
    with (
        LambdaRuntimeApi() as api,
        LambdaProcess(api, {}, task_root / "log", task_root=task_root, handler="handlers.echo"),
    ):
        first, second = api.invoke({"n": 1}), api.invoke({"n": 2})
    assert [first.payload["event"], second.payload["event"]] == [{"n": 1}, {"n": 2}]
    assert first.payload["request_id"] != second.payload["request_id"]
    assert first.payload["pid"] == second.payload["pid"] and first.error is None
    assert len(api.next_calls) >= 2


def test_a_raised_exception_is_an_error_with_its_type(task_root):
    with (
        LambdaRuntimeApi() as api,
        LambdaProcess(api, {}, task_root / "log", task_root=task_root, handler="handlers.fail"),
    ):
        result = api.invoke({})
    assert result.error_type is not None
    assert (result.error["errorType"], result.error["errorMessage"]) == ("ValueError", "refused on purpose")


def test_an_import_failure_is_reported_as_an_init_error(task_root):
    with LambdaRuntimeApi() as api:
        process = LambdaProcess(api, {}, task_root / "log", task_root=task_root, handler="broken.handler")
        process.start()
        assert process.process is not None and process.process.wait(scaled(30)) != 0
    assert api.init_errors and api.init_errors[0]["errorType"] == "Runtime.ImportModuleError"


def test_under_snapstart_the_client_waits_at_the_snapshot_point_until_restored(task_root):
    with (
        LambdaRuntimeApi() as api,
        LambdaProcess(
            api, {}, task_root / "log", task_root=task_root, handler="handlers.echo", snap_start=True
        ),
    ):
        api.wait_for_snapshot()
        assert api.next_calls == []  # nothing is invoked before the restore
        api.restore()
        assert api.invoke({"n": 1}).payload["event"] == {"n": 1}

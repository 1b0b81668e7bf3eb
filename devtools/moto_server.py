"""moto's AWS server on a loopback port, in a process of its own, recording every request.

    with MotoServer(workdir, concurrency=1000) as aws:
        env = aws.client_environment()        # AWS_ENDPOINT_URL and dummy credentials
        ...                                   # boto3, or the AWS CLI, with that environment
        [call.operation for call in aws.calls()]   # e.g. "secretsmanager:GetSecretValue"

The unmodified boto3 client and the real AWS CLI reach it through
AWS_ENDPOINT_URL, which both read themselves. moto's own recorder
(MOTO_ENABLE_RECORDING) writes each request it serves as a JSON line; `calls()`
reads them back as (service, operation) pairs, from the signature's credential
scope and the protocol's operation name. Recorded bodies may hold secret values:
the recording stays in `workdir`, never in a test's output.

What moto leaves out of Lambda, the server answers as AWS does (`LambdaStandIn`):
Invoke runs the function's uploaded package under awslambdaric against the local
Runtime API (moto would need Docker), with the function's environment variables;
GetAccountSettings reports an account of `concurrency` executions, and
PutFunctionConcurrency refuses to leave fewer than 100 of them unreserved, as a
new account with a reduced quota does (`raise_concurrency` raises the quota, as
AWS does on request). Each invocation's log is `workdir/function-N.log`.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from devtools.postgres import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent
ACCOUNT_ID = "123456789012"  # moto's default account
# AWS refuses a reservation that leaves fewer unreserved executions than this.
UNRESERVED_MINIMUM = 100


class Call(NamedTuple):
    service: str  # the signing name: secretsmanager, lambda, iam, scheduler, ...
    region: str  # the signing region
    operation: str  # "GetSecretValue", or "POST /2015-03-31/functions" for REST APIs
    method: str
    path: str
    body: bytes
    query: str = ""  # the URL's query string: Qualifier=live

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))


class MotoServer:
    def __init__(self, workdir: pathlib.Path, host: str = "127.0.0.1", *, concurrency: int = 1000):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.concurrency = concurrency
        self.host = host
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.recording = pathlib.Path(workdir) / "moto-recording.jsonl"
        self.log_path = pathlib.Path(workdir) / "moto.log"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        self.recording.write_text("")
        env = {"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(self.recording), "PATH": ""}
        argv = [sys.executable, "-m", "devtools.moto_server", "--host", self.host, "--port", str(self.port),
                "--concurrency", str(self.concurrency), "--workdir", str(self.workdir)]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:  # until it listens: a readiness wait, not a negative proof
            if self._process.poll() is not None:
                raise RuntimeError(f"moto's server exited: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"moto's server did not listen within {timeout} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def _post(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + path, method="POST", data=b""), timeout=10)

    def reset(self) -> None:
        """Forget every resource and every recorded call."""
        self._post("/moto-api/reset")
        self.reset_recording()

    def reset_recording(self) -> None:
        """Forget the recorded calls, keeping the resources."""
        self._post("/moto-api/recorder/reset-recording")

    def raise_concurrency(self, concurrency: int) -> None:
        """The account's quota raised to `concurrency` executions, as AWS does when asked."""
        self._post(f"{QUOTA_PATH}?concurrency={concurrency}")
        self.concurrency = concurrency

    def client_environment(self, region: str = "us-east-1") -> dict[str, str]:
        """What boto3 and the AWS CLI need to talk to this server and nothing else."""
        return client_environment(self.url, region)

    def function_logs(self) -> list[str]:
        """The lines the functions this server invoked wrote, in the order they ran."""
        logs = sorted(self.workdir.glob("function-*.log"), key=lambda path: int(path.stem.split("-")[1]))
        return [line for path in logs for line in path.read_text(errors="replace").splitlines()]

    def client(self, service: str, region: str = "us-east-1"):
        """A boto3 client for this server (the test's own, to set up and inspect resources)."""
        import boto3

        env = self.client_environment(region)
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=region,
        ).client(service, endpoint_url=self.url)

    def calls(self) -> list[Call]:
        """Every request served since the last reset, in order."""
        if not self.recording.exists():
            return []
        calls = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            calls.append(_call(entry))
        return calls


def client_environment(url: str, region: str) -> dict[str, str]:
    """What boto3 and the AWS CLI need to talk to the server at `url` and nothing else."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # No profile, config file or instance metadata from this machine.
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _scope(headers: dict[str, str]) -> tuple[str, str]:
    """(region, service) from the signature's credential scope: Credential=KEY/DATE/REGION/SERVICE/aws4_request."""
    scope = headers.get("authorization", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    return (scope[2], scope[3]) if len(scope) > 3 else ("unknown", "unknown")


def _call(entry: dict) -> Call:
    headers = {name.lower(): value for name, value in entry["headers"].items()}
    body = entry.get("body") or ""
    raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
    region, service = _scope(headers)
    url = urllib.parse.urlsplit(entry["url"])
    path = url.path
    target = headers.get("x-amz-target")
    if target:  # the JSON protocol: Service.Operation
        operation = target.rsplit(".", 1)[-1]
    elif raw.startswith(b"Action="):  # the query protocol (IAM, STS)
        operation = dict(urllib.parse.parse_qsl(raw.decode())).get("Action", "")
    else:  # REST: the method and path say what it is
        operation = f"{entry['method']} {urllib.parse.unquote(path)}"
    return Call(service, region, operation, entry["method"], path, raw, url.query)


# ---------------------------------------------------------------- in the server's process

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
CONCURRENCY_PATH = "/2017-10-31/functions/{name}/concurrency"
ACCOUNT_SETTINGS_PATH = "/2016-08-19/account-settings/"
QUOTA_PATH = "/moto-api/stand-in/concurrency"  # the tests' knob: the account's quota, not an AWS API
Wsgi = Callable[[dict, Callable], Iterable[bytes]]


class LambdaStandIn:
    """WSGI middleware in front of moto's application: the Lambda calls moto does not model."""

    def __init__(self, app: Wsgi, *, url: str, concurrency: int, workdir: pathlib.Path):
        self.app = app
        self.url = url
        self.concurrency = concurrency
        self.workdir = workdir
        self._invocations = itertools.count()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = urllib.parse.unquote(environ.get("PATH_INFO", ""))
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        region = _scope(headers)[0]
        method = environ["REQUEST_METHOD"]
        parts = path.strip("/").split("/")
        answer: tuple[int, dict[str, str], bytes] | None = None
        if method == "POST" and path == QUOTA_PATH:
            self.concurrency = int(
                dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))["concurrency"]
            )
            start_response("204 No Content", [])
            return [b""]
        if method == "GET" and path.rstrip("/") == ACCOUNT_SETTINGS_PATH.rstrip("/"):
            answer = self._account_settings(region)
        elif method == "POST" and len(parts) == 4 and path == INVOKE_PATH.format(name=parts[2]):
            query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
            answer = self._invoke(region, parts[2], query.get("Qualifier"), body)
        elif method == "PUT" and len(parts) == 4 and path == CONCURRENCY_PATH.format(name=parts[2]):
            answer = self._refuse_over_quota(region, parts[2], json.loads(body or b"{}"))
        if answer is None:
            return self.app(environ, start_response)
        self._record(environ, headers, body)
        status, answer_headers, answer_body = answer
        start_response(f"{status} {'OK' if status < 400 else 'Error'}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(answer_body))), *answer_headers.items()
        ])  # fmt: skip
        return [answer_body]

    def _backend(self, region: str) -> Any:
        from moto.awslambda.models import lambda_backends

        return lambda_backends[ACCOUNT_ID][region]

    def _reserved(self, region: str, but: str = "") -> int:
        functions = self._backend(region).list_functions()
        return sum(fn.reserved_concurrency or 0 for fn in functions if fn.function_name != but)

    def _account_settings(self, region: str) -> tuple[int, dict[str, str], bytes]:
        unreserved = self.concurrency - self._reserved(region)
        limit = {"ConcurrentExecutions": self.concurrency, "UnreservedConcurrentExecutions": unreserved}
        return 200, {}, json.dumps({"AccountLimit": limit, "AccountUsage": {}}).encode()

    def _refuse_over_quota(
        self, region: str, name: str, body: dict
    ) -> tuple[int, dict[str, str], bytes] | None:
        wanted = int(body.get("ReservedConcurrentExecutions", 0))
        if self.concurrency - self._reserved(region, but=name) - wanted >= UNRESERVED_MINIMUM:
            return None  # moto stores it
        message = (
            "Specified ReservedConcurrentExecutions for function decreases account's "
            f"UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MINIMUM}]."
        )
        error = {"Type": "User", "message": message}
        return 400, {"x-amzn-ErrorType": "InvalidParameterValueException"}, json.dumps(error).encode()

    def _invoke(
        self, region: str, name: str, qualifier: str | None, payload: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Run the function's package under awslambdaric, as Lambda would: cold, every time."""
        from devtools.lambda_runtime_api import LambdaProcess, LambdaRuntimeApi

        function = self._backend(region).get_function(name, qualifier)
        log = self.workdir / f"function-{next(self._invocations)}.log"
        with tempfile.TemporaryDirectory() as task_root:
            with zipfile.ZipFile(io.BytesIO(function.code_bytes)) as package:
                package.extractall(task_root)
            env = {**client_environment(self.url, region), **function.environment_vars,
                   "AWS_LAMBDA_FUNCTION_NAME": name}  # fmt: skip
            with (
                LambdaRuntimeApi() as api,
                LambdaProcess(
                    api, env, log, task_root=pathlib.Path(task_root), handler=function.handler
                ) as process,
            ):
                result = process.invoke(json.loads(payload or b"{}"))
        headers = {"X-Amz-Executed-Version": str(function.version)}
        if result.error_type is not None:
            headers["X-Amz-Function-Error"] = result.error_type
        return 200, headers, result.body

    def _record(self, environ: dict, headers: dict[str, str], body: bytes) -> None:
        """The same line moto's recorder writes for the requests it serves."""
        query = environ.get("QUERY_STRING", "")
        url = f"{self.url}{environ.get('PATH_INFO', '')}{'?' + query if query else ''}"
        entry = {"headers": headers, "method": environ["REQUEST_METHOD"], "url": url,
                 "body": base64.b64encode(body).decode(), "body_encoded": True}  # fmt: skip
        with open(os.environ["MOTO_RECORDER_FILEPATH"], "a") as recording:
            recording.write(json.dumps(entry) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.moto_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1000, help="the account's concurrent executions")
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    url = f"http://{args.host}:{args.port}"
    app = LambdaStandIn(DomainDispatcherApplication(create_backend_app), url=url,
                        concurrency=args.concurrency, workdir=args.workdir)  # fmt: skip
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

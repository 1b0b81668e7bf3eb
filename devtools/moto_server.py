"""moto's AWS server on a loopback port, in a process of its own, recording every request.

    with MotoServer(workdir) as aws:
        env = aws.client_environment()        # AWS_ENDPOINT_URL and dummy credentials
        ...                                   # boto3, or the AWS CLI, with that environment
        [call.operation for call in aws.calls()]   # e.g. "secretsmanager:GetSecretValue"

The unmodified boto3 client and the real AWS CLI reach it through
AWS_ENDPOINT_URL, which both read themselves. moto's own recorder
(MOTO_ENABLE_RECORDING) writes each request it serves as a JSON line; `calls()`
reads them back as (service, operation) pairs, from the signature's credential
scope and the protocol's operation name. Recorded bodies may hold secret values:
the recording stays in `workdir`, never in a test's output.
"""

from __future__ import annotations

import base64
import json
import pathlib
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import NamedTuple

from devtools.postgres import free_port

ACCOUNT_ID = "123456789012"  # moto's default account


class Call(NamedTuple):
    service: str  # the signing name: secretsmanager, lambda, iam, scheduler, ...
    region: str  # the signing region
    operation: str  # "GetSecretValue", or "POST /2015-03-31/functions" for REST APIs
    method: str
    path: str
    body: bytes

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))


class MotoServer:
    def __init__(self, workdir: pathlib.Path, host: str = "127.0.0.1"):
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
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
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

    def client_environment(self, region: str = "us-east-1") -> dict[str, str]:
        """What boto3 and the AWS CLI need to talk to this server and nothing else."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            # No profile, config file or instance metadata from this machine.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

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


def _call(entry: dict) -> Call:
    headers = {name.lower(): value for name, value in entry["headers"].items()}
    body = entry.get("body") or ""
    raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
    # The credential scope names the service: Credential=KEY/DATE/REGION/SERVICE/aws4_request.
    scope = headers.get("authorization", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    region, service = (scope[2], scope[3]) if len(scope) > 3 else ("unknown", "unknown")
    path = urllib.parse.urlsplit(entry["url"]).path
    target = headers.get("x-amz-target")
    if target:  # the JSON protocol: Service.Operation
        operation = target.rsplit(".", 1)[-1]
    elif raw.startswith(b"Action="):  # the query protocol (IAM, STS)
        operation = dict(urllib.parse.parse_qsl(raw.decode())).get("Action", "")
    else:  # REST: the method and path say what it is
        operation = f"{entry['method']} {urllib.parse.unquote(path)}"
    return Call(service, region, operation, entry["method"], path, raw)

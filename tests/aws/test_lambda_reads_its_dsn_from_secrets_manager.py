"""The DSN from AWS Secrets Manager (DATABASE_URL_SECRET_ARN) through the unmodified boto3
client against moto's server: read once per execution environment, again after a
rotation, faults as prompt 503s naming the secret and never its value."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from sample_events import http_event, json_body

from devtools.function_server import ROOT
from devtools.postgres import free_port

# A short retry interval, so the tests see recovery quickly (the default is 5 s).
RETRY_INTERVAL = "0.2"


def secret_env(aws, arn: str) -> dict[str, str]:
    return {
        "DATABASE_URL_SECRET_ARN": arn,
        "SECRET_RETRY_INTERVAL": RETRY_INTERVAL,
        **aws.client_environment(),
    }


def reads_of_the_secret(aws) -> int:
    return [call.name for call in aws.calls()].count("secretsmanager:GetSecretValue")


def post(function, kind: str) -> tuple[int, dict]:
    reply = function.invoke(http_event(body=json_body({"kind": kind}))).payload
    return reply["statusCode"], json.loads(reply["body"])


def test_the_secret_is_read_once_per_execution_environment(lambda_function, aws, events_db):
    arn = aws.client("secretsmanager").create_secret(Name="events-dsn", SecretString=events_db.dsn())["ARN"]
    function = lambda_function(secret_env(aws, arn))
    for n in range(5):
        assert post(function, f"from-secret-{n}")[0] == 201
    assert reads_of_the_secret(aws) == 1


def test_a_rotated_password_is_picked_up_without_a_new_environment(lambda_function, aws, events_db):
    events_db.set_password("rotating", "first-aws-password")
    secrets = aws.client("secretsmanager")
    arn = secrets.create_secret(
        Name="events-dsn", SecretString=events_db.dsn(user="rotating", password="first-aws-password")
    )["ARN"]
    function = lambda_function(secret_env(aws, arn))
    assert post(function, "before-rotation")[0] == 201
    # Rotation: the database gets a new password, the secret a new AWSCURRENT version,
    # and the old session ends.
    events_db.set_password("rotating", "second-aws-password")
    secrets.put_secret_value(
        SecretId=arn, SecretString=events_db.dsn(user="rotating", password="second-aws-password")
    )
    events_db.terminate_backends(user="rotating")
    time.sleep(float(RETRY_INTERVAL))  # the secret was read less than the retry interval ago
    assert post(function, "after-rotation")[0] == 201
    assert reads_of_the_secret(aws) == 2


def test_a_missing_secret_is_a_503_naming_the_secret(lambda_function, aws):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret-AbCdEf"
    function = lambda_function(secret_env(aws, arn))
    status, body = post(function, "no-secret")
    assert status == 503
    logged = "\n".join(function.process.log_lines())
    assert arn in logged and "ResourceNotFoundException" in logged


def test_an_unreachable_secrets_manager_is_a_prompt_503(lambda_function, aws):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:events-dsn-AbCdEf"
    env = {
        **secret_env(aws, arn),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "SECRET_TIMEOUT": "1",
    }
    function = lambda_function(env)
    status, _ = post(function, "unreachable")
    assert status == 503
    assert "EndpointConnectionError" in "\n".join(function.process.log_lines())


def test_a_malformed_arn_is_a_503_saying_what_to_set(lambda_function, aws):
    function = lambda_function(secret_env(aws, "events-dsn"))
    assert post(function, "malformed")[0] == 503
    assert "DATABASE_URL_SECRET_ARN must be a Secrets Manager secret's ARN" in "\n".join(
        function.process.log_lines()
    )
    assert aws.calls() == []


@pytest.mark.parametrize("variable", ["DATABASE_URL", "DATABASE_URL_SECRET_ARN"])
def test_boto3_is_imported_only_on_the_secrets_manager_path(events_db, aws, variable):
    """A fresh process: the handler imported and one request answered."""
    if variable == "DATABASE_URL":
        value = events_db.dsn()
    else:
        value = aws.client("secretsmanager").create_secret(Name="events-dsn", SecretString=events_db.dsn())[
            "ARN"
        ]
    event = http_event(body=json_body({"kind": "imports"}))
    script = (
        "import json, sys, types\n"
        "from aws.lambda_function import lambda_handler\n"
        f"reply = lambda_handler({event!r}, types.SimpleNamespace(aws_request_id='imports'))\n"
        "print(json.dumps([reply['statusCode'], 'boto3' in sys.modules]))\n"
    )
    env = {**aws.client_environment(), variable: value, "PATH": "", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    status, imported = json.loads(out.strip().splitlines()[-1])
    assert status == 201
    assert imported is (variable == "DATABASE_URL_SECRET_ARN")

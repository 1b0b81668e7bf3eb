"""devtools.moto_server records every request and names it by service and operation,
for each of the protocols the AWS CLI and boto3 use (JSON, query, REST)."""

from __future__ import annotations

import pytest

from devtools.moto_server import MotoServer


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


def test_calls_are_named_by_service_and_operation_in_every_protocol(moto):
    moto.reset()
    moto.client("secretsmanager", "eu-west-1").create_secret(Name="named", SecretString="value")
    moto.client("iam").list_roles()
    moto.client("lambda").list_functions()
    calls = moto.calls()
    assert [call.name for call in calls] == [
        "secretsmanager:CreateSecret",
        "iam:ListRoles",
        "lambda:GET /2015-03-31/functions",
    ]
    assert calls[0].region == "eu-west-1" and calls[0].json()["SecretString"] == "value"
    assert calls[1].form()["Action"] == "ListRoles"


def test_reset_forgets_resources_and_calls(moto):
    secrets = moto.client("secretsmanager")
    secrets.create_secret(Name="forgotten", SecretString="value")
    moto.reset()
    assert moto.calls() == []
    assert secrets.list_secrets()["SecretList"] == []

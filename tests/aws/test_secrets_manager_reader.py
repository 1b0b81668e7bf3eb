"""db.secret's Secrets Manager reader, in process, with the unmodified boto3 client against
moto's server: the current version as text, and every failure a SecretUnavailable (or a
ConfigurationError) naming the secret and never its value."""

from __future__ import annotations

import pytest

from core.errors import ConfigurationError, SecretUnavailable
from db.secret import DsnSource, aws_client, prepare_aws_client, read_aws_secret
from devtools.postgres import free_port

MISSING = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"


def missing_in(region: str) -> str:
    """A secret in a region of its own: the environment's client for it is built by this test,
    with the environment this test sets (one client per environment and region)."""
    return MISSING.replace("us-east-1", region)


@pytest.fixture
def secrets(aws, monkeypatch):
    for name, value in aws.client_environment().items():
        monkeypatch.setenv(name, value)
    return aws.client("secretsmanager")


def test_the_current_version_is_read_as_text(secrets):
    arn = secrets.create_secret(Name="reader-text", SecretString=" postgresql://first \n")["ARN"]
    assert read_aws_secret(arn, timeout=2) == "postgresql://first"
    secrets.put_secret_value(SecretId=arn, SecretString="postgresql://app@second:26257/db")
    source = DsnSource(aws_secret_arn=arn, timeout=2)
    assert (source.read(), source.rereadable, source.describe()) == (
        "postgresql://app@second:26257/db",
        True,
        f"DATABASE_URL_SECRET_ARN {arn}",
    )


def test_a_binary_secret_must_be_utf8(secrets):
    arn = secrets.create_secret(Name="reader-binary", SecretBinary=b"postgresql://binary")["ARN"]
    assert read_aws_secret(arn, timeout=2) == "postgresql://binary"
    bad = secrets.create_secret(Name="reader-latin1", SecretBinary=b"\xff\xfe")["ARN"]
    with pytest.raises(SecretUnavailable, match="holds no UTF-8 text"):
        read_aws_secret(bad, timeout=2)


def test_a_missing_secret_names_the_secret_and_the_error(secrets):
    with pytest.raises(SecretUnavailable) as raised:
        read_aws_secret(MISSING, timeout=2)
    assert str(raised.value) == f"cannot read secret {MISSING}: ResourceNotFoundException"


def test_an_unreachable_endpoint_is_named_by_the_error_type(secrets, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SecretUnavailable, match=r"^cannot read secret .*: EndpointConnectionError$"):
        read_aws_secret(missing_in("eu-west-3"), timeout=1)


def test_no_credentials_is_said_so(secrets, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    with pytest.raises(SecretUnavailable, match="no AWS credentials"):
        read_aws_secret(missing_in("ap-northeast-3"), timeout=1)


def test_every_read_in_an_environment_shares_one_client(secrets):
    arn = secrets.create_secret(Name="reader-shared", SecretString="postgresql://app@shared:26257/db")["ARN"]
    prepare_aws_client(arn, timeout=2)  # as the SnapStart hook does before the snapshot
    prepared = aws_client("us-east-1", 2)
    assert read_aws_secret(arn, timeout=2) == "postgresql://app@shared:26257/db"
    assert DsnSource(aws_secret_arn=arn, timeout=2).read() == "postgresql://app@shared:26257/db"
    assert aws_client("us-east-1", 2) is prepared


@pytest.mark.parametrize(
    "arn", ["events-dsn", "arn:aws:secretsmanager:us-east-1:123:secret:x", "arn:aws:s3:::bucket"]
)
def test_a_malformed_arn_is_a_configuration_error(arn):
    with pytest.raises(
        ConfigurationError, match="DATABASE_URL_SECRET_ARN must be a Secrets Manager secret's ARN"
    ):
        DsnSource(aws_secret_arn=arn)

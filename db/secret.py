"""Where the connection string comes from: the environment, a mounted secret file, or Secret Manager.

In the order they are looked at (config.py reads the variables):

- `DATABASE_URL`: the string itself (local runs, or a secret the platform injects
  as an environment variable, which then changes only with a new revision).
- `DATABASE_URL_FILE`: a file the platform mounts from Secret Manager
  (`--set-secrets=/PATH=SECRET:latest`). Cloud Run reads a mounted secret from
  Secret Manager when the file is read, so reading the file again after a
  rejected password picks up a rotated one, with no client library at all.
- `DATABASE_URL_SECRET`: a Secret Manager version, `projects/P/secrets/S/versions/V`,
  read with the client library, which is imported only on this path.
- `DATABASE_URL_SECRET_ARN`: an AWS Secrets Manager secret's ARN (AWS Lambda),
  its current version read with boto3, which is imported only on this path.

The last three are read once per instance and read again only when the value did
not work (see db.database).
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from core.errors import ConfigurationError, SecretUnavailable
from db.dsn import parse_dsn

# Seconds to wait for Secret Manager before SecretUnavailable.
SECRET_TIMEOUT = 5.0
# A connection string is well under 4 KiB; a mounted secret file larger than this holds something else.
MAX_FILE_BYTES = 64 * 1024
SECRET_NAME = re.compile(r"projects/[^/\s]+/secrets/[^/\s]+/versions/[^/\s]+")


class DsnSource:
    """Reads the DSN. `rereadable`: whether reading it again can give a new value."""

    def __init__(
        self,
        *,
        dsn: str = "",
        path: str = "",
        secret_name: str = "",
        aws_secret_arn: str = "",
        timeout: float = SECRET_TIMEOUT,
        emulator_host: str = "",
    ):
        if sum(bool(value) for value in (dsn, path, secret_name, aws_secret_arn)) != 1:
            raise ValueError("give exactly one of dsn, path, secret_name and aws_secret_arn")
        if aws_secret_arn:
            aws_secret_region(aws_secret_arn)  # a malformed ARN is a ConfigurationError now
        if secret_name and not SECRET_NAME.fullmatch(secret_name):
            raise ConfigurationError(
                "DATABASE_URL_SECRET must be a secret version's resource name, "
                f"projects/PROJECT/secrets/SECRET/versions/VERSION, got {secret_name!r}"
            )
        self._dsn = dsn
        self.path = path
        self.secret_name = secret_name
        self.aws_secret_arn = aws_secret_arn
        self._timeout = timeout
        self._emulator_host = emulator_host

    @property
    def rereadable(self) -> bool:
        return not self._dsn

    def describe(self) -> str:
        """Where the DSN comes from, for log lines and errors (never the value)."""
        if self.secret_name:
            return f"DATABASE_URL_SECRET {self.secret_name}"
        if self.aws_secret_arn:
            return f"DATABASE_URL_SECRET_ARN {self.aws_secret_arn}"
        if self.path:
            return f"DATABASE_URL_FILE {self.path}"
        return "DATABASE_URL"

    def prepare(self) -> None:
        """Build what reading needs and holds no secret (Secrets Manager's client): called
        before a SnapStart snapshot, so restored copies find it built."""
        if self.aws_secret_arn:
            prepare_aws_client(self.aws_secret_arn, self._timeout)

    def read(self) -> str:
        if self._dsn:
            value = self._dsn
        elif self.path:
            value = read_file(self.path)
        elif self.aws_secret_arn:
            value = read_aws_secret(self.aws_secret_arn, timeout=self._timeout)
        else:
            value = read_secret(self.secret_name, timeout=self._timeout, emulator_host=self._emulator_host)
        # Named here, before the DSN parser would only say what a DSN must start with.
        if not value:
            raise SecretUnavailable(f"{self.describe()} is empty")
        if value.startswith("\ufeff"):
            raise SecretUnavailable(
                f"{self.describe()} begins with a byte order mark (U+FEFF): save it without one"
            )
        try:
            parse_dsn(value)  # a malformed value is said with the variable it came from
        except ConfigurationError as err:
            raise ConfigurationError(f"{self.describe()}: {err}") from None
        return value


def read_file(path: str) -> str:
    """A mounted secret: the platform fetches the version when the file is read.

    Read as untrusted input: opened without blocking (a FIFO with no writer would
    otherwise block the runtime, every request behind it), a regular file only
    (not /dev/zero, a FIFO or a directory), and at most MAX_FILE_BYTES.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        # OSError's text names the path, never the content.
        raise SecretUnavailable(f"cannot read DATABASE_URL_FILE {path}: {type(err).__name__}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SecretUnavailable(
                f"DATABASE_URL_FILE {path} is not a regular file ({_file_type(mode)}); "
                "mount the secret as a file"
            )
        content = _read_at_most(fd, MAX_FILE_BYTES + 1)
    except OSError as err:
        raise SecretUnavailable(f"cannot read DATABASE_URL_FILE {path}: {type(err).__name__}") from None
    finally:
        os.close(fd)
    if len(content) > MAX_FILE_BYTES:
        raise SecretUnavailable(
            f"DATABASE_URL_FILE {path} is larger than {MAX_FILE_BYTES} bytes: it holds no connection string"
        )
    try:
        return content.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretUnavailable(f"DATABASE_URL_FILE {path} is not UTF-8 text") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    while received < limit:
        chunk = os.read(fd, limit - received)
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def read_secret(name: str, *, timeout: float, emulator_host: str = "") -> str:
    """The payload of one secret version, as text."""
    from google.api_core import exceptions, retry
    from google.auth.exceptions import GoogleAuthError

    try:
        with _client(emulator_host) as client:
            response = client.access_secret_version(
                name=name,
                # Bounded: a Secret Manager outage must become a prompt SecretUnavailable, not
                # the client's default of retrying UNAVAILABLE for a minute.
                retry=retry.Retry(
                    initial=0.1,
                    maximum=1.0,
                    multiplier=2,
                    timeout=timeout,
                    predicate=retry.if_exception_type(exceptions.ServiceUnavailable),
                ),
                timeout=timeout,
            )
    except exceptions.GoogleAPICallError as err:
        raise SecretUnavailable(f"cannot read secret {name}: {type(err).__name__} ({err.code})") from None
    except exceptions.RetryError:
        raise SecretUnavailable(f"cannot read secret {name}: no answer within {timeout} s") from None
    except GoogleAuthError as err:
        raise SecretUnavailable(f"cannot read secret {name}: no credentials ({type(err).__name__})") from None
    try:
        return response.payload.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretUnavailable(f"secret {name} is not UTF-8 text") from None


def _client(emulator_host: str):
    from google.cloud.secretmanager import SecretManagerServiceClient

    if not emulator_host:
        # Application Default Credentials: the function's service account.
        return SecretManagerServiceClient()
    # A local server speaking the Secret Manager API (the tests' and the local
    # run's), like the Pub/Sub and Firestore emulators: plain gRPC, no credentials.
    import grpc
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    transport = SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(emulator_host))
    return SecretManagerServiceClient(transport=transport)


# A Secrets Manager secret's ARN: arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX.
SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:([a-z]{2}(?:-[a-z]+)+-\d):\d{12}:secret:[\w/+=.@-]+")


def aws_secret_region(arn: str) -> str:
    """The region named by a Secrets Manager secret's ARN (the client must call that region)."""
    match = SECRET_ARN.fullmatch(arn)
    if not match:
        raise ConfigurationError(
            "DATABASE_URL_SECRET_ARN must be a Secrets Manager secret's ARN, "
            f"arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME, got {arn!r}"
        )
    return match.group(1)


# One Secrets Manager client per environment (process) and (region, timeout): building one
# (a botocore session, its endpoint and service model) is most of the secret's cost on a first
# call. A race between two threads builds two, and one is kept: harmless.
_aws_clients: dict[tuple[str, float], Any] = {}


def aws_client(region: str, timeout: float) -> Any:
    """The environment's Secrets Manager client for `region`, built on first use."""
    client = _aws_clients.get((region, timeout))
    if client is None:
        import boto3
        import botocore.config

        config = botocore.config.Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            # Bounded: an outage must become a prompt SecretUnavailable, not minutes of the SDK's retries.
            retries={"mode": "standard", "total_max_attempts": 2},
        )
        client = boto3.session.Session().client("secretsmanager", region_name=region, config=config)
        _aws_clients[(region, timeout)] = client
    return client


def prepare_aws_client(arn: str, timeout: float) -> None:
    """Build the client now: called before a SnapStart snapshot, so restored copies find
    it built. It opens no connection and reads no secret until its first call."""
    aws_client(aws_secret_region(arn), timeout)


def read_aws_secret(arn: str, *, timeout: float) -> str:
    """The current version (AWSCURRENT) of a Secrets Manager secret, as text.

    boto3 is imported on this path only: it is a third of a cold start's imports
    (docs/aws-lambda.md). Credentials, and an endpoint override (AWS_ENDPOINT_URL,
    for a local server), come from boto3's own environment chain: on Lambda, the
    function's execution role.
    """
    import botocore.exceptions

    try:
        response = aws_client(aws_secret_region(arn), timeout).get_secret_value(SecretId=arn)
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "error")
        raise SecretUnavailable(f"cannot read secret {arn}: {code}") from None
    except botocore.exceptions.NoCredentialsError:
        raise SecretUnavailable(f"cannot read secret {arn}: no AWS credentials") from None
    except (botocore.exceptions.BotoCoreError, OSError) as err:
        # Connection and timeout errors; their text names the endpoint, never the payload.
        raise SecretUnavailable(f"cannot read secret {arn}: {type(err).__name__}") from None
    text = response.get("SecretString")
    if text is None:
        try:
            text = response["SecretBinary"].decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            raise SecretUnavailable(f"secret {arn} holds no UTF-8 text") from None
    return text.strip()

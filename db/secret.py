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

The last two are read once per instance and read again only when the value did
not work (see db.database).
"""

from __future__ import annotations

import re

from db.errors import ConfigurationError, SecretUnavailable

# Seconds to wait for Secret Manager before the request gets a 503.
SECRET_TIMEOUT = 5.0
SECRET_NAME = re.compile(r"projects/[^/\s]+/secrets/[^/\s]+/versions/[^/\s]+")


class DsnSource:
    """Reads the DSN. `rereadable`: whether reading it again can give a new value."""

    def __init__(
        self,
        *,
        dsn: str = "",
        path: str = "",
        secret_name: str = "",
        timeout: float = SECRET_TIMEOUT,
        emulator_host: str = "",
    ):
        if sum(bool(value) for value in (dsn, path, secret_name)) != 1:
            raise ValueError("give exactly one of dsn, path and secret_name")
        if secret_name and not SECRET_NAME.fullmatch(secret_name):
            raise ConfigurationError(
                "DATABASE_URL_SECRET must be a secret version's resource name, "
                f"projects/PROJECT/secrets/SECRET/versions/VERSION, got {secret_name!r}"
            )
        self._dsn = dsn
        self.path = path
        self.secret_name = secret_name
        self._timeout = timeout
        self._emulator_host = emulator_host

    @property
    def rereadable(self) -> bool:
        return not self._dsn

    def describe(self) -> str:
        """Where the DSN comes from, for log lines and errors (never the value)."""
        if self.secret_name:
            return f"secret {self.secret_name}"
        if self.path:
            return f"file {self.path}"
        return "DATABASE_URL"

    def read(self) -> str:
        if self._dsn:
            value = self._dsn
        elif self.path:
            value = read_file(self.path)
        else:
            value = read_secret(self.secret_name, timeout=self._timeout, emulator_host=self._emulator_host)
        # Named here, before the DSN parser would only say what a DSN must start with.
        if not value:
            raise SecretUnavailable(f"{self.describe()} is empty")
        if value.startswith("\ufeff"):
            raise SecretUnavailable(
                f"{self.describe()} begins with a byte order mark (U+FEFF): save it without one"
            )
        return value


def read_file(path: str) -> str:
    """A mounted secret: the platform fetches the version when the file is read."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except (OSError, UnicodeDecodeError) as err:
        # OSError's text names the path, never the content.
        raise SecretUnavailable(f"cannot read DATABASE_URL_FILE {path}: {type(err).__name__}") from None


def read_secret(name: str, *, timeout: float, emulator_host: str = "") -> str:
    """The payload of one secret version, as text."""
    from google.api_core import exceptions, retry
    from google.auth.exceptions import GoogleAuthError

    try:
        with _client(emulator_host) as client:
            response = client.access_secret_version(
                name=name,
                # Bounded: a Secret Manager outage must become a prompt 503, not
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

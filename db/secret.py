"""Where the connection string comes from: the environment or Secret Manager.

`DATABASE_URL` wins when set (local runs, or a secret the platform injects as an
environment variable). Otherwise `DATABASE_URL_SECRET` names a Secret Manager
version, `projects/P/secrets/S/versions/V`, read once per instance and read
again only when the database rejects the password (see db.database).

The Secret Manager client library is imported and its client created only on
that path: a function configured with DATABASE_URL never pays for it.
"""

from __future__ import annotations

import os
import re

from db.settings import ConfigurationError

SECRET_NAME = re.compile(r"projects/[^/\s]+/secrets/[^/\s]+/versions/[^/\s]+")


class SecretUnavailable(Exception):
    """Secret Manager could not be read. The message names the secret, never its value."""


class DsnSource:
    """Reads the DSN; `from_secret` says whether reading it again can change it."""

    def __init__(self, *, dsn: str | None = None, secret_name: str | None = None,
                 timeout: float = 5.0):
        if (dsn is None) == (secret_name is None):
            raise ValueError("give exactly one of dsn and secret_name")
        if secret_name is not None and not SECRET_NAME.fullmatch(secret_name):
            raise ConfigurationError(
                "DATABASE_URL_SECRET must be a secret version's resource name, "
                f"projects/PROJECT/secrets/SECRET/versions/VERSION, got {secret_name!r}"
            )
        self._dsn = dsn
        self.secret_name = secret_name
        self._timeout = timeout

    @classmethod
    def from_environment(cls, timeout: float = 5.0) -> "DsnSource":
        dsn = os.environ.get("DATABASE_URL", "").strip()
        if dsn:
            return cls(dsn=dsn)
        secret_name = os.environ.get("DATABASE_URL_SECRET", "").strip()
        if secret_name:
            return cls(secret_name=secret_name, timeout=timeout)
        raise ConfigurationError(
            "set DATABASE_URL to a connection string, or DATABASE_URL_SECRET to "
            "the Secret Manager version that holds one"
        )

    @property
    def from_secret(self) -> bool:
        return self.secret_name is not None

    def read(self) -> str:
        if self._dsn is not None:
            return self._dsn
        return read_secret(self.secret_name, timeout=self._timeout)


def read_secret(name: str, *, timeout: float) -> str:
    """The payload of one secret version, as text."""
    from google.api_core import exceptions, retry
    from google.auth.exceptions import GoogleAuthError

    try:
        with _client() as client:
            response = client.access_secret_version(
                name=name,
                # Bounded: a Secret Manager outage must become a prompt 503, not
                # the client's default of retrying UNAVAILABLE for a minute.
                retry=retry.Retry(initial=0.1, maximum=1.0, multiplier=2, timeout=timeout,
                                  predicate=retry.if_exception_type(exceptions.ServiceUnavailable)),
                timeout=timeout,
            )
    except exceptions.GoogleAPICallError as err:
        raise SecretUnavailable(f"cannot read secret {name}: {type(err).__name__} ({err.code})") from None
    except exceptions.RetryError:
        raise SecretUnavailable(f"cannot read secret {name}: no answer within {timeout} s") from None
    except GoogleAuthError as err:
        raise SecretUnavailable(f"cannot read secret {name}: no credentials ({type(err).__name__})") from None
    return response.payload.data.decode("utf-8")


def _client():
    from google.cloud import secretmanager

    emulator = os.environ.get("SECRET_MANAGER_EMULATOR_HOST", "").strip()
    if not emulator:
        # Application Default Credentials: the function's service account.
        return secretmanager.SecretManagerServiceClient()
    # A local server speaking the Secret Manager API (the tests' and the local
    # run's), like the Pub/Sub and Firestore emulators: plain gRPC, no credentials.
    import grpc
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    transport = SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(emulator))
    return secretmanager.SecretManagerServiceClient(transport=transport)

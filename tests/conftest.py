"""Shared fixtures: real servers the tests start themselves.

- postgres: PostgreSQL with SCRAM authentication on a free port (session-wide)
- postgres_tls: Debian's PostgreSQL serving TLS with a certificate for "localhost"
  from a test CA; other_ca is a CA that did not sign it
- secret_manager: a local server speaking the Secret Manager API

Application fixtures (the events table, function instances, leak checks) live
in app_fixtures.py.
"""

import os

import pytest

from app_fixtures import *  # noqa: F401,F403 - fixtures are found by name
from devtools.certs import make_ca, make_server_cert
from devtools.postgres import PostgresServer, debian_bindir
from devtools.secret_manager_emulator import SecretManagerEmulator


@pytest.fixture(scope="session")
def postgres():
    # Statements are logged so tests can count what the function sends.
    with PostgresServer(log_statements=True) as server:
        yield server


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"), "events-test-ca")


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("other-ca"), "unrelated-ca")


@pytest.fixture(scope="session")
def postgres_tls(test_ca, tmp_path_factory):
    """(server, TlsFiles): TLS only (hostssl), certificate valid for "localhost" only."""
    if debian_bindir() is None:
        message = "TLS tests need Debian's PostgreSQL (built with OpenSSL): apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    tls = make_server_cert(test_ca, tmp_path_factory.mktemp("tls"), hostnames=["localhost"])
    with PostgresServer(binaries="debian", tls=tls) as server:
        yield server, tls


@pytest.fixture(scope="session")
def _secret_manager_server():
    with SecretManagerEmulator() as emulator:
        yield emulator


@pytest.fixture
def secret_manager(_secret_manager_server):
    """The emulator, emptied and with its counters reset for each test."""
    _secret_manager_server.reset()
    yield _secret_manager_server
    if _secret_manager_server._server is None:  # a test stopped it and failed before restarting
        _secret_manager_server.start()

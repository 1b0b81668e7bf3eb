"""TLS to the database: sslmode=verify-full really verifies (the chain against
sslrootcert, and the host name), and sslmode keeps libpq's meaning whatever the
certificates' style.

- Through the function, against a PostgreSQL built with OpenSSL serving a certificate
  for "localhost" signed by a test CA.
- Python 3.13's strict verification refuses what PostgreSQL's documentation recipe and
  a plain `openssl req -x509` make (a CA without keyUsage, a server certificate without
  an Authority Key Identifier); psql accepts them, and so must the function. These
  tests connect through db.dsn's SSLContext with pg8000, to a real PostgreSQL serving
  either the complete certificate of `postgres_tls` or a hand-made one; a wrong CA, a
  wrong host name and an expired certificate stay refused.
"""

import ssl

import pytest
from app_fixtures import driver_connection
from function_harness import load_function

from devtools.certs import make_ca, make_server_cert
from devtools.deadlines import scaled
from devtools.postgres import PostgresServer


def tls_dsn(server, host, ca_path, sslmode="verify-full"):
    return server.dsn(host=host, sslmode=sslmode, sslrootcert=str(ca_path))


def test_verify_full_connects_with_the_right_ca_and_host(tls_events_server, monkeypatch):
    server, tls = tls_events_server
    module, client = load_function(monkeypatch, DATABASE_URL=tls_dsn(server, "localhost", tls.ca_cert))
    assert client.get("/").status_code == 200
    assert client.post("/", json={"kind": "over-tls"}).status_code == 201
    assert server.ssl_connection_count() == 1
    module.runtime.database().dispose()


def test_verify_full_refuses_a_certificate_from_another_ca(tls_events_server, other_ca, monkeypatch, capfd):
    server, _ = tls_events_server
    mark = server.log_position()
    _, client = load_function(monkeypatch, DATABASE_URL=tls_dsn(server, "localhost", other_ca.cert_path))
    reply = client.post("/", json={"kind": "must-not-store"})
    assert reply.status_code == 503
    # The client gave up during the handshake: the server never authenticated it.
    assert server.connections_opened(since=mark) == 0
    assert "certificate verify failed" in capfd.readouterr().out
    assert server.execute("SELECT count(*) FROM events WHERE kind = 'must-not-store'", database="app") == [
        [0]
    ]


def test_verify_full_refuses_a_certificate_for_another_host_name(tls_events_server, monkeypatch, capfd):
    server, tls = tls_events_server
    # The certificate names "localhost" only; 127.0.0.1 is the same server under another name.
    _, client = load_function(monkeypatch, DATABASE_URL=tls_dsn(server, "127.0.0.1", tls.ca_cert))
    assert client.post("/", json={"kind": "must-not-store"}).status_code == 503
    assert "certificate" in capfd.readouterr().out.lower()


def test_verify_ca_accepts_the_other_host_name(tls_events_server, monkeypatch):
    server, tls = tls_events_server
    module, client = load_function(
        monkeypatch, DATABASE_URL=tls_dsn(server, "127.0.0.1", tls.ca_cert, sslmode="verify-ca")
    )
    assert client.get("/").status_code == 200
    module.runtime.database().dispose()


def test_sslmode_disable_is_refused_by_a_tls_only_server(tls_events_server, monkeypatch):
    server, _ = tls_events_server
    _, client = load_function(monkeypatch, DATABASE_URL=server.dsn(host="localhost", sslmode="disable"))
    assert client.get("/").status_code == 503


def test_dead_tls_connection_is_replaced_by_the_pre_ping(tls_events_server, monkeypatch):
    server, tls = tls_events_server
    module, client = load_function(monkeypatch, DATABASE_URL=tls_dsn(server, "localhost", tls.ca_cert))
    assert client.post("/", json={"kind": "before"}).status_code == 201
    assert server.terminate_backends() == 1
    assert client.post("/", json={"kind": "after"}).status_code == 201
    module.runtime.database().dispose()


@pytest.fixture(scope="module")
def hand_made_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("hand-made-ca"), "hand-made-ca", hand_made=True)


@pytest.fixture(scope="module")
def hand_made_tls(hand_made_ca, tmp_path_factory):
    """(server, TlsFiles): like postgres_tls (TLS only, a certificate for "localhost"), hand-made."""
    directory = tmp_path_factory.mktemp("hand-made-tls")
    tls = make_server_cert(hand_made_ca, directory, ["localhost"], hand_made=True)
    with PostgresServer(binaries="tls", tls=tls) as server:
        yield server, tls


@pytest.fixture(params=["complete", "hand-made"])
def tls_server(request):
    """(server, TlsFiles) of each certificate style."""
    return request.getfixturevalue("postgres_tls" if request.param == "complete" else "hand_made_tls")


@pytest.fixture
def serving_an_expired_certificate(hand_made_tls, hand_made_ca, tmp_path):
    """The hand-made server, restarted to present an expired certificate from the same CA."""
    server, tls = hand_made_tls
    expired = make_server_cert(hand_made_ca, tmp_path, ["localhost"], hand_made=True, expired=True)
    with server.stopped():
        server.tls = expired
    try:
        yield server, tls
    finally:
        with server.stopped():
            server.tls = tls


def connect(server, host, ca_path, sslmode="verify-full"):
    return driver_connection(
        server.dsn(host=host, sslmode=sslmode, sslrootcert=str(ca_path)), timeout=scaled(10)
    )


def encrypted(connection) -> bool:
    try:
        return connection.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [[True]]
    finally:
        connection.close()


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca"])
def test_each_certificate_style_connects_with_the_right_ca_and_host(tls_server, sslmode):
    server, tls = tls_server
    assert encrypted(connect(server, "localhost", tls.ca_cert, sslmode))


def test_verify_ca_accepts_a_host_name_the_certificate_does_not_carry(tls_server):
    server, tls = tls_server
    assert encrypted(connect(server, "127.0.0.1", tls.ca_cert, "verify-ca"))


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca"])
def test_each_certificate_style_is_refused_against_another_ca(tls_server, other_ca, sslmode):
    server, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        connect(server, "localhost", other_ca.cert_path, sslmode)
    assert refused.value.verify_message == "unable to get local issuer certificate"


def test_each_certificate_style_is_refused_under_another_host_name(tls_server):
    server, tls = tls_server
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        connect(server, "127.0.0.1", tls.ca_cert)
    assert "mismatch" in refused.value.verify_message


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca"])
def test_an_expired_certificate_is_refused(serving_an_expired_certificate, sslmode):
    server, tls = serving_an_expired_certificate
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        connect(server, "localhost", tls.ca_cert, sslmode)
    assert refused.value.verify_message == "certificate has expired"


def test_a_server_certificate_given_as_sslrootcert_is_refused_as_libpq_refuses_it(hand_made_tls):
    """libpq trusts only self-signed roots in sslrootcert; Python 3.13 would also trust
    the server's own certificate there (VERIFY_X509_PARTIAL_CHAIN)."""
    server, tls = hand_made_tls
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        connect(server, "localhost", tls.server_cert)
    assert refused.value.verify_message == "unable to get local issuer certificate"


def test_strict_verification_refuses_the_hand_made_style(hand_made_tls):
    """What the function met on Python 3.13 before: the hand-made style is really the one strict mode refuses."""
    server, tls = hand_made_tls
    context = ssl.create_default_context(cafile=str(tls.ca_cert))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        server.connect(ssl_context=context)
    assert refused.value.verify_message in (
        "Missing Authority Key Identifier",
        "CA cert does not include key usage extension",
    )

"""sslmode=verify-full really verifies: the chain against sslrootcert, and the host name.

Runs against a PostgreSQL built with OpenSSL serving a certificate for
"localhost" signed by a test CA.
"""

from function_harness import load_function


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

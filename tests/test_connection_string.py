"""The connection string (DATABASE_URL, db.dsn): what CockroachDB Cloud hands out becomes
a correct pg8000 setup, its `options` keep their meaning, and a string that cannot be
used is a 503 naming the problem, never a crash.

- The connection string CockroachDB Cloud hands out becomes a correct pg8000 setup.
- The DSN's `options` keeps its meaning when the function adds its statement timeout.
  PostgreSQL splits `options` at whitespace, a backslash making the next character
  literal. db.dsn reads it by those rules and builds the startup parameter again
  (startup_options), so a value ending in a backslash no longer swallows the
  function's `-c statement_timeout`; the shorter of the two timeouts applies; what
  cannot be merged is refused, by the function and by deploy.sh's DSN check alike.
  Each "meaning" is the real server's: the DSN's options sent verbatim, as libpq
  sends them, against the options startup_options builds.
- A DATABASE_URL whose password holds bytes that are not UTF-8 (os.environ keeps
  them as lone surrogates) starts the instance and answers a 503 whose log line names
  the problem, never a crash at import or a 500, and the password stays out of the logs.
"""

import json
import ssl
import subprocess
import sys
from urllib.parse import parse_qsl, urlsplit

import pg8000.exceptions
import pg8000.native
import pytest
from app_fixtures import driver_connection
from function_harness import ROOT, known_secrets, load_function
from sqlalchemy import text

from core.errors import ConfigurationError
from db.database import Database, EngineOptions
from db.dsn import parse_dsn, startup_options
from db.secret import DsnSource

PASSWORD = "s3cr3t p@ss/w#rd"
ENCODED = "s3cr3t%20p%40ss%2Fw%23rd"


@pytest.fixture
def ca_file(tmp_path):
    from devtools.certs import make_ca

    return str(make_ca(tmp_path, "dsn-test-ca").cert_path)


def test_cockroach_cloud_dsn_verifies_chain_and_host_name(ca_file):
    target = parse_dsn(
        f"postgresql://maxroach:{ENCODED}@free-tier.gcp-us-east1.cockroachlabs.cloud:26257/defaultdb"
        f"?sslmode=verify-full&sslrootcert={ca_file}"
    )
    context = target.connect_args["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert target.url.drivername == "postgresql+pg8000_cockroachdb"
    assert (target.url.host, target.url.port, target.url.database) == (
        "free-tier.gcp-us-east1.cockroachlabs.cloud",
        26257,
        "defaultdb",
    )
    assert target.url.username == "maxroach"
    assert target.url.password == PASSWORD


def test_verify_ca_checks_chain_but_not_host_name(ca_file):
    context = parse_dsn(
        f"postgres://u:p@db.example.com/x?sslmode=verify-ca&sslrootcert={ca_file}"
    ).connect_args["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is False


def test_require_encrypts_without_verifying():
    context = parse_dsn("postgresql://u:p@db.example.com/x?sslmode=require").connect_args["ssl_context"]
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


def test_require_with_root_certificate_verifies_chain_like_libpq(ca_file):
    context = parse_dsn(
        f"postgresql://u:p@db.example.com/x?sslmode=require&sslrootcert={ca_file}"
    ).connect_args["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_disable_means_no_tls_at_all_not_pg8000s_fallback():
    # pg8000 reads None as "try TLS, silently fall back": disable must be False.
    assert parse_dsn("postgresql://u:p@db.example.com/x?sslmode=disable").connect_args["ssl_context"] is False


def test_remote_host_defaults_to_verify_full_with_system_cas():
    target = parse_dsn("postgresql://u:p@db.example.com:26257/defaultdb")
    assert target.sslmode == "verify-full"
    context = target.connect_args["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_local_host_defaults_to_no_tls(host):
    target = parse_dsn(f"postgresql://u:p@{host}:5432/app")
    assert target.sslmode == "disable"
    assert target.connect_args["ssl_context"] is False


@pytest.mark.parametrize(
    "scheme, port, database",
    [
        ("postgresql", 5432, "u"),
        ("postgres", 5432, "u"),
        ("cockroachdb", 26257, "defaultdb"),
    ],
)
def test_each_scheme_gets_its_default_port_and_database(scheme, port, database):
    target = parse_dsn(f"{scheme}://u:p@localhost")
    assert (target.url.port, target.url.database) == (port, database)


def test_application_name_and_cluster_options_are_passed_to_pg8000():
    target = parse_dsn(
        "postgresql://u:p@localhost/db?application_name=events-fn&options=--cluster%3Dmy-cluster-123"
    )
    assert target.connect_args["application_name"] == "events-fn"
    assert "startup_params" not in target.connect_args  # the engine merges them: startup_options
    assert startup_options(target, 4000)[0] == "--cluster=my-cluster-123 -c statement_timeout=4000"


def test_relative_sslrootcert_is_relative_to_the_functions_directory(ca_file, monkeypatch, tmp_path):
    import os

    from db.dsn import FUNCTION_ROOT

    monkeypatch.chdir(tmp_path)  # not the function's directory
    relative = os.path.relpath(ca_file, FUNCTION_ROOT)
    context = parse_dsn(f"postgresql://u:p@db.example.com/x?sslrootcert={relative}").connect_args[
        "ssl_context"
    ]
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_missing_ca_file_error_says_how_to_ship_one():
    with pytest.raises(ConfigurationError, match="ship the CA with it"):
        parse_dsn(
            "postgresql://u:p@db.example.com/x?sslmode=verify-full&sslrootcert=$HOME/.postgresql/root.crt"
        )


def test_sslrootcert_system_means_the_system_store():
    context = parse_dsn(
        "postgresql://u:p@db.example.com/x?sslmode=verify-full&sslrootcert=system"
    ).connect_args["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "dsn, names",
    [
        ("mysql://u:p@h/db", "postgresql://"),
        ("postgresql://u:p@h/db?sslmode=prefer", "sslmode=prefer"),
        ("postgresql://u:p@h/db?sslmode=bogus", "sslmode must be one of"),
        ("postgresql://u:p@h/db?sslmod=verify-full", "'sslmod'"),
        ("postgresql://u:p@h/db?sslmode=require&sslmode=disable", "'sslmode' is given twice"),
        ("postgresql://u:p@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt", "sslrootcert"),
        ("postgresql://u:p@h:99999/db", "port"),
        ("postgresql://u:p@h1,h2/db", "several hosts"),
        ("postgresql://u:p#x@h/db", "percent-encode"),
        ("postgresql://h/db", "user name"),
    ],
)
def test_malformed_dsn_is_a_configuration_error_naming_the_problem(dsn, names):
    with pytest.raises(ConfigurationError) as raised:
        parse_dsn(dsn)
    assert names in str(raised.value)


def test_configuration_errors_never_contain_the_password():
    with pytest.raises(ConfigurationError) as raised:
        parse_dsn(f"postgresql://u:{ENCODED}@h/db?sslmode=verify-full&sslcompression=1")
    assert PASSWORD not in str(raised.value) and ENCODED not in str(raised.value)


def test_describe_names_host_and_tls_mode_but_no_credentials():
    target = parse_dsn(f"postgresql://maxroach:{ENCODED}@h.example.com:26257/defaultdb?sslmode=require")
    described = target.describe()
    assert described == "h.example.com:26257/defaultdb (sslmode=require)"
    assert "maxroach" not in described


FUNCTION_TIMEOUT_MS = 4000


def dsn_with_options(server, encoded_options: str) -> str:
    return f"{server.dsn()}?options={encoded_options}"


def connect(dsn: str, options: str) -> pg8000.native.Connection:
    return driver_connection(dsn, startup_params={"options": options})


def verbatim(dsn: str) -> str:
    """The DSN's `options` as libpq sends it: unchanged."""
    return dict(parse_qsl(urlsplit(dsn).query))["options"]


def merged(dsn: str) -> str:
    return startup_options(parse_dsn(dsn), FUNCTION_TIMEOUT_MS)[0]


def settings_seen(dsn: str, options: str, *names: str) -> list[str]:
    connection = connect(dsn, options)
    try:
        return [connection.run("SELECT current_setting(:name)", name=name)[0][0] for name in names]
    finally:
        connection.close()


def timeout_seen_ms(dsn: str, options: str) -> int:
    connection = connect(dsn, options)
    try:
        return int(connection.run("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")[0][0])
    finally:
        connection.close()


def test_the_issues_dsn_ending_in_a_backslash_connects_with_the_name_psql_gets(postgres):
    """PostgreSQL drops a final lone backslash: the name is "abc" with libpq too."""
    dsn = dsn_with_options(postgres, "-c%20application_name%3Dabc%5C")
    assert settings_seen(dsn, merged(dsn), "application_name", "statement_timeout") == ["abc", "4s"]
    assert settings_seen(dsn, verbatim(dsn), "application_name") == ["abc"]


@pytest.mark.parametrize(
    "encoded, name, value",
    [
        ("-c%20application_name%3Dabc%5C%5C", "application_name", "abc\\"),
        ("-c%20application_name%3Da%5C%20b", "application_name", "a b"),
        ("--application-name%3Dx%5C%5Cy", "application_name", "x\\y"),
        # A setting of its own, because application_name turns a tab into "?".
        ("-cevents.note%3D%5C%20lead%5C%09tab%5C%5C%5C%5C", "events.note", " lead\ttab\\\\"),
    ],
)
def test_spaces_and_backslashes_in_a_value_reach_the_server_exactly(postgres, encoded, name, value):
    dsn = dsn_with_options(postgres, encoded)
    assert settings_seen(dsn, verbatim(dsn), name) == [value]
    assert settings_seen(dsn, merged(dsn), name, "statement_timeout") == [value, "4s"]


def test_the_engine_connects_with_an_options_value_ending_in_a_backslash(postgres):
    options = EngineOptions()
    database = Database(DsnSource(dsn=dsn_with_options(postgres, "-c%20application_name%3Dabc%5C")))
    query = text(
        "SELECT current_setting('application_name'), setting FROM pg_settings WHERE name = 'statement_timeout'"
    )
    try:
        shown = database.run(lambda connection: tuple(connection.execute(query).one())).value
    finally:
        database.dispose()
    assert shown == ("abc", str(options.statement_timeout_ms))


def test_the_engine_refuses_options_that_cannot_be_merged_as_a_configuration_error(postgres):
    """What the function answers 503 for, its log line naming `options`."""
    dsn = dsn_with_options(postgres, "-c%20statement_timeout%3D5S")
    database = Database(DsnSource(dsn=dsn))
    with pytest.raises(
        ConfigurationError, match="^DATABASE_URL: connection parameter 'options': "
    ) as refused:
        database.run(lambda connection: None)
    assert postgres.app_password not in str(refused.value)


def test_a_shorter_statement_timeout_in_the_dsn_is_kept(postgres):
    dsn = dsn_with_options(postgres, "-c%20statement_timeout%3D100")
    options, timeout, source = startup_options(parse_dsn(dsn), FUNCTION_TIMEOUT_MS)
    assert (timeout, source) == (100, "DATABASE_URL options")
    assert settings_seen(dsn, options, "statement_timeout") == ["100ms"]


def test_a_longer_statement_timeout_in_the_dsn_gives_way_to_the_functions(postgres):
    dsn = dsn_with_options(postgres, "-c%20statement_timeout%3D1min")
    options, timeout, source = startup_options(parse_dsn(dsn), FUNCTION_TIMEOUT_MS)
    assert (timeout, source) == (FUNCTION_TIMEOUT_MS, "DB_TIMEOUT")
    assert settings_seen(dsn, options, "statement_timeout") == ["4s"]


def test_a_dsn_that_disables_the_statement_timeout_gets_the_functions(postgres):
    dsn = dsn_with_options(postgres, "-c%20statement_timeout%3D0")
    assert startup_options(parse_dsn(dsn), FUNCTION_TIMEOUT_MS)[1:] == (FUNCTION_TIMEOUT_MS, "DB_TIMEOUT")


# Rounding (half to even, microseconds, fractions of a unit), octal and hex as the server reads
# them; none under 500 ms, so the query that reads the setting back is not cancelled by it.
@pytest.mark.parametrize(
    "value",
    [
        "500",
        "5s",
        "1.5min",
        "2h",
        "1d",
        "1000.5",
        "1001.5",
        "1500500us",
        "400us",
        "01000",
        "0x1000",
        "1e3",
        ".5s",
        "5%5C%20s",
    ],
)
def test_statement_timeout_is_read_as_postgresql_reads_it(postgres, value):
    dsn = dsn_with_options(postgres, f"-c%20statement_timeout%3D{value}")
    assert parse_dsn(dsn).statement_timeout_ms == timeout_seen_ms(dsn, verbatim(dsn))


def test_the_last_statement_timeout_in_the_dsn_counts_as_on_the_server(postgres):
    dsn = dsn_with_options(postgres, "-c%20statement_timeout%3D100%20--statement-timeout%3D200")
    assert parse_dsn(dsn).statement_timeout_ms == timeout_seen_ms(dsn, verbatim(dsn)) == 200


@pytest.mark.parametrize("value", ["5S", "5%5C%20fortnights", "-5", "abc", "99999999999"])
def test_a_statement_timeout_the_server_refuses_is_refused_naming_options(postgres, value):
    dsn = dsn_with_options(postgres, f"-c%20statement_timeout%3D{value}")
    with pytest.raises(ConfigurationError) as refused:
        parse_dsn(dsn)
    message = str(refused.value)
    assert message.startswith("connection parameter 'options': statement_timeout=")
    assert postgres.app_password not in message and dsn not in message
    with pytest.raises(pg8000.exceptions.DatabaseError):
        postgres.connect(startup_params={"options": verbatim(dsn)}).close()


@pytest.mark.parametrize("encoded", ["-e", "-c", "-c%20x", "foo", "-B%2010", "--", "--%3Dx"])
def test_options_that_cannot_be_merged_are_refused_naming_options(postgres, encoded):
    dsn = dsn_with_options(postgres, encoded)
    with pytest.raises(ConfigurationError) as refused:
        parse_dsn(dsn)
    message = str(refused.value)
    assert message.startswith("connection parameter 'options': word ")
    assert postgres.app_password not in message and dsn not in message


def test_cluster_routing_survives_unchanged():
    dsn = (
        "postgresql://maxroach:pw@events-1234.abc.aws-us-east-1.cockroachlabs.cloud:26257/defaultdb"
        "?sslmode=verify-full&sslrootcert=system&options=--cluster%3Devents-1234%20-c%20statement_timeout%3D100"
    )
    assert startup_options(parse_dsn(dsn), FUNCTION_TIMEOUT_MS) == (
        "--cluster=events-1234 -c statement_timeout=100",
        100,
        "DATABASE_URL options",
    )


def dsn_check(dsn: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deploy.dsn_check"], cwd=ROOT, input=dsn, text=True, capture_output=True
    )


def test_the_deploy_check_refuses_options_that_cannot_be_merged_with_the_functions_message(postgres):
    dsn = dsn_with_options(postgres, "-c%20statement_timeout%3D5S")
    with pytest.raises(ConfigurationError) as refused:
        parse_dsn(dsn)
    result = dsn_check(dsn)
    assert result.returncode == 2
    assert result.stderr == f"error: the function would refuse this connection string: {refused.value}\n"
    assert postgres.app_password not in result.stderr


def test_the_deploy_check_accepts_options_ending_in_a_backslash(postgres):
    assert dsn_check(dsn_with_options(postgres, "-c%20application_name%3Dabc%5C")).returncode == 0


def test_a_password_that_is_not_utf8_is_a_503_naming_the_problem(events_db, monkeypatch, capfd):
    password = "pw-\udcff-bytes"  # what os.environ holds for the byte 0xFF
    known_secrets.add(password)
    known_secrets.retire_after_this_test(password)  # checked in this test's output only
    dsn = events_db.dsn().replace(f":{events_db.app_password}@", f":{password}@")
    _, client = load_function(monkeypatch, DATABASE_URL=dsn)
    reply = client.post("/", json={"kind": "not-utf8"})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"]
    assert events_db.rows() == {}
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    errors = [line["message"] for line in lines if line["severity"] == "ERROR"]
    assert errors and "the connection string is not valid UTF-8 (character " in errors[-1]

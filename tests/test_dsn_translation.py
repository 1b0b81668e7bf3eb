"""The connection string CockroachDB Cloud hands out becomes a correct pg8000 setup."""

import ssl

import pytest

from db.dsn import parse_dsn, startup_options
from db.errors import ConfigurationError

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

"""The DSN's `options` keeps its meaning when the function adds its statement timeout.

PostgreSQL splits `options` at whitespace, a backslash making the next character
literal. db.dsn reads it by those rules and builds the startup parameter again
(startup_options), so a value ending in a backslash no longer swallows the
function's `-c statement_timeout`; the shorter of the two timeouts applies; what
cannot be merged is refused, by the function and by deploy.sh's DSN check alike.
Each "meaning" is the real server's: the DSN's options sent verbatim, as libpq
sends them, against the options startup_options builds.
"""

import subprocess
import sys
from urllib.parse import parse_qsl, urlsplit

import pg8000.exceptions
import pg8000.native
import pytest
from function_harness import ROOT
from sqlalchemy import text

from db.database import Database, EngineOptions
from db.dsn import parse_dsn, startup_options
from db.errors import ConfigurationError
from db.secret import DsnSource

FUNCTION_TIMEOUT_MS = 4000


def dsn_with_options(server, encoded_options: str) -> str:
    return f"{server.dsn()}?options={encoded_options}"


def connect(dsn: str, options: str) -> pg8000.native.Connection:
    target = parse_dsn(dsn)
    url = target.url
    return pg8000.native.Connection(
        url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
        startup_params={"options": options},
        **target.connect_args,
    )


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
    with pytest.raises(ConfigurationError, match="^connection parameter 'options': ") as refused:
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

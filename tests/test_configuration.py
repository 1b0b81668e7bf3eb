"""Every setting is read once, in config.py, and range-checked: a malformed value is a
503 whose log line names the variable and what it accepts, never a silent default."""

import pytest
from fault_helpers import error_lines
from function_harness import load_function

import config
import runtime
from config import Config, SettingError
from db.database import EngineOptions

MALFORMED = {
    "DB_POOL_SIZE": ["0", "1001", "two", "1.5"],
    "DB_POOL_TIMEOUT": ["0", "3601", "soon", "nan"],
    "DB_POOL_RECYCLE": ["0", "86401", "30m"],
    "DB_TIMEOUT": ["0.1", "inf"],
    "SECRET_TIMEOUT": ["-1"],
    "SECRET_RETRY_INTERVAL": ["never"],
    "BODY_TIMEOUT": ["0", "soon"],
    "LOG_LEVEL": ["LOUD"],
    # Google's project id rules: 6-30 characters, lowercase letters, digits, hyphens,
    # starting with a letter, not ending with a hyphen.
    "GOOGLE_CLOUD_PROJECT": [
        "short",
        "x" * 31,
        "My-Project",
        "1project",
        "project-",
        "my_project",
        "a b-cdef",
    ],
    # A malformed emulator address surfaced as a Secret Manager timeout.
    "SECRET_MANAGER_EMULATOR_HOST": ["localhost", "127.0.0.1:", "127.0.0.1:99999", "http://127.0.0.1:8085"],
}


@pytest.mark.parametrize(
    "name, value", [(name, value) for name, values in MALFORMED.items() for value in values]
)
def test_a_malformed_value_is_an_error_naming_the_variable_and_its_range(name, value):
    with pytest.raises(SettingError) as refused:
        Config.from_environ({name: value})
    message = str(refused.value)
    assert message.startswith(f"{name} must be ") and repr(value) in message


def test_every_variable_read_is_listed_and_has_a_default():
    assert Config.from_environ({}) == Config()
    assert set(MALFORMED) <= set(config.VARIABLES)
    assert len(config.VARIABLES) == len(Config._fields)


def test_values_at_the_edges_of_their_ranges_are_accepted():
    read = Config.from_environ(
        {"DB_POOL_SIZE": "1000", "DB_POOL_RECYCLE": "1", "BODY_TIMEOUT": " 0.1 ", "LOG_LEVEL": "debug"}
    )
    assert (read.pool_size, read.pool_recycle, read.body_timeout, read.log_level) == (1000, 1, 0.1, "DEBUG")


@pytest.mark.parametrize(
    "name, value",
    [
        ("GOOGLE_CLOUD_PROJECT", "events-project"),
        ("GOOGLE_CLOUD_PROJECT", "a" * 6),
        ("GOOGLE_CLOUD_PROJECT", "p" + "0" * 29),
        ("GOOGLE_CLOUD_PROJECT", "example.com:my-project"),
        ("SECRET_MANAGER_EMULATOR_HOST", "127.0.0.1:8085"),
        ("SECRET_MANAGER_EMULATOR_HOST", "localhost:1"),
        ("SECRET_MANAGER_EMULATOR_HOST", "[::1]:65535"),
    ],
)
def test_well_formed_names_and_addresses_are_accepted(name, value):
    Config.from_environ({name: value})


def test_unset_database_settings_take_the_engines_defaults_and_set_ones_reach_it():
    dsn = {"DATABASE_URL": "postgresql://app@127.0.0.1/app"}
    assert runtime.database(Config.from_environ(dsn)).options == EngineOptions()
    read = Config.from_environ({**dsn, "DB_POOL_SIZE": "4", "DB_TIMEOUT": "2.5"})
    assert runtime.database(read).options == EngineOptions(pool_size=4, db_timeout=2.5)


def test_a_malformed_setting_makes_every_request_a_503_naming_it(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="lots")
    capfd.readouterr()
    for method in ("GET", "POST"):
        reply = client.open("/", method=method, json={"kind": "x"} if method == "POST" else None)
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
    messages = [line["message"] for line in error_lines(capfd.readouterr().out)]
    assert (
        messages
        == ["configuration error: DB_POOL_SIZE must be a whole number from 1 to 1000, got 'lots'"] * 2
    )
    assert events_db.rows() == {} and events_db.connections_opened() == 0


def test_a_startup_parameter_the_user_may_not_set_is_named_with_its_fix(events_db, monkeypatch, capfd):
    """42501 while connecting is the DSN's `-c` setting, not a missing GRANT on the table."""
    dsn = events_db.dsn(options="-c log_statement=all")
    _, client = load_function(monkeypatch, DATABASE_URL=dsn)
    capfd.readouterr()
    assert client.post("/", json={"kind": "x"}).status_code == 503
    [message] = [line["message"] for line in error_lines(capfd.readouterr().out)]
    assert "42501" in message and "startup parameter log_statement" in message
    assert "GRANT INSERT" not in message
    assert events_db.rows() == {}

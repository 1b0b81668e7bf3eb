"""Item 7: numbers are read as decimal (bash would read 010 as octal 8 and choke on 09),
every range is checked with a message naming the setting, and max instances x pool size
must fit the connection budget, all before any gcloud command runs."""

import os
import re

import pytest
from gcloud_standin import DSN, PROJECT, run_deploy, watched_project


@pytest.fixture(scope="module")
def standin_env():
    """A stand-in that records whatever reaches it: nothing should."""
    standin, env = watched_project(DSN)
    yield standin, env
    standin.stop()


def dry_run(*args: str):
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": DSN}
    return run_deploy(env, "--project", PROJECT, "--dry-run", *args)


def flag(output: str, name: str) -> str:
    return re.search(rf"{name} (\S+)", output).group(1)


def test_a_leading_zero_is_decimal_not_octal():
    result = dry_run("--pool-size", "010", "--timeout", "09")
    assert result.returncode == 0, result.stderr
    deploy = next(line for line in result.stdout.splitlines() if "functions deploy" in line)
    assert flag(deploy, "--concurrency") == "10"
    assert flag(deploy, "--max-instances") == "5"  # 50 connections / 10 per instance
    assert flag(deploy, "--timeout") == "9s"
    job = next(line for line in result.stdout.splitlines() if "scheduler jobs create" in line)
    assert flag(job, "--attempt-deadline") == "39s"
    assert "DB_POOL_SIZE=10" in deploy


@pytest.mark.parametrize(
    "args, message",
    [
        (("--timeout", "3601"), "--timeout must be from 1 to 3600, got 3601"),
        (("--timeout", "0"), "--timeout must be from 1 to 3600, got 0"),
        (("--timeout", "1e3"), "--timeout must be a whole number, got '1e3'"),
        (("--pool-size", "1001"), "--pool-size must be from 1 to 1000, got 1001"),
        (("--pool-size", "-1"), "--pool-size must be a whole number, got '-1'"),
        (("--pool-size", "99999999999999999999"), "--pool-size must be from 1 to 1000"),
        (("--attempt-deadline", "1801"), "from 15 to 1800, got 1801"),
        (("--attempt-deadline", "14"), "from 15 to 1800, got 14"),
        (("--timeout", "1790"), "from 15 to 1800, got 1820"),  # the default deadline is timeout + 30
        (("--timeout", "120", "--attempt-deadline", "100"), "must be longer than --timeout (120s)"),
        (("--connection-budget", "0"), "--connection-budget must be from 1 to 100000, got 0"),
        (("--pool-size", "20", "--connection-budget", "10"), "not one instance fits"),
        (
            ("--pool-size", "10", "--max-instances", "6"),
            "6 x --pool-size 10 = 60 connections, over the --connection-budget of 50",
        ),
        (("--max-instances", "0"), "--max-instances must be from 1 to 1000, got 0"),
    ],
)
def test_out_of_range_numbers_stop_before_any_gcloud_command(standin_env, args, message):
    standin, env = standin_env
    result = run_deploy(env, "--project", PROJECT, *args)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert standin.requests == []


def test_retry_settings_are_numbers_too(standin_env):
    standin, env = standin_env
    result = run_deploy({**env, "DEPLOY_BACKOFF_MS": "0x10"}, "--project", PROJECT)
    assert result.returncode == 2 and "DEPLOY_BACKOFF_MS must be a whole number" in result.stderr
    assert standin.requests == []

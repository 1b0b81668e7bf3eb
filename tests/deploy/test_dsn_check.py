"""deploy.sh runs the function's own DSN translation (db.dsn.parse_dsn) on the DSN before
anything changes, and stops with its message: a DSN the function would refuse at run time
never reaches Secret Manager. A CA file named by a path on the deployer's machine is
refused with where to put it. A DSN already stored is checked the same way."""

import os
import shutil
import subprocess
import sys

import pytest
from function_harness import ROOT
from gcloud_standin import (
    DSN,
    PASSWORD,
    PROJECT,
    SCENARIOS,
    GoogleCloudStandIn,
    Scenario,
    encoded,
    run_deploy,
    scenario,
    watched_project,
)

from devtools.certs import make_ca

HOST = "events-1234.abc.aws-us-east-1.cockroachlabs.cloud:26257"


@pytest.fixture(scope="module")
def empty_project():
    """A stand-in that records whatever reaches it: nothing should."""
    standin, env = watched_project(DSN)
    yield standin, env
    standin.stop()


@SCENARIOS.define()
def refused_dsn_already_stored() -> Scenario:
    """A project whose secret already holds a DSN the function refuses; deploy.sh is run
    without a DSN, so it reads that one."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.enable_all()
    secret = f"projects/{PROJECT}/secrets/events-dsn"
    standin.resources[secret] = {"name": secret, "replication": {"automatic": {}}}
    standin.resources[f"{secret}/versions/1"] = {
        "name": f"{secret}/versions/1",
        "state": "ENABLED",
        "data": encoded(f"postgresql://maxroach:{PASSWORD}@{HOST}/defaultdb?sslmode=prefer"),
    }
    world = scenario(standin)
    world.deploy("--project", PROJECT)
    return world


@SCENARIOS.define()
def no_dsn_anywhere() -> Scenario:
    """A new project, deployed with --region but no DSN: the secret has none to give."""
    world = scenario(GoogleCloudStandIn(PROJECT).start())
    world.deploy("--project", PROJECT, "--region", "us-east4")
    return world


def deploy_with(project, dsn: str, *args: str):
    _, env = project
    return run_deploy({**env, "DATABASE_URL": dsn}, "--project", PROJECT, *args)


@pytest.mark.parametrize(
    "dsn, message",
    [
        (
            f"postgresql://maxroach:{PASSWORD}@{HOST}/defaultdb?sslmode=prefer",
            "sslmode=prefer is not supported",
        ),
        (f"mysql://maxroach:{PASSWORD}@{HOST}/defaultdb", "must start with one of postgresql://"),
        (
            f"postgresql://maxroach:{PASSWORD}@{HOST}/defaultdb?sslmode=verify-full&connect_timeout=5",
            "unsupported connection parameter 'connect_timeout'",
        ),
        (
            f"postgresql://maxroach:{PASSWORD}@{HOST}/defaultdb?sslmode=verify-full&sslrootcert=db/certs/ca.crt",
            "sslrootcert: cannot read file",
        ),
    ],
)
def test_a_dsn_the_function_refuses_stops_deploy_sh_before_any_request(empty_project, dsn, message):
    result = deploy_with(empty_project, dsn)
    assert result.returncode == 2
    assert "the function would refuse this connection string" in result.stderr and message in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert empty_project[0].requests == []


def test_a_ca_on_the_deployers_machine_is_refused_with_where_it_goes(empty_project, tmp_path):
    ca = make_ca(tmp_path, "deployer-machine-ca")  # a real, readable CA file, outside the function's folder
    dsn = f"postgresql://maxroach:{PASSWORD}@{HOST}/defaultdb?sslmode=verify-full&sslrootcert={ca.cert_path}"
    result = deploy_with(empty_project, dsn)
    assert result.returncode == 2
    assert f"sslrootcert={ca.cert_path} is a file on this machine only" in result.stderr
    assert "db/certs/ca.crt" in result.stderr and "sslrootcert=system" in result.stderr
    assert empty_project[0].requests == []


def test_a_ca_in_the_functions_folder_is_accepted_only_if_uploaded(tmp_path):
    """On a copy of the function's tree, so the real one is left alone: gcloud's own
    upload list decides (db/certs/ is uploaded, tests/ is not)."""
    tree = tmp_path / "function"
    tree.mkdir()
    for name in ("main.py", "requirements.txt", ".gcloudignore"):
        shutil.copy(ROOT / name, tree / name)
    for name in ("core", "db", "deploy"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("db/certs", "tests"):
        (tree / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(make_ca(tmp_path, folder.replace("/", "-")).cert_path, tree / folder / "ca.crt")

    def check(path: str) -> subprocess.CompletedProcess:
        dsn = f"postgresql://maxroach:{PASSWORD}@{HOST}/defaultdb?sslmode=verify-full&sslrootcert={path}"
        return subprocess.run(
            [sys.executable, "-m", "deploy.dsn_check"],
            cwd=tree,
            input=dsn,
            text=True,
            capture_output=True,
            env={**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")},
        )

    assert check("db/certs/ca.crt").returncode == 0
    excluded = check("tests/ca.crt")
    assert excluded.returncode == 2
    assert "sslrootcert=tests/ca.crt is excluded by .gcloudignore" in excluded.stderr


def test_the_systems_cas_are_accepted():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    dsn = f"postgresql://maxroach:{PASSWORD}@{HOST}/defaultdb?sslmode=verify-full&sslrootcert=system"
    result = run_deploy(
        {**env, "DATABASE_URL": dsn}, "--project", PROJECT, "--region", "us-east4", "--dry-run"
    )
    assert result.returncode == 0, result.stderr


def test_the_dsn_already_stored_is_checked_too():
    world = SCENARIOS.result("refused_dsn_already_stored")
    [run] = world.runs
    assert run.returncode == 2
    assert "sslmode=prefer is not supported" in run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    # It read the secret and changed nothing.
    assert [r.action for r in run.requests if r.api not in ("token",)] == [
        f"GET /v1/projects/{PROJECT}/secrets/events-dsn/versions/latest:access"
    ]


def test_without_a_dsn_anywhere_deploy_sh_stops_before_any_change():
    [run] = SCENARIOS.result("no_dsn_anywhere").runs
    assert run.returncode == 2
    assert (
        "cannot read a DSN from secret events-dsn: give the DSN (DATABASE_URL or --dsn-stdin)" in run.stderr
    )
    assert [r.method for r in run.requests if r.api not in ("token",)] == ["GET"]

"""deploy.sh as a command: its lint, help, early refusals, dry run, and a first deploy
into a new project followed by a second run that updates in place.

deploy.sh runs for real: gcloud's documented `api_endpoint_overrides/<api>` properties
point every API at tests/deploy/gcloud_standin.py, and the deployer is a service account
whose key the stand-in trusts, in a throwaway CLOUDSDK_CONFIG: nothing reaches Google
and the user's gcloud configuration is untouched. The other files here each cover one
behaviour area of the same runs.
"""

import os
import pathlib
import shutil
import subprocess

import pytest
from function_harness import ROOT
from gcloud_standin import DSN, PASSWORD, PROJECT, REGION, SCENARIOS, gcloud_env, run_deploy, scratch_dir

needs_gcloud = pytest.mark.skipif(
    shutil.which("gcloud") is None and not os.environ.get("CI"),
    reason="the Google Cloud CLI is not installed (on CI these tests must run)",
)
SCHEDULER_LOCATION = REGION


@pytest.fixture(scope="module")
def two_runs():
    """The first deploy into a new project, then a second run that updates in place."""
    if shutil.which("gcloud") is None and not os.environ.get("CI"):
        pytest.skip("the Google Cloud CLI is not installed (on CI these tests must run)")
    world = SCENARIOS.result("new_project")
    return world.standin, world.runs[0], world.runs[1]


def dry_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**env, **extra}


def test_shellcheck_passes():
    shellcheck = shutil.which("shellcheck") or str(pathlib.Path(os.sys.executable).with_name("shellcheck"))
    result = subprocess.run(
        [shellcheck, "-x", str(ROOT / "deploy.sh"), str(ROOT / "deploy" / "common.sh")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout


def test_help_explains_every_setting():
    result = subprocess.run([str(ROOT / "deploy.sh"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for setting in (
        "PROJECT",
        "SECRET",
        "REGION",
        "SCHEDULER_LOCATION",
        "MIN_INSTANCES",
        "RUNTIME_UPDATE_POLICY",
        "IMAGE_CLEANUP_DAYS",
        "NOTIFICATION_CHANNEL",
        "--rollback-secret",
        "--no-alerts",
        "--env KEY=VALUE",
        "python -m db migrate",
        "SCHEDULE",
        "TIME_ZONE",
        "POOL_SIZE",
        "CONNECTION_BUDGET",
        "MAX_INSTANCES",
        "TIMEOUT",
        "ATTEMPT_DEADLINE",
        "INGRESS",
        "RUNTIME",
        "MEMORY",
        "CPU",
        "SECRET_DELIVERY",
        "SECRET_LOCATIONS",
        "VPC_CONNECTOR",
        "EGRESS_SETTINGS",
        "--no-smoke-test",
        "--smoke-test-only",
        "--delete",
        "--delete-secret",
        "--dry-run",
        "--dsn-stdin",
        "DEPLOY_BACKOFF_MS",
        "DEPLOY_IAM_RETRY_SECONDS",
        "DEPLOY_SMOKE_RETRY_SECONDS",
    ):
        assert setting in result.stdout, setting


def test_missing_project_fails_before_anything_runs():
    result = subprocess.run(
        [str(ROOT / "deploy.sh")], capture_output=True, text=True, env={**os.environ, "PROJECT": ""}
    )
    assert result.returncode == 2
    assert "set --project" in result.stderr


def test_missing_gcloud_fails_early_and_clearly(tmp_path):
    python = shutil.which("python3")
    (tmp_path / "python3").symlink_to(python)
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "deploy.sh"), "--project", PROJECT],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path}:/usr/bin/env-none"},
    )
    assert result.returncode == 2
    assert "gcloud is not installed" in result.stderr


@needs_gcloud
def test_not_logged_in_fails_early_and_clearly():
    env = gcloud_env(scratch_dir(), standin=None)
    result = run_deploy({**env, "DATABASE_URL": DSN}, "--project", PROJECT)
    assert result.returncode == 2
    assert "not logged in" in result.stderr


def test_dry_run_prints_every_command_and_never_the_dsn():
    result = run_deploy(dry_env(DATABASE_URL=DSN), "--project", PROJECT, "--dry-run")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ gcloud")]
    assert any("services enable" in c for c in commands)
    assert any("functions deploy" in c for c in commands)
    assert any("scheduler jobs create http" in c for c in commands)
    assert PASSWORD not in result.stdout + result.stderr
    assert f"--region {REGION}" in result.stdout
    assert "alpha monitoring policies create" in result.stdout
    assert f"+ gcloud beta run services update events --region {REGION} --max 25" in result.stdout


def test_dry_run_without_dsn_or_region_asks_for_the_region():
    result = run_deploy(dry_env(), "--project", PROJECT, "--dry-run")
    assert result.returncode == 2
    assert "pass --region" in result.stderr


def test_dsn_from_stdin_picks_the_region_and_is_never_printed():
    result = run_deploy(dry_env(), "--project", PROJECT, "--dsn-stdin", "--dry-run", stdin=DSN + "\n")
    assert result.returncode == 0, result.stderr
    assert f"region: {REGION}" in result.stdout
    assert "secrets versions add" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_the_dsn_check_runs_in_the_venv_events_venv_names(tmp_path):
    """deploy.sh checks the DSN with the function's own code, in the virtual environment
    scripts/bootstrap.sh made: EVENTS_VENV moves it for both."""
    used = tmp_path / "used"
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/usr/bin/env bash\ntouch "{used}"\nexec "{os.sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = dry_env(DATABASE_URL=DSN, EVENTS_VENV=str(tmp_path / "venv"))
    env.pop("PYTHON", None)
    result = run_deploy(env, "--project", PROJECT, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert used.exists()


def test_explicit_region_needs_no_dsn():
    result = run_deploy(dry_env(), "--project", PROJECT, "--region", "europe-west1", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "--region europe-west1" in result.stdout
    assert "secrets versions add" not in result.stdout  # nothing to store


def test_first_run_succeeds_and_second_run_updates_in_place(two_runs):
    _, first, second = two_runs
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.find("PATCH", r"/functions/events$")
    assert second.find("PATCH", r"/jobs/events-schedule$")
    assert not second.find("POST", r"/serviceAccounts$")
    assert not second.find("POST", r"/secrets$")


def test_every_regional_resource_is_in_the_clusters_region(two_runs):
    _, first, second = two_runs
    regional = [r for r in first.requests + second.requests if "/locations/" in r.path]
    functions = [r.path for r in regional if r.api in ("cloudfunctions", "run")]
    jobs = [r.path for r in regional if r.api == "cloudscheduler"]
    assert functions and all(f"/locations/{REGION}/" in path for path in functions), functions
    assert jobs and all(f"/locations/{SCHEDULER_LOCATION}/" in path for path in jobs), jobs
    assert f"region: {REGION}" in first.stdout


def test_summary_names_region_url_accounts_job_and_budget(two_runs):
    _, first, _ = two_runs
    for words in (
        "region:",
        "url:",
        "events-runtime@",
        "events-invoker@",
        "events-build@",
        f"events-schedule in {SCHEDULER_LOCATION}",
        "connection budget: 50 >= max 25 instances x pool size 1 (min 0)",
        "maximum holds per revision and for the service and can be exceeded briefly",
        "python -m db migrate",
        "labels:            function=events,managed-by=deploy-sh,cluster=events-1234",
    ):
        assert words in first.stdout, words

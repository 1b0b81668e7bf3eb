"""deploy.sh runs for real: the Google Cloud CLI against a local stand-in of its APIs.

gcloud's documented `api_endpoint_overrides/<api>` properties point every API at
tests/gcloud_standin.py, and the deployer is a service account whose key the
stand-in trusts, in a throwaway CLOUDSDK_CONFIG: nothing reaches Google and the
user's gcloud configuration is untouched. The scenario here is the first deploy
into a new project followed by a second run (gcloud_standin.new_project); the
behaviours a new project exposes have their own test_deploy_*.py files.
"""

import base64
import io
import json
import os
import pathlib
import shutil
import subprocess
import zipfile

import pytest
from function_harness import ROOT
from gcloud_standin import DSN, PASSWORD, PROJECT, REGION, SCENARIOS, gcloud_env, run_deploy, scratch_dir

needs_gcloud = pytest.mark.skipif(
    shutil.which("gcloud") is None and not os.environ.get("CI"),
    reason="the Google Cloud CLI is not installed (on CI these tests must run)",
)
SCHEDULER_LOCATION = "us-east5"  # us-east4 has no Cloud Scheduler in this project: the nearest that has


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
    result = subprocess.run([shellcheck, str(ROOT / "deploy.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_help_explains_every_setting():
    result = subprocess.run([str(ROOT / "deploy.sh"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for setting in (
        "PROJECT",
        "SECRET",
        "REGION",
        "CLUSTER_REGION",
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


def test_dsn_from_stdin_picks_the_region_and_is_never_printed():
    result = run_deploy(dry_env(), "--project", PROJECT, "--dsn-stdin", "--dry-run", stdin=DSN + "\n")
    assert result.returncode == 0, result.stderr
    assert f"region: {REGION}" in result.stdout
    assert "secrets versions add" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_cluster_without_region_in_its_host_needs_region_or_cluster_region():
    dsn = f"postgresql://u:{PASSWORD}@events.cockroachlabs.cloud:26257/defaultdb"
    result = run_deploy(dry_env(DATABASE_URL=dsn), "--project", PROJECT, "--dry-run")
    assert result.returncode == 2
    assert "set REGION" in result.stderr and "CLUSTER_REGION" in result.stderr
    named = run_deploy(
        dry_env(DATABASE_URL=dsn), "--project", PROJECT, "--dry-run", "--cluster-region", "gcp-europe-west1"
    )
    assert named.returncode == 0 and "--region europe-west1" in named.stdout


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


def test_every_regional_resource_is_in_the_clusters_region_but_the_job(two_runs):
    _, first, second = two_runs
    regional = [r for r in first.requests + second.requests if "/locations/" in r.path]
    functions = [r.path for r in regional if r.api in ("cloudfunctions", "run")]
    jobs = [r.path for r in regional if r.api == "cloudscheduler"]
    assert functions and all(f"/locations/{REGION}/" in path for path in functions), functions
    assert jobs and all(f"/locations/{SCHEDULER_LOCATION}/" in path for path in jobs), jobs
    assert f"region: {REGION}" in first.stdout


def test_function_is_private_with_concurrency_and_max_instances_from_the_budget(two_runs):
    _, first, _ = two_runs
    [create] = first.find("POST", rf"/v2/projects/{PROJECT}/locations/{REGION}/functions$")
    service = create.body["serviceConfig"]
    assert create.query["functionId"] == ["events"]
    assert create.body["buildConfig"]["entryPoint"] == "handler"
    assert service["maxInstanceRequestConcurrency"] == 1
    assert service["maxInstanceCount"] == 50  # the default budget of 50 connections / pool size 1
    assert service["environmentVariables"]["DB_POOL_SIZE"] == "1"
    assert service["serviceAccountEmail"] == f"events-runtime@{PROJECT}.iam.gserviceaccount.com"
    assert service["timeoutSeconds"] == 60
    # Private: nothing grants allUsers anything, anywhere.
    assert not any("allUsers" in json.dumps(r.body) for r in first.requests if isinstance(r.body, dict))


def test_only_the_invoker_account_may_invoke_the_function(two_runs):
    _, first, _ = two_runs
    [binding] = first.find("POST", rf"/locations/{REGION}/services/events:setIamPolicy$")
    assert binding.body["policy"]["bindings"] == [
        {
            "members": [f"serviceAccount:events-invoker@{PROJECT}.iam.gserviceaccount.com"],
            "role": "roles/run.invoker",
        }
    ]


def test_secret_access_is_granted_on_the_one_secret_not_the_project(two_runs):
    standin, first, _ = two_runs
    [binding] = [r for r in first.find("POST", r"/secrets/events-dsn:setIamPolicy$") if r.status == 200]
    assert binding.body["policy"]["bindings"] == [
        {
            "members": [f"serviceAccount:events-runtime@{PROJECT}.iam.gserviceaccount.com"],
            "role": "roles/secretmanager.secretAccessor",
        }
    ]
    project_policy = json.dumps(standin.policies[f"projects/{PROJECT}"])
    assert "events-runtime" not in project_policy and "events-invoker" not in project_policy


def test_uploaded_source_is_the_function_code_only(two_runs):
    standin, *_ = two_runs
    upload = next(iter(standin.uploads.values()))
    # Files only: gcloud's zipper also writes (empty) entries for ignored folders.
    names = {name for name in zipfile.ZipFile(io.BytesIO(upload)).namelist() if not name.endswith("/")}
    assert {"main.py", "requirements.txt", "db/schema.sql", "core/events.py"} <= names
    assert not any(name.startswith(("tests/", "devtools/", ".venv/", ".local/", "deploy")) for name in names)


def test_dsn_goes_only_into_the_secret_and_never_into_output(two_runs):
    standin, first, second = two_runs
    [version] = standin.find("POST", r"/secrets/events-dsn:addVersion$")
    assert base64.urlsafe_b64decode(version.body["payload"]["data"]).decode() == DSN
    others = [r for r in standin.requests if r is not version]
    assert not any(PASSWORD in json.dumps(r.body, default=str) for r in others)
    assert PASSWORD not in first.stdout + first.stderr + second.stdout + second.stderr


def test_scheduler_job_uses_oidc_with_the_function_url_and_retries(two_runs):
    _, first, second = two_runs
    [create] = first.find("POST", rf"/v1/projects/{PROJECT}/locations/{SCHEDULER_LOCATION}/jobs$")
    url = first.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]["serviceConfig"]["uri"]
    target = create.body["httpTarget"]
    assert target["uri"] == url
    assert target["httpMethod"] == "POST"
    assert target["headers"] == {"Content-Type": "application/json"}
    assert target["oidcToken"] == {
        "serviceAccountEmail": f"events-invoker@{PROJECT}.iam.gserviceaccount.com",
        "audience": url,
    }
    assert create.body["retryConfig"]["retryCount"] > 0
    assert create.body["retryConfig"]["minBackoffDuration"] == "10s"
    assert int(create.body["attemptDeadline"].rstrip("s")) > 60  # longer than the function's timeout
    [update] = second.find("PATCH", r"/jobs/events-schedule$")
    assert update.body["schedule"] == "0 * * * *"


def test_summary_names_region_url_accounts_job_and_budget(two_runs):
    _, first, _ = two_runs
    for words in (
        "region:",
        "url:",
        "events-runtime@",
        "events-invoker@",
        "events-build@",
        f"events-schedule in {SCHEDULER_LOCATION}",
        "connection budget: 50 >= max 50 instances x pool size 1",
    ):
        assert words in first.stdout, words

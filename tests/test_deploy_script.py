"""deploy.sh runs for real: the Google Cloud CLI against a local stand-in of its APIs.

gcloud's documented `api_endpoint_overrides/<api>` properties point every API at
tests/gcloud_standin.py and `auth/access_token_file` supplies a token, in a
throwaway CLOUDSDK_CONFIG, so nothing reaches Google and the user's gcloud
configuration is untouched.
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest

from function_harness import ROOT
from gcloud_standin import APIS, GoogleCloudStandIn

PROJECT = "demo-project"
PASSWORD = "s3cret-Passw0rd"
DSN = f"postgresql://maxroach:{PASSWORD}@events-1234.abc.aws-us-east-1.cockroachlabs.cloud:26257/defaultdb?sslmode=verify-full"
REGION = "us-east4"  # nearest Cloud Functions region to aws-us-east-1

needs_gcloud = pytest.mark.skipif(shutil.which("gcloud") is None and not os.environ.get("CI"),
                                  reason="the Google Cloud CLI is not installed (on CI these tests must run)")


def gcloud_env(config_dir: pathlib.Path, standin: GoogleCloudStandIn | None, token: bool = True) -> dict:
    env = {**os.environ, "CLOUDSDK_CONFIG": str(config_dir), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    env.pop("DATABASE_URL", None)
    settings = {"core/disable_usage_reporting": "true"}
    if token:
        (config_dir / "token").write_text("standin-access-token\n")
        settings["auth/access_token_file"] = str(config_dir / "token")
    if standin is not None:
        settings.update({f"api_endpoint_overrides/{api}": standin.url for api in APIS})
    for name, value in settings.items():
        subprocess.run(["gcloud", "config", "set", name, value], env=env, check=True, capture_output=True)
    return env


def deploy(env, *args, stdin=None):
    return subprocess.run([str(ROOT / "deploy.sh"), *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """deploy.sh run twice against one stand-in: the first creates, the second updates."""
    if shutil.which("gcloud") is None and not os.environ.get("CI"):
        pytest.skip("the Google Cloud CLI is not installed (on CI these tests must run)")
    standin = GoogleCloudStandIn().start()
    env = gcloud_env(tmp_path_factory.mktemp("gcloud"), standin)
    first = deploy({**env, "DATABASE_URL": DSN}, "--project", PROJECT, "--secret", "events-dsn")
    first_count = len(standin.requests)
    second = deploy(env, "--project", PROJECT, "--secret", "events-dsn", "--schedule", "0 * * * *")
    yield standin, first, second, first_count
    standin.stop()


def test_shellcheck_passes():
    shellcheck = shutil.which("shellcheck") or str(pathlib.Path(os.sys.executable).with_name("shellcheck"))
    result = subprocess.run([shellcheck, str(ROOT / "deploy.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_help_explains_every_setting():
    result = subprocess.run([str(ROOT / "deploy.sh"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for setting in ("PROJECT", "SECRET", "REGION", "CLUSTER_REGION", "SCHEDULE", "TIME_ZONE", "POOL_SIZE",
                    "CONNECTION_BUDGET", "TIMEOUT", "INGRESS", "--dry-run", "--dsn-stdin"):
        assert setting in result.stdout


def test_missing_project_fails_before_anything_runs():
    result = subprocess.run([str(ROOT / "deploy.sh")], capture_output=True, text=True,
                            env={**os.environ, "PROJECT": ""})
    assert result.returncode == 2
    assert "set --project" in result.stderr


def test_missing_gcloud_fails_early_and_clearly(tmp_path):
    python = shutil.which("python3")
    (tmp_path / "python3").symlink_to(python)
    result = subprocess.run(["/bin/bash", str(ROOT / "deploy.sh"), "--project", PROJECT],
                            capture_output=True, text=True, env={"PATH": f"{tmp_path}:/usr/bin/env-none"})
    assert result.returncode == 2
    assert "gcloud is not installed" in result.stderr


@needs_gcloud
def test_not_logged_in_fails_early_and_clearly(tmp_path):
    env = gcloud_env(tmp_path, standin=None, token=False)
    result = deploy({**env, "DATABASE_URL": DSN}, "--project", PROJECT)
    assert result.returncode == 2
    assert "not logged in" in result.stderr


def test_dry_run_prints_every_command_and_never_the_dsn():
    result = deploy({**os.environ, "DATABASE_URL": DSN}, "--project", PROJECT, "--dry-run")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ gcloud")]
    assert any("functions deploy" in c for c in commands)
    assert any("scheduler jobs create http" in c for c in commands)
    assert PASSWORD not in result.stdout + result.stderr
    assert f"--region {REGION}" in result.stdout


def test_dsn_from_stdin_picks_the_region_and_is_never_printed():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = deploy(env, "--project", PROJECT, "--dsn-stdin", "--dry-run", stdin=DSN + "\n")
    assert result.returncode == 0, result.stderr
    assert f"region: {REGION}" in result.stdout
    assert "secrets versions add" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_cluster_without_region_in_its_host_needs_region_or_cluster_region():
    dsn = f"postgresql://u:{PASSWORD}@events.cockroachlabs.cloud:26257/defaultdb"
    result = deploy({**os.environ, "DATABASE_URL": dsn}, "--project", PROJECT, "--dry-run")
    assert result.returncode == 2
    assert "set REGION" in result.stderr and "CLUSTER_REGION" in result.stderr
    named = deploy({**os.environ, "DATABASE_URL": dsn}, "--project", PROJECT, "--dry-run",
                   "--cluster-region", "gcp-europe-west1")
    assert named.returncode == 0 and "--region europe-west1" in named.stdout


def test_explicit_region_needs_no_dsn():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = deploy(env, "--project", PROJECT, "--region", "europe-west1", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "--region europe-west1" in result.stdout
    assert "secrets versions add" not in result.stdout  # nothing to store


def test_first_run_succeeds_and_second_run_updates_in_place(two_runs):
    standin, first, second, first_count = two_runs
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    later = standin.requests[first_count:]
    assert any(r.method == "PATCH" and r.path.endswith("/functions/events") for r in later)
    assert any(r.method == "PATCH" and r.path.endswith("/jobs/events-schedule") for r in later)
    assert not any(r.method == "POST" and r.path.endswith("/serviceAccounts") for r in later)


def test_every_regional_resource_is_in_the_clusters_region(two_runs):
    standin, first, *_ = two_runs
    regional = [r.path for r in standin.requests if "/locations/" in r.path]
    assert regional
    assert all(f"/locations/{REGION}/" in path for path in regional), regional
    assert f"region: {REGION}" in first.stdout


def test_function_is_private_with_concurrency_and_max_instances_from_the_budget(two_runs):
    standin, *_ = two_runs
    [create] = standin.find("POST", rf"/v2/projects/{PROJECT}/locations/{REGION}/functions$")
    service = create.body["serviceConfig"]
    assert create.query["functionId"] == ["events"]
    assert create.body["buildConfig"]["entryPoint"] == "handler"
    assert service["maxInstanceRequestConcurrency"] == 1
    assert service["maxInstanceCount"] == 50  # the default budget of 50 connections / pool size 1
    assert service["environmentVariables"] == {
        "DATABASE_URL_SECRET": f"projects/{PROJECT}/secrets/events-dsn/versions/latest", "DB_POOL_SIZE": "1"}
    assert service["serviceAccountEmail"] == f"events-runtime@{PROJECT}.iam.gserviceaccount.com"
    assert service["timeoutSeconds"] == 60
    # Private: nothing grants allUsers anything, anywhere.
    assert not any("allUsers" in json.dumps(r.body) for r in standin.requests if isinstance(r.body, dict))


def test_only_the_invoker_account_may_invoke_the_function(two_runs):
    standin, *_ = two_runs
    [binding, *_] = standin.find("POST", rf"/locations/{REGION}/services/events:setIamPolicy$")
    assert binding.body["policy"]["bindings"] == [
        {"members": [f"serviceAccount:events-invoker@{PROJECT}.iam.gserviceaccount.com"], "role": "roles/run.invoker"}]


def test_secret_access_is_granted_on_the_one_secret_not_the_project(two_runs):
    standin, *_ = two_runs
    [binding, *_] = standin.find("POST", r"/secrets/events-dsn:setIamPolicy$")
    assert binding.body["policy"]["bindings"] == [
        {"members": [f"serviceAccount:events-runtime@{PROJECT}.iam.gserviceaccount.com"],
         "role": "roles/secretmanager.secretAccessor"}]
    assert standin.find("POST", rf"^/v1/projects/{PROJECT}:setIamPolicy$") == []


def test_uploaded_source_is_the_function_code_only(two_runs):
    import io
    import zipfile

    standin, *_ = two_runs
    upload = next(iter(standin.uploads.values()))
    # Files only: gcloud's zipper also writes (empty) entries for ignored folders.
    names = {name for name in zipfile.ZipFile(io.BytesIO(upload)).namelist() if not name.endswith("/")}
    assert {"main.py", "requirements.txt", "db/schema.sql", "core/events.py"} <= names
    assert not any(name.startswith(("tests/", "devtools/", ".venv/", ".local/", "deploy")) for name in names)


def test_dsn_goes_only_into_the_secret_and_never_into_output(two_runs):
    standin, first, second, _ = two_runs
    [version] = standin.find("POST", r"/secrets/events-dsn:addVersion$")
    import base64
    assert base64.urlsafe_b64decode(version.body["payload"]["data"]).decode() == DSN
    others = [r for r in standin.requests if r is not version]
    assert not any(PASSWORD in json.dumps(r.body, default=str) for r in others)
    assert PASSWORD not in first.stdout + first.stderr + second.stdout + second.stderr


def test_scheduler_job_uses_oidc_with_the_function_url_and_retries(two_runs):
    standin, *_ = two_runs
    [create] = standin.find("POST", rf"/v1/projects/{PROJECT}/locations/{REGION}/jobs$")
    url = standin.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]["serviceConfig"]["uri"]
    target = create.body["httpTarget"]
    assert target["uri"] == url
    assert target["httpMethod"] == "POST"
    assert target["headers"] == {"Content-Type": "application/json"}
    assert target["oidcToken"] == {"serviceAccountEmail": f"events-invoker@{PROJECT}.iam.gserviceaccount.com",
                                   "audience": url}
    assert create.body["retryConfig"]["retryCount"] > 0
    assert create.body["retryConfig"]["minBackoffDuration"] == "10s"
    assert int(create.body["attemptDeadline"].rstrip("s")) > 60  # longer than the function's timeout
    [update] = standin.find("PATCH", r"/jobs/events-schedule$")
    assert update.body["schedule"] == "0 * * * *"


def test_summary_names_region_url_accounts_job_and_budget(two_runs):
    _, first, *_ = two_runs
    for words in ("region:", "url:", "events-runtime@", "events-invoker@", "events-schedule",
                  "connection budget: 50 = max 50 instances x pool size 1"):
        assert words in first.stdout

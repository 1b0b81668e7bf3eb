"""`./deploy.sh --delete` removes what deploy.sh created (the job, the function, the
bindings, the service accounts; the secret only with --delete-secret), each step safe to
repeat, says what it leaves (APIs, images, a connector, Cloud NAT, a reserved IP), and
--dry-run prints the commands without running them. It runs on a copy of the project as
the first deploy into a new project left it, reading the region from the secret and the
regions offering functions."""

import os

import pytest
from gcloud_standin import DSN, PROJECT, REGION, SCENARIOS, Scenario, run_deploy, scenario

ACCOUNTS = ("events-runtime", "events-invoker", "events-build")


@SCENARIOS.define(after="new_project_first_run")
def deployed_then_deleted(first_run: Scenario) -> Scenario:
    world = scenario(first_run.extra["deployed"])
    world.deploy("--project", PROJECT, "--delete")
    world.deploy("--project", PROJECT, "--delete", "--delete-secret")
    return world


@pytest.fixture(scope="module")
def runs():
    return SCENARIOS.result("deployed_then_deleted").runs


def test_delete_removes_job_function_bindings_and_accounts_but_keeps_the_secret(runs):
    first = runs[0]
    assert first.returncode == 0, first.stderr
    left = first.resources
    assert not [
        name for name in left if "/jobs/" in name or "/functions/" in name or "/serviceAccounts/" in name
    ]
    secret = f"projects/{PROJECT}/secrets/events-dsn"
    assert secret in left and f"{secret}/versions/1" in left
    assert "kept (it holds the DSN; add --delete-secret to delete it)" in first.stdout
    deletes = {r.path.rsplit("/", 1)[-1] for r in first.requests if r.method == "DELETE" and r.status == 200}
    assert {"events-schedule", "events"} | {
        f"{a}@{PROJECT}.iam.gserviceaccount.com" for a in ACCOUNTS
    } <= deletes
    assert first.find("GET", rf"^/v2/projects/{PROJECT}/locations$")  # the region, as deploying chose it


def test_delete_says_what_it_leaves_in_place(runs):
    left = runs[0].stdout.split("Left in place")[1]
    for words in (
        "the enabled APIs",
        f"repository gcf-artifacts in {REGION}",
        "Serverless VPC Access connector",
        "Cloud NAT",
        "reserved static IP address",
    ):
        assert words in left, words


def test_bindings_are_removed_before_the_accounts(runs):
    first = runs[0]
    policies = [r for r in first.requests if r.path.endswith(":setIamPolicy") and r.status == 200]
    members = [m for r in policies for b in r.body["policy"].get("bindings", []) for m in b["members"]]
    assert not any(account in m for account in ACCOUNTS for m in members)
    first_account_deleted = min(
        r.at for r in first.requests if r.method == "DELETE" and "/serviceAccounts/" in r.path
    )
    assert all(r.at < first_account_deleted for r in policies)


def test_delete_again_is_safe_and_delete_secret_removes_the_secret(runs):
    second = runs[1]
    assert second.returncode == 0, second.stderr
    assert "not there (nothing to do)" in second.stdout
    assert f"projects/{PROJECT}/secrets/events-dsn" not in second.resources
    assert "removed secret events-dsn and its versions" in second.stdout


def test_dry_run_prints_every_deletion_and_runs_none():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = run_deploy(
        env, "--project", PROJECT, "--region", REGION, "--delete", "--delete-secret", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ gcloud")]
    for words in (
        "scheduler jobs delete events-schedule",
        "functions delete events",
        "secrets remove-iam-policy-binding events-dsn",
        "projects remove-iam-policy-binding",
        "iam service-accounts delete events-runtime@",
        "iam service-accounts delete events-invoker@",
        "iam service-accounts delete events-build@",
        "secrets delete events-dsn",
    ):
        assert any(words in c for c in commands), words


def test_delete_needs_no_dsn_and_refuses_one_from_stdin():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = run_deploy(env, "--project", PROJECT, "--delete", "--dsn-stdin", "--dry-run", stdin=DSN)
    assert result.returncode == 2 and "--dsn-stdin is for deploying" in result.stderr

"""`./deploy.sh --delete` finds what deploy.sh created by its labels, in every region (the
functions, their jobs by description, the metrics and alert policies, the bindings, the service
accounts; the secret only with --delete-secret), finishes what a delete that failed halfway
left, never exits 0 while a function it made still serves, says what it leaves, and --dry-run
prints the commands without running them. It runs, without --region, on a copy of the project
as the first deploy into a new project left it, with a second copy of the function in another
region. `--rollback-secret` stores the version before the latest again."""

import os

import pytest
from gcloud_standin import DSN, PROJECT, REGION, SCENARIOS, Scenario, encoded, run_deploy, scenario

ACCOUNTS = ("events-runtime", "events-invoker", "events-build")


@SCENARIOS.define(after="new_project_first_run")
def rolled_back_then_deleted(first_run: Scenario) -> Scenario:
    """A bad DSN stored as version 2 by hand, rolled back; then --delete by a deployer who may
    not delete the function; then, with a second copy of the function in us-east1 (one
    deploy.sh made there earlier), --delete --delete-secret without --region once they may."""
    world = scenario(first_run.extra["deployed"].clone())
    secret = f"projects/{PROJECT}/secrets/events-dsn"
    bad = encoded(DSN.replace("s3cret", "wrong"))
    world.standin.resources[f"{secret}/versions/2"] = {
        "name": f"{secret}/versions/2",
        "state": "ENABLED",
        "data": bad,
    }
    world.deploy("--project", PROJECT, "--rollback-secret")
    world.standin.refuse_delete = f"projects/{PROJECT}/locations/{REGION}/functions/events"
    world.deploy("--project", PROJECT, "--delete")
    world.standin.refuse_delete = ""
    earlier = world.standin.seed_function("us-east1", "events")
    earlier["labels"] = {"function": "events", "managed-by": "deploy-sh", "scheduler-location": "us-east1"}
    world.deploy("--project", PROJECT, "--delete", "--delete-secret")
    return world


@pytest.fixture(scope="module")
def runs():
    """The rollback, the refused delete, the delete."""
    return SCENARIOS.result("rolled_back_then_deleted").runs


def test_delete_without_region_finds_the_function_in_every_region_it_was_deployed_to(runs):
    deleted = runs[2]
    assert deleted.returncode == 0, deleted.stderr
    assert "functions in: us-east4 us-east1" in deleted.stdout  # in the order Google lists them
    for region in ("us-east1", REGION):
        assert deleted.find("DELETE", rf"/locations/{region}/functions/events$")
    assert not [name for name in deleted.resources if "/functions/" in name or "/jobs/" in name]
    assert "no function labelled function=events, managed-by=deploy-sh is left" in deleted.stdout


def test_delete_removes_the_metrics_and_alert_policies(runs):
    deleted = runs[2]
    assert not [name for name in deleted.resources if "/metrics/" in name or "/alertPolicies/" in name]
    assert len(deleted.find("DELETE", r"/alertPolicies/\d+$")) == 2
    assert len(deleted.find("DELETE", r"/metrics/events-")) == 5


def test_delete_never_ends_well_while_the_function_still_serves(runs):
    refused = runs[1]
    assert refused.returncode != 0
    assert "could not remove function events in us-east4" in refused.stderr
    assert f"projects/{PROJECT}/locations/{REGION}/functions/events" in refused.resources


def test_rollback_stores_the_previous_dsn_as_a_new_version(runs):
    rollback = runs[0]
    assert rollback.returncode == 0, rollback.stderr
    secret = f"projects/{PROJECT}/secrets/events-dsn"
    assert rollback.resources[f"{secret}/versions/3"]["data"] == encoded(DSN)
    assert rollback.resources[f"{secret}/versions/2"]["state"] == "ENABLED"  # kept for the record
    assert "the DSN of version 1 is the latest of events-dsn again" in rollback.stdout
    assert "s3cret" not in rollback.stdout + rollback.stderr


def test_a_delete_after_one_that_failed_halfway_removes_the_rest(runs):
    _, refused, deleted = runs
    assert deleted.returncode == 0, deleted.stderr
    assert not [
        name
        for name in deleted.resources
        if "/jobs/" in name or "/functions/" in name or "/serviceAccounts/" in name
    ]
    # The refused delete removed the job before it stopped; this one the rest.
    assert refused.find("DELETE", r"/jobs/events-schedule$") and not deleted.find("DELETE", r"/jobs/")
    deletes = {
        r.path.rsplit("/", 1)[-1] for r in deleted.requests if r.method == "DELETE" and r.status == 200
    }
    assert {"events"} | {f"{a}@{PROJECT}.iam.gserviceaccount.com" for a in ACCOUNTS} <= deletes


def test_delete_secret_removes_the_secret_and_without_it_the_secret_is_kept(runs):
    deleted = runs[2]
    assert f"projects/{PROJECT}/secrets/events-dsn" not in deleted.resources
    assert "removed secret events-dsn and its versions" in deleted.stdout
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    kept = run_deploy(env, "--project", PROJECT, "--region", REGION, "--delete", "--dry-run")
    assert kept.returncode == 0, kept.stderr
    assert "kept (it holds the DSN; add --delete-secret to delete it)" in kept.stdout
    assert "secrets delete" not in kept.stdout


def test_delete_says_what_it_leaves_in_place(runs):
    left = runs[2].stdout.split("Left in place")[1]
    for words in (
        "the enabled APIs",
        "repository gcf-artifacts in each region",
        "gcf-v2-sources-PROJECT_NUMBER-REGION",
        "Serverless VPC Access connector",
        "Cloud NAT",
        "reserved static IP address",
    ):
        assert words in left, words


def test_bindings_are_removed_before_the_accounts(runs):
    deleted = runs[2]
    policies = [r for r in deleted.requests if r.path.endswith(":setIamPolicy") and r.status == 200]
    members = [m for r in policies for b in r.body["policy"].get("bindings", []) for m in b["members"]]
    assert not any(account in m for account in ACCOUNTS for m in members)
    first_account_deleted = min(
        r.at for r in deleted.requests if r.method == "DELETE" and "/serviceAccounts/" in r.path
    )
    assert all(r.at < first_account_deleted for r in policies)


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

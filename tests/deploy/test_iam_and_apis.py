"""APIs and identities.

In a new project, where Cloud Resource Manager and every other API deploy.sh needs start
disabled, step 1 enables them all, so no later call meets SERVICE_DISABLED (the stand-in
refuses a disabled API as Google does, shown first without deploy.sh). Builds run as
<name>-build holding Cloud Run Builder only: a build as the Compute Engine default
account, which holds no role in new projects, fails (shown first). IAM refuses a binding
naming a service account created seconds earlier until it propagates; deploy.sh retries
exactly that error, for DEPLOY_IAM_RETRY_SECONDS. Only <name>-invoker may invoke the function."""

import pytest
from gcloud_standin import (
    APIS,
    DSN,
    PROJECT,
    REGION,
    SCENARIOS,
    GoogleCloudStandIn,
    Scenario,
    functions_deploy_alone,
    scenario,
)

BUILD_SA = f"events-build@{PROJECT}.iam.gserviceaccount.com"


@SCENARIOS.define()
def functions_deploy_without_resource_manager() -> Scenario:
    return functions_deploy_alone("cloudresourcemanager.googleapis.com")


@SCENARIOS.define()
def build_with_the_default_account() -> Scenario:
    return functions_deploy_alone()


@SCENARIOS.define()
def iam_never_learns() -> Scenario:
    """A project whose IAM never learns of the new accounts, and a 2-second retry budget."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.iam_propagation_seconds = 3600
    world = scenario(standin)
    world.deploy(
        "--project", PROJECT, "--no-alerts", env={"DATABASE_URL": DSN, "DEPLOY_IAM_RETRY_SECONDS": "2"}
    )
    return world


@pytest.fixture(scope="module")
def new_project():
    return SCENARIOS.result("new_project")


# ---------------------------------------------------------------- APIs


def test_the_stand_in_refuses_a_disabled_api_as_google_does():
    world = SCENARIOS.result("functions_deploy_without_resource_manager")
    assert world.gcloud.returncode != 0
    assert "Cloud Resource Manager API has not been used in project" in world.gcloud.stderr
    [refused] = [r for r in world.standin.requests if r.status == 403]
    assert refused.api == "cloudresourcemanager"
    assert not world.standin.find("POST", r"/functions$")  # it stopped before creating the function


def test_step_one_enables_resource_manager_and_every_api_the_steps_call(new_project):
    first = new_project.runs[0]
    [enable, *_] = [r for r in first.requests if r.api == "serviceusage"]
    enabled = set(enable.body["serviceIds"])
    assert "cloudresourcemanager.googleapis.com" in enabled
    called = {r.api for run in new_project.runs for r in run.requests} & set(APIS)
    assert {APIS[api][0] for api in called} - {"serviceusage.googleapis.com"} <= enabled


def test_apis_are_enabled_before_anything_else_and_none_is_refused(new_project):
    first = new_project.runs[0]
    changes = [r for r in first.requests if r.api in APIS and r.method != "GET"]
    assert changes[0].api == "serviceusage" and changes[0].path.endswith(":batchEnable")
    # Before step 1, deploy.sh may ask (GET) where Cloud Functions is offered: refused while the API is off.
    refused = [
        r.action for run in new_project.runs for r in run.requests if r.status == 403 and r.at > changes[0].at
    ]
    assert refused == []
    assert all(run.returncode == 0 for run in new_project.runs)


# ---------------------------------------------------------------- the build account


def test_a_build_as_the_default_compute_account_fails_as_on_google():
    world = SCENARIOS.result("build_with_the_default_account")
    assert world.gcloud.returncode != 0
    assert "Build failed" in world.gcloud.stderr
    assert "You must grant Storage Object Viewer permission to" in world.gcloud.stderr
    assert f"{world.standin.project_number}-compute@developer.gserviceaccount.com" in world.gcloud.stderr


def test_the_function_is_built_by_its_own_account_holding_run_builder(new_project):
    first = new_project.runs[0]
    [create] = first.find("POST", r"/functions$")
    assert create.body["buildConfig"]["serviceAccount"] == f"projects/{PROJECT}/serviceAccounts/{BUILD_SA}"
    [created] = [r for r in first.find("POST", r"/serviceAccounts$") if r.body["accountId"] == "events-build"]
    assert created.status == 200
    policy = new_project.standin.policies[f"projects/{PROJECT}"]
    holders = {m for b in policy["bindings"] if b["role"] == "roles/run.builder" for m in b["members"]}
    assert holders == {f"serviceAccount:{BUILD_SA}"}
    function = first.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]
    assert function["state"] == "ACTIVE"


def test_the_build_account_gets_no_other_role(new_project):
    policy = new_project.standin.policies[f"projects/{PROJECT}"]
    roles = {b["role"] for b in policy["bindings"] if f"serviceAccount:{BUILD_SA}" in b["members"]}
    assert roles == {"roles/run.builder"}


# ---------------------------------------------------------------- bindings while IAM propagates


def test_a_binding_refused_while_the_account_propagates_is_retried_until_granted(new_project):
    standin, first = new_project.standin, new_project.runs[0]
    assert standin.iam_refusals, "the stand-in never refused a binding: the test proves nothing"
    refused = [r for r in first.requests if r.status == 400 and r.path.endswith(":setIamPolicy")]
    assert refused
    assert "IAM does not know events-" in first.stdout and "retrying in" in first.stdout
    assert "granted roles/run.builder on the project to events-build" in first.stdout
    # The same binding, retried, then stored.
    granted = [
        r for r in first.requests if r.path == refused[0].path and r.method == "POST" and r.status == 200
    ]
    assert granted and granted[0].at > refused[-1].at
    assert first.returncode == 0


def test_only_that_error_is_retried_and_not_forever():
    [run] = SCENARIOS.result("iam_never_learns").runs
    assert run.returncode == 2
    assert "IAM still says events-build@" in run.stderr and "does not exist after 2s" in run.stderr
    assert "run deploy.sh again" in run.stderr
    # Not forever, however fast gcloud answers: waits doubling from 200 ms (DEPLOY_BACKOFF_MS
    # in the tests) leave room for at most 5 attempts in a 2 s budget (0.2+0.4+0.8+1.6 s >= 2 s).
    attempts = [r for r in run.requests if r.path.endswith(":setIamPolicy") and r.status == 400]
    assert 1 <= len(attempts) <= 5
    # It stopped there: no function, no job.
    assert not run.find("POST", r"/functions$") and not run.find("POST", r"/jobs$")


# ---------------------------------------------------------------- the invoker


def test_only_the_invoker_account_may_invoke_the_function(new_project):
    first = new_project.runs[0]
    [binding] = first.find("POST", rf"/locations/{REGION}/services/events:setIamPolicy$")
    assert binding.body["policy"]["bindings"] == [
        {
            "members": [f"serviceAccount:events-invoker@{PROJECT}.iam.gserviceaccount.com"],
            "role": "roles/run.invoker",
        }
    ]

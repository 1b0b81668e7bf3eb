"""Item 2: in a project created since mid-2024 Cloud Build runs as the Compute Engine
default service account, which holds no role, and a function build fails. deploy.sh
creates <name>-build, grants it Cloud Run Builder (roles/run.builder) and names it with
--build-service-account. The stand-in fails a build whose account lacks a build
permission with Cloud Build's own message (shown first, without deploy.sh)."""

import pytest
from gcloud_standin import PROJECT, REGION, SCENARIOS, Scenario, functions_deploy_alone

BUILD_SA = f"events-build@{PROJECT}.iam.gserviceaccount.com"


@SCENARIOS.define()
def build_with_the_default_account() -> Scenario:
    return functions_deploy_alone()


@pytest.fixture(scope="module")
def new_project():
    return SCENARIOS.result("new_project")


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

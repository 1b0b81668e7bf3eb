"""Item 1: in a new project, where Cloud Resource Manager and every other API deploy.sh
needs start disabled, deploy.sh enables them all in step 1, so no later call meets
SERVICE_DISABLED. The stand-in's new project refuses a disabled API exactly as Google
does, and without this step `gcloud functions deploy` aborts on it (shown first)."""

import pytest
from gcloud_standin import APIS, SCENARIOS, Scenario, functions_deploy_alone


@SCENARIOS.define()
def functions_deploy_without_resource_manager() -> Scenario:
    return functions_deploy_alone("cloudresourcemanager.googleapis.com")


@pytest.fixture(scope="module")
def new_project():
    return SCENARIOS.result("new_project")


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
    api_requests = [r for r in first.requests if r.api in APIS]
    assert api_requests[0].api == "serviceusage" and api_requests[0].path.endswith(":batchEnable")
    refused = [r.action for run in new_project.runs for r in run.requests if r.status == 403]
    assert refused == []
    assert all(run.returncode == 0 for run in new_project.runs)

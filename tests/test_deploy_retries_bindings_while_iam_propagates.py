"""Item 3: IAM learns of a service account created seconds earlier only after a while,
and refuses a binding naming it until then ("Service account X does not exist.", 400
INVALID_ARGUMENT). deploy.sh retries exactly that error with doubling waits and stops,
with a clear message, when DEPLOY_IAM_RETRY_SECONDS (120 by default) have passed."""

import pytest
from gcloud_standin import DSN, PROJECT, SCENARIOS, GoogleCloudStandIn, Scenario, scenario


@SCENARIOS.define()
def iam_never_learns() -> Scenario:
    """A project whose IAM never learns of the new accounts, and a 2-second retry budget."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.iam_propagation_seconds = 3600
    world = scenario(standin)
    world.deploy("--project", PROJECT, env={"DATABASE_URL": DSN, "DEPLOY_IAM_RETRY_SECONDS": "2"})
    return world


@pytest.fixture(scope="module")
def new_project():
    return SCENARIOS.result("new_project")


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
    world = SCENARIOS.result("iam_never_learns")
    [run] = world.runs
    assert run.returncode == 2
    assert "IAM still says events-build@" in run.stderr and "does not exist after 2s" in run.stderr
    assert "run deploy.sh again" in run.stderr
    # Not forever, however fast gcloud answers: waits doubling from 200 ms (DEPLOY_BACKOFF_MS
    # in the tests) leave room for at most 5 attempts in a 2 s budget (0.2+0.4+0.8+1.6 s >= 2 s).
    attempts = [r for r in run.requests if r.path.endswith(":setIamPolicy") and r.status == 400]
    assert 1 <= len(attempts) <= 5
    # It stopped there: no function, no job.
    assert not run.find("POST", r"/functions$") and not run.find("POST", r"/jobs$")

"""The Cloud Scheduler job: POST to the function's URL with an OIDC token from
<name>-invoker whose audience is that URL, retries with backoff, an attempt deadline longer
than the function's timeout, and the deployment's labels in its description (Cloud
Scheduler jobs take no labels: the v1 Job resource has no such field). A second run
updates the job in place. Where the job goes is tested in test_region.py."""

import pytest
from gcloud_standin import CHANNEL, PROJECT, REGION, SCENARIOS

SCHEDULER_LOCATION = REGION


@pytest.fixture(scope="module")
def runs():
    return SCENARIOS.result("new_project").runs


def test_the_job_calls_the_function_with_oidc_and_retries(runs):
    first, second = runs
    [create] = first.find("POST", rf"/v1/projects/{PROJECT}/locations/{SCHEDULER_LOCATION}/jobs$")
    url = first.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]["serviceConfig"]["uri"]
    target = create.body["httpTarget"]
    assert target["uri"] == url  # serviceConfig.uri: the run.app URL, internal to the project
    assert target["httpMethod"] == "POST"
    assert target["headers"] == {"Content-Type": "application/json"}
    assert target["oidcToken"] == {
        "serviceAccountEmail": f"events-invoker@{PROJECT}.iam.gserviceaccount.com",
        "audience": url,
    }
    assert create.body["retryConfig"]["retryCount"] > 0
    assert create.body["retryConfig"]["minBackoffDuration"] == "10s"
    assert int(create.body["attemptDeadline"].rstrip("s")) > 60  # longer than the function's timeout


def test_the_job_carries_the_labels_in_its_description(runs):
    first, second = runs
    [create] = first.find("POST", r"/jobs$")
    [update] = second.find("PATCH", r"/jobs/events-schedule$")
    for body in (create.body, update.body):
        assert body["description"] == (
            "function=events managed-by=deploy-sh cluster=events-1234 (Cloud Scheduler jobs take no labels)"
        )


def test_a_second_run_updates_the_job_in_place(runs):
    _, second = runs
    [update] = second.find("PATCH", r"/jobs/events-schedule$")
    assert update.body["schedule"] == "0 * * * *"
    assert second.find("POST", r"/jobs$") == []


def test_alerts_are_made_once_and_updated_in_place(runs):
    first, second = runs
    metrics = {r.body["name"] for r in first.find("POST", r"/metrics$")}
    assert metrics == {
        f"events-{m}"
        for m in ("status-503", "outcome-unknown", "new-connections", "scheduler-failures", "checkout-ms")
    }
    policies = [r.body for r in first.find("POST", r"/alertPolicies$")]
    assert {p["displayName"] for p in policies} == {
        "events: failed Cloud Scheduler runs",
        "events: 503 answers",
    }
    assert all(p["userLabels"] == {"function": "events", "managed-by": "deploy-sh"} for p in policies)
    assert not second.find("POST", r"/(metrics|alertPolicies)$")
    assert len(second.find("PUT", r"/metrics/events-")) == 5
    updates = second.find("PATCH", r"/alertPolicies/")
    assert len(updates) == 2 and all(u.body["notificationChannels"] == [CHANNEL] for u in updates)


def test_no_alerts_makes_no_metric_and_no_policy():
    run = SCENARIOS.result("constrained_org_with_options").runs[0]
    assert run.returncode == 0, run.stderr[-2000:]
    assert not run.find("POST", r"/(metrics|alertPolicies)$") and not run.find(
        "GET", r"/(metrics|alertPolicies)"
    )

"""The function's network: egress through a Serverless VPC Access connector, and ingress.

CockroachDB Standard and Advanced accept only allowlisted addresses (or private
connectivity); a 2nd gen function has a fixed address only when it egresses through a
connector (or Direct VPC egress) with Cloud NAT on a static IP. deploy.sh passes
--vpc-connector and --egress-settings (all by default with a connector) and stops before
creating anything when the connector is not in the function's region.

Ingress: Cloud Run counts Cloud Scheduler in the function's project, calling the run.app
URL, as internal ("Restrict network ingress for Cloud Run"), so --ingress internal-only
and internal-and-gclb are accepted with the job as it is; the deployer's machine is not
internal, so the smoke test is skipped with that reason (the stand-in answers such a call
404, as Cloud Run's front end does)."""

import os
import urllib.error
import urllib.request

import pytest
from gcloud_standin import (
    GCP_DSN,
    PROJECT,
    REGION,
    SCENARIOS,
    GoogleCloudStandIn,
    Scenario,
    run_deploy,
    scenario,
)


@SCENARIOS.define()
def internal_function_smoke_test_only() -> Scenario:
    """A function deployed with ingress internal-only, then --smoke-test-only from this machine;
    then the identity token a smoke test would use, to show the stand-in refusing the call."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.seed_function(REGION, "events")["serviceConfig"]["ingressSettings"] = "ALLOW_INTERNAL_ONLY"
    world = scenario(standin)
    world.deploy("--project", PROJECT, "--region", REGION, "--smoke-test-only")
    world.run_gcloud("auth", "print-identity-token", "--audiences", standin.function_url(REGION, "events"))
    return world


@pytest.fixture(scope="module")
def with_options():
    return SCENARIOS.result("constrained_org_with_options").runs[0]


def dry_run(*args: str):
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": GCP_DSN}
    return run_deploy(env, "--project", PROJECT, "--dry-run", *args)


# ---------------------------------------------------------------- egress


def test_the_function_egresses_through_the_connector(with_options):
    assert with_options.returncode == 0, with_options.stderr[-3000:]
    [create] = with_options.find("POST", r"/functions$")
    service = create.body["serviceConfig"]
    assert service["vpcConnector"] == f"projects/{PROJECT}/locations/us-east1/connectors/egress"
    assert service["vpcConnectorEgressSettings"] == "ALL_TRAFFIC"
    assert "VPC connector: egress (READY), egress all" in with_options.stdout


def test_the_connector_is_checked_before_anything_is_created(with_options):
    [check] = with_options.find("GET", r"/connectors/egress$")
    assert check.api == "vpcaccess" and check.status == 200
    [enable] = with_options.find("POST", r":batchEnable$")
    assert "vpcaccess.googleapis.com" in enable.body["serviceIds"]
    first_creation = next(
        r
        for r in with_options.requests
        if r.method == "POST" and r.path.endswith(("/secrets", "/serviceAccounts"))
    )
    assert check.at < first_creation.at


def test_a_missing_connector_stops_before_anything_is_created():
    run = SCENARIOS.result("regions_refused").runs[3]
    assert run.returncode == 2
    assert "Cloud Scheduler: offered in us-central1" in run.stdout
    assert "no Serverless VPC Access connector 'egress' in us-east4" in run.stderr
    changes = [
        r.action
        for r in run.requests
        if r.method in ("POST", "PATCH", "DELETE", "PUT")
        and not r.path.endswith(":batchEnable")
        and r.api != "token"
    ]
    assert changes == []


def test_a_connector_named_in_another_region_is_refused():
    result = dry_run("--vpc-connector", f"projects/{PROJECT}/locations/us-west1/connectors/egress")
    assert result.returncode == 2
    assert "is not in the function's region us-east1" in result.stderr


def test_egress_settings_need_a_connector():
    result = dry_run("--egress-settings", "all")
    assert result.returncode == 2 and "--egress-settings needs --vpc-connector" in result.stderr
    result = dry_run("--vpc-connector", "egress", "--egress-settings", "private-ranges-only")
    assert result.returncode == 0
    assert "--vpc-connector egress --egress-settings private-ranges-only" in result.stdout


# ---------------------------------------------------------------- ingress


def test_internal_ingress_keeps_the_job_and_skips_the_smoke_test_with_the_reason():
    ingress = "internal-only"
    result = dry_run("--ingress", ingress)
    assert result.returncode == 0, result.stderr
    assert f"--ingress-settings {ingress}" in result.stdout
    assert "scheduler jobs create http events-schedule" in result.stdout
    assert f"smoke test skipped: --ingress {ingress} admits" in result.stdout
    assert "not from this machine" in result.stdout
    assert "+ GET " not in result.stdout


def test_smoke_test_only_reads_the_deployed_ingress_and_calls_nothing():
    world = SCENARIOS.result("internal_function_smoke_test_only")
    [run] = world.runs
    assert run.returncode == 0, run.stderr
    assert (
        "smoke test skipped: --ingress internal-only admits only requests from inside project" in run.stdout
    )
    assert f"gcloud scheduler jobs run events-schedule --location LOCATION --project {PROJECT}" in run.stdout
    assert run.find("GET", r"^/fn/") == []


def test_the_stand_in_refuses_a_call_from_outside_to_an_internal_function():
    world = SCENARIOS.result("internal_function_smoke_test_only")
    assert world.gcloud.returncode == 0, world.gcloud.stderr
    request = urllib.request.Request(
        world.standin.function_url(REGION, "events"),
        headers={"Authorization": f"Bearer {world.gcloud.stdout.strip()}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 404

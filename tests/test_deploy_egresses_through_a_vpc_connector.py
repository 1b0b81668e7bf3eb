"""Item 8: CockroachDB Standard and Advanced accept only allowlisted addresses (or private
connectivity); a 2nd gen function has a fixed address only when it egresses through a
Serverless VPC Access connector with Cloud NAT on a static IP. deploy.sh passes
--vpc-connector and --egress-settings (all by default with a connector) to the function,
and stops before creating anything when the connector is not there."""

import os

import pytest
from gcloud_standin import GCP_DSN, PROJECT, SCENARIOS, GoogleCloudStandIn, Scenario, run_deploy, scenario


@SCENARIOS.define()
def connector_missing() -> Scenario:
    world = scenario(GoogleCloudStandIn(PROJECT).start())
    world.deploy("--project", PROJECT, "--vpc-connector", "egress", env={"DATABASE_URL": GCP_DSN})
    return world


@pytest.fixture(scope="module")
def with_options():
    return SCENARIOS.result("constrained_org_with_options").runs[0]


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
    [run] = SCENARIOS.result("connector_missing").runs
    assert run.returncode == 2
    assert "no Serverless VPC Access connector 'egress' in us-east1" in run.stderr
    changes = [
        r.action
        for r in run.requests
        if r.method in ("POST", "PATCH", "DELETE", "PUT")
        and not r.path.endswith(":batchEnable")
        and r.api != "token"
    ]
    assert changes == []


def test_egress_settings_need_a_connector():
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": GCP_DSN}
    result = run_deploy(env, "--project", PROJECT, "--dry-run", "--egress-settings", "all")
    assert result.returncode == 2 and "--egress-settings needs --vpc-connector" in result.stderr
    result = run_deploy(
        env,
        "--project",
        PROJECT,
        "--dry-run",
        "--vpc-connector",
        "egress",
        "--egress-settings",
        "private-ranges-only",
    )
    assert result.returncode == 0
    assert "--vpc-connector egress --egress-settings private-ranges-only" in result.stdout

"""Where the function and its Scheduler job go: the cluster's own GCP region (read from its
host), or --region, checked against the regions Google lists for Cloud Functions. A cluster on
another cloud, a region without functions, or a Scheduler location not offered stops deploy.sh
before it changes anything, naming what to pass and what is offered."""

import pytest
from gcloud_standin import AWS_DSN, DSN, GCP_DSN, PROJECT, SCENARIOS, GoogleCloudStandIn, Scenario, scenario

from deploy.dsn_check import locate

CHANGES = (
    r"/(secrets|serviceAccounts|functions|jobs|metrics|alertPolicies)$|:(batchEnable|enable|setIamPolicy)$"
)


@SCENARIOS.define()
def regions_refused() -> Scenario:
    """In a project deployed to before (its APIs on), where Scheduler is not offered in us-east1:
    an AWS cluster without --region; --region in a region without functions; a GCP cluster in
    us-east1, whose job cannot go there; and one in us-east4 with a connector that does not exist."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.enable_all()
    standin.scheduler_locations = ["us-central1", "europe-west1"]
    world = scenario(standin)
    world.deploy("--project", PROJECT, env={"DATABASE_URL": AWS_DSN})
    world.deploy("--project", PROJECT, "--region", "mars-north1", env={"DATABASE_URL": DSN})
    world.deploy("--project", PROJECT, env={"DATABASE_URL": GCP_DSN})
    world.deploy(
        "--project",
        PROJECT,
        "--scheduler-location",
        "us-central1",
        "--vpc-connector",
        "egress",
        env={"DATABASE_URL": DSN},
    )
    return world


@pytest.fixture(scope="module")
def refused():
    return SCENARIOS.result("regions_refused").runs


def test_a_cluster_on_another_cloud_stops_before_any_change_listing_the_regions(refused):
    run = refused[0]
    assert run.returncode == 2
    assert "the cluster is in aws-us-east-1" in run.stderr and "pass --region" in run.stderr
    assert "Offered to project demo-project: europe-west1 europe-west4 us-central1 us-east1" in run.stderr
    assert [r for r in run.requests if r.method != "GET" and r.api != "token" and r.path != "/token"] == []


def test_a_region_without_functions_stops_before_any_change(refused):
    run = refused[1]
    assert run.returncode == 2
    assert "Cloud Functions (2nd gen) is not offered in mars-north1" in run.stderr
    assert "pass --region with one of: europe-west1" in run.stderr
    assert [r for r in run.requests if r.method in ("POST", "PATCH", "DELETE") and r.path != "/token"] == []


def test_a_scheduler_location_not_offered_stops_before_anything_is_created(refused):
    run = refused[2]
    assert run.returncode == 2
    assert "region: us-east1 (the cluster's region, gcp-us-east1)" in run.stdout
    assert "Cloud Scheduler is not offered in us-east1" in run.stderr
    assert "--scheduler-location with one of: us-central1 europe-west1" in run.stderr
    assert run.find("POST", CHANGES) == [] and run.find("PATCH", ".") == []


def test_the_regions_offering_functions_are_asked_before_anything_is_created():
    first = SCENARIOS.result("new_project").runs[0]
    listings = first.find("GET", rf"^/v2/projects/{PROJECT}/locations$")
    assert listings[-1].api == "cloudfunctions" and listings[-1].status == 200
    [create] = first.find("POST", r"/functions$")
    assert listings[-1].at < first.find("POST", r"/secrets$")[0].at < create.at
    assert "Cloud Functions: offered in us-east4" in first.stdout


@pytest.mark.parametrize(
    "host, location",
    [
        ("name-1234.abc.gcp-us-east1.cockroachlabs.cloud", "gcp-us-east1"),
        ("NAME-1.ABC.GCP-EUROPE-WEST1.COCKROACHLABS.CLOUD", "gcp-europe-west1"),
        ("events-1.abc.aws-eu-west-1.cockroachlabs.cloud", "aws-eu-west-1"),
        ("gcp-prod-1234.g8z.cockroachlabs.cloud", ""),  # a Basic host: the cluster's name is no region
        ("db.example.com", ""),
    ],
)
def test_the_clusters_location_is_the_label_before_the_domain(host, location):
    assert locate(f"postgresql://u:p@{host}:26257/defaultdb") == (location, host.split(".")[0].lower())

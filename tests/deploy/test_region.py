"""Where the function and its Scheduler job go.

The function goes to the cluster's GCP region when Google offers Cloud Functions there,
else to the offered region nearest to the cluster; which regions offer functions is
asked at deploy time (`gcloud functions regions list --gen2`, the Cloud Functions API's
locations), and deploy/regions.py keeps coordinates only. A region whose coordinates
are unknown, where a distance is needed, stops deploy.sh naming it. Cloud Scheduler's
locations are asked the same way; the job goes to the function's region when offered,
else to the nearest offered location. The stand-in answers both lists and refuses a job
where Scheduler is not offered, with Scheduler's own 403."""

import os
import subprocess
import sys

import pytest
from function_harness import ROOT
from gcloud_standin import (
    DSN,
    GCP_DSN,
    PROJECT,
    REGION,
    SCENARIOS,
    GoogleCloudStandIn,
    Scenario,
    run_deploy,
    scenario,
)

from deploy.region import RegionError, choose, distance_km, locate, nearest_offered
from deploy.regions import CLOUDS

GCP_REGIONS = sorted(CLOUDS["gcp"])


@SCENARIOS.define()
def functions_not_offered_in_the_clusters_region() -> Scenario:
    """A cluster in GCP us-east1, in a project where Cloud Functions is listed everywhere but
    there; deployed with a connector name that does not exist, so it stops after step 2."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.functions_regions = [r for r in GCP_REGIONS if r != "us-east1"]
    world = scenario(standin)
    world.deploy("--project", PROJECT, "--vpc-connector", "egress", env={"DATABASE_URL": GCP_DSN})
    return world


@SCENARIOS.define()
def functions_offered_in_an_unknown_region() -> Scenario:
    """An AWS cluster, and a functions list holding a region deploy/regions.py does not know."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.functions_regions = ["us-east4", "mars-north1"]
    world = scenario(standin)
    world.deploy("--project", PROJECT, env={"DATABASE_URL": DSN})
    return world


def region_for(host: str, offered: list[str] | None = None) -> str:
    return choose(locate(host, None, None), None, offered).region


def dry_run(dsn: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return run_deploy({**env, "DATABASE_URL": dsn}, "--project", PROJECT, "--dry-run", *args)


# ---------------------------------------------------------------- the function's region


def test_the_regions_offering_functions_are_asked_after_the_apis_are_enabled():
    first = SCENARIOS.result("new_project").runs[0]
    [listing] = first.find("GET", rf"^/v2/projects/{PROJECT}/locations$")
    assert listing.api == "cloudfunctions" and listing.status == 200
    [enable] = first.find("POST", r":batchEnable$")
    [create] = first.find("POST", r"/functions$")
    assert enable.at < listing.at < create.at


def test_without_functions_in_the_clusters_region_the_nearest_offered_one_is_chosen():
    [run] = SCENARIOS.result("functions_not_offered_in_the_clusters_region").runs
    assert (
        "region: us-east4 (nearest Cloud Functions region to the cluster's region gcp-us-east1: "
        "Cloud Functions is not offered there; 688 km from the cluster)" in run.stdout
    )
    # The connector is looked for where the function goes.
    assert "no Serverless VPC Access connector 'egress' in us-east4" in run.stderr
    assert run.find("GET", r"/locations/us-east1/") == []


def test_an_offered_region_without_coordinates_stops_deploy_sh_naming_it():
    [run] = SCENARIOS.result("functions_offered_in_an_unknown_region").runs
    assert run.returncode == 2
    assert "unknown GCP region 'mars-north1': deploy/regions.py has no coordinates for it" in run.stderr
    assert run.find("POST", r"/(secrets|serviceAccounts|functions)$") == []


def test_a_gcp_cluster_gets_its_own_region_when_offered():
    for host, region in [
        ("name-1234.abc.gcp-us-east1.cockroachlabs.cloud", "us-east1"),
        ("events-8rw.j57.gcp-europe-west1.cockroachlabs.cloud", "europe-west1"),
        ("NAME-1.ABC.GCP-US-WEST2.COCKROACHLABS.CLOUD", "us-west2"),
        ("x.gcp-me-central2.cockroachlabs.cloud", "me-central2"),  # offered since 2025: no flag in the code
        ("x.gcp-asia-southeast3.cockroachlabs.cloud", "asia-southeast3"),
    ]:
        choice = choose(locate(host, None, None), None, GCP_REGIONS)
        assert (choice.region, choice.distance_km, "same region" in choice.why) == (region, 0.0, True), host


def test_a_gcp_region_not_in_the_list_gets_the_nearest_offered_one():
    offered = [r for r in GCP_REGIONS if r != "me-central2"]
    choice = choose("gcp-me-central2", None, offered)
    assert choice.region == "me-central1" and 0 < choice.distance_km < 500
    assert "Cloud Functions is not offered there" in choice.why


@pytest.mark.parametrize(
    "host, region",
    [
        ("name-1234.abc.aws-us-east-1.cockroachlabs.cloud", "us-east4"),  # Virginia
        ("x.aws-us-west-2.cockroachlabs.cloud", "us-west1"),  # Oregon
        ("x.aws-eu-central-1.cockroachlabs.cloud", "europe-west3"),  # Frankfurt
        ("x.aws-ap-southeast-1.cockroachlabs.cloud", "asia-southeast1"),  # Singapore
        ("x.aws-eu-west-1.cockroachlabs.cloud", "europe-west2"),  # Dublin -> London
        ("x.azure-westeurope.cockroachlabs.cloud", "europe-west4"),  # Netherlands
        ("x.azure-japaneast.cockroachlabs.cloud", "asia-northeast1"),  # Tokyo
    ],
)
def test_aws_and_azure_clusters_get_the_nearest_offered_region(host, region):
    choice = choose(locate(host, None, None), None, GCP_REGIONS)
    assert choice.region == region and choice.distance_km < 1000
    assert "nearest Cloud Functions region" in choice.why


def test_the_region_is_read_from_the_label_before_the_domain():
    # A cluster itself named like a region is read by the label next to the domain.
    assert region_for("gcp-prod-1234.abc.gcp-us-east1.cockroachlabs.cloud") == "us-east1"
    assert region_for("azure-x.abc.aws-eu-central-1.cockroachlabs.cloud") == "europe-west3"
    assert region_for("gcp-us-west2.abc.azure-westeurope.cockroachlabs.cloud") == "europe-west4"


@pytest.mark.parametrize(
    "host",
    [
        "events-1234.g8z.cockroachlabs.cloud",  # CockroachDB Basic: the host names no region
        "gcp-prod-1234.abc.cockroachlabs.cloud",  # multi-region
        "gcp-us-east1.example.com",  # not CockroachDB Cloud
        "x.gcp-us-east1.cockroachlabs.cloud.example.com",
    ],
)
def test_a_host_naming_no_region_needs_the_cluster_region(host):
    with pytest.raises(RegionError, match="does not name the cluster's region .* set CLUSTER_REGION"):
        locate(host, None, None)
    assert locate(host, "gcp-europe-west1", None) == "gcp-europe-west1"


def test_a_basic_cluster_deploys_with_cluster_region():
    dsn = "postgresql://u:s3cret@events-1234.g8z.cockroachlabs.cloud:26257/defaultdb?sslmode=verify-full"
    with pytest.raises(RegionError, match="CockroachDB Basic and multi-region hosts never do"):
        locate("events-1234.g8z.cockroachlabs.cloud", None, None)
    named = dry_run(dsn, "--cluster-region", "gcp-europe-west1")
    assert named.returncode == 0, named.stderr
    assert "--region europe-west1" in named.stdout and "cluster=events-1234" in named.stdout


def test_an_explicit_region_must_be_offered():
    assert choose("", "europe-west1", GCP_REGIONS).region == "europe-west1"
    with pytest.raises(RegionError, match="REGION=mars-north1 does not offer Cloud Functions"):
        choose("", "mars-north1", GCP_REGIONS)


@pytest.mark.parametrize(
    "location, message",
    [
        ("aws-mars-north-1", "unknown AWS region 'mars-north-1'"),
        ("gcp-mars-north1", "unknown GCP region 'mars-north1'"),
        ("oracle-phoenix", "not a CockroachDB Cloud region"),
    ],
)
def test_an_unknown_cluster_region_is_an_error_naming_it(location, message):
    with pytest.raises(RegionError, match=message):
        choose(location, None, GCP_REGIONS)


def test_a_new_gcp_region_that_offers_functions_needs_no_coordinates():
    assert choose("gcp-mars-north1", None, ["mars-north1", "us-east1"]).region == "mars-north1"


def test_the_table_holds_plausible_coordinates_only():
    for table in CLOUDS.values():
        for name, where in table.items():
            lat, lon = where  # two numbers, nothing else
            assert -90 <= lat <= 90 and -180 <= lon <= 180, name


def test_distance_is_great_circle():
    london, new_york = (51.51, -0.13), (40.71, -74.01)
    assert 5500 < distance_km(london, new_york) < 5600
    assert distance_km(london, london) == 0


def test_locate_reads_the_dsn_from_stdin_and_prints_location_and_cluster_name():
    result = subprocess.run(
        [sys.executable, "-m", "deploy.region", "--locate", "--dsn-stdin"],
        cwd=ROOT,
        input="postgresql://u:secret@c-1.abc.aws-eu-central-1.cockroachlabs.cloud:26257/db",
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "aws-eu-central-1\tc-1\n"
    assert "secret" not in result.stdout + result.stderr


# ---------------------------------------------------------------- nearest offered location


def nearest_of(offered: str, to: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deploy.region", "--nearest-of", offered, "--to", to],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_nearest_of_measures_every_offered_location():
    # The case: asia-southeast3 (Bangkok) was skipped and us-central1 chosen, 14,883 km away.
    result = nearest_of("us-east1,us-central1,asia-southeast3", "asia-southeast1")
    assert result.returncode == 0, result.stderr
    location, km = result.stdout.split()
    assert location == "asia-southeast3" and 1300 < int(km) < 1500


def test_nearest_of_names_an_unknown_location_instead_of_skipping_it():
    result = nearest_of("us-east1,us-central1,mars-north1", "asia-southeast1")
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown GCP region 'mars-north1'" in result.stderr
    unknown_target = nearest_of("us-east1", "mars-north1")
    assert unknown_target.returncode == 2 and "unknown GCP region 'mars-north1'" in unknown_target.stderr


@pytest.mark.parametrize(
    "region, offered, nearest",
    [
        ("europe-west9", ["europe-west1", "europe-west2", "europe-west3"], "europe-west1"),  # Paris
        ("us-east4", ["us-east1", "us-central1"], "us-east1"),
        ("us-east4", ["us-east4", "us-east1"], "us-east4"),
        ("mars-north1", ["mars-north1"], "mars-north1"),  # offered where it is: no distance needed
    ],
)
def test_nearest_offered_location(region, offered, nearest):
    assert nearest_offered(region, offered)[0] == nearest


# ---------------------------------------------------------------- the Scheduler job's location


@pytest.fixture(scope="module")
def new_project():
    return SCENARIOS.result("new_project")


def test_without_scheduler_in_the_functions_region_the_job_goes_to_the_nearest_offered(new_project):
    first = new_project.runs[0]
    assert (
        "Cloud Scheduler: not offered in us-east4; the job goes to us-east5, the nearest offered "
        "location (484 km away)" in first.stdout
    )
    [job] = first.find("POST", r"/jobs$")
    assert job.path == f"/v1/projects/{PROJECT}/locations/us-east5/jobs" and job.status == 200
    assert job.body["httpTarget"]["uri"].endswith(f"/{REGION}/events")  # calls the function in us-east4


def test_scheduler_locations_are_listed_before_anything_is_created(new_project):
    first = new_project.runs[0]
    [listing] = first.find("GET", rf"^/v1/projects/{PROJECT}/locations$")
    creations = [
        r
        for r in first.requests
        if r.method == "POST"
        and r.api not in ("serviceusage", "token")
        and not r.path.endswith((":getIamPolicy", ":access"))
    ]
    assert listing.api == "cloudscheduler"
    assert creations and listing.at < creations[0].at


def test_with_scheduler_in_the_functions_region_the_job_stays_there():
    [run] = SCENARIOS.result("constrained_org_with_options").runs
    assert "Cloud Scheduler: offered in us-east1" in run.stdout
    [job] = run.find("POST", r"/jobs$")
    assert job.path == f"/v1/projects/{PROJECT}/locations/us-east1/jobs"


def test_the_stand_in_refuses_a_job_where_scheduler_is_not_offered(new_project):
    asked = [
        r
        for run in new_project.runs
        for r in run.requests
        if r.api == "cloudscheduler" and f"/{REGION}/" in r.path
    ]
    assert asked == []  # deploy.sh never asked there
    result = subprocess.run(
        ["gcloud", "scheduler", "jobs", "describe", "events-schedule", "--location", REGION]
        + ["--project", PROJECT, "--quiet"],
        env=new_project.env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert 'lacks IAM permission "cloudscheduler.jobs.get"' in result.stderr

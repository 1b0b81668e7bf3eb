"""Item 4: Cloud Scheduler runs in fewer regions than Cloud Functions, and a job may call
a function elsewhere. deploy.sh lists Scheduler's locations before it creates anything and
puts the job in the function's region when offered, else in the nearest offered location,
printing the distance. The stand-in's Scheduler refuses jobs where it is not offered,
with the real 403."""

import subprocess
import sys

import pytest
from function_harness import ROOT
from gcloud_standin import PROJECT, REGION, SCENARIOS

from deploy.region import nearest_offered


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


def test_locations_are_listed_before_anything_is_created(new_project):
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
    world = SCENARIOS.result("constrained_org_with_options")
    [run] = world.runs
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
        [
            "gcloud",
            "scheduler",
            "jobs",
            "describe",
            "events-schedule",
            "--location",
            REGION,
            "--project",
            PROJECT,
            "--quiet",
        ],
        env=new_project.env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert 'lacks IAM permission "cloudscheduler.jobs.get"' in result.stderr


@pytest.mark.parametrize(
    "region, offered, nearest",
    [
        (
            "europe-west9",
            ["europe-west1", "europe-west2", "europe-west3"],
            "europe-west1",
        ),  # Paris -> Belgium
        ("us-east4", ["us-east1", "us-central1"], "us-east1"),
        ("us-east4", ["us-east4", "us-east1"], "us-east4"),
    ],
)
def test_nearest_offered_location(region, offered, nearest):
    assert nearest_offered(region, offered)[0] == nearest


def test_command_line_prints_location_and_distance():
    result = subprocess.run(
        [sys.executable, "-m", "deploy.region", "--nearest-of", "us-central1,us-east1", "--to", "us-east4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    location, km = result.stdout.strip().split("\t")
    assert location == "us-east1" and 600 < int(km) < 800

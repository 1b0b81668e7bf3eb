"""deploy/region.py: the function goes to the cluster's GCP region, or the nearest one."""

import subprocess
import sys

import pytest
from function_harness import ROOT

from deploy.region import RegionError, choose, distance_km
from deploy.regions import CLOUD_FUNCTIONS_REGIONS, CLOUDS


@pytest.mark.parametrize(
    "host, region",
    [
        ("name-1234.abc.gcp-us-east1.cockroachlabs.cloud", "us-east1"),
        ("free-tier4.gcp-us-central1.cockroachlabs.cloud", "us-central1"),
        ("events-8rw.j57.gcp-europe-west1.cockroachlabs.cloud", "europe-west1"),
        ("x.gcp-asia-southeast1.cockroachlabs.cloud", "asia-southeast1"),
        ("NAME-1.ABC.GCP-US-WEST2.COCKROACHLABS.CLOUD", "us-west2"),
    ],
)
def test_gcp_cluster_gets_its_own_region(host, region):
    choice = choose(host=host)
    assert (choice.region, choice.distance_km) == (region, 0.0)
    assert "same region" in choice.why


@pytest.mark.parametrize(
    "host, region",
    [
        ("name-1234.abc.aws-us-east-1.cockroachlabs.cloud", "us-east4"),  # Virginia
        ("x.aws-us-west-2.cockroachlabs.cloud", "us-west1"),  # Oregon
        ("x.aws-eu-central-1.cockroachlabs.cloud", "europe-west3"),  # Frankfurt
        ("x.aws-ap-southeast-1.cockroachlabs.cloud", "asia-southeast1"),  # Singapore
        ("x.aws-eu-west-1.cockroachlabs.cloud", "europe-west2"),  # Dublin -> London
        ("x.azure-westeurope.cockroachlabs.cloud", "europe-west4"),  # Netherlands
        ("x.azure-eastus2.cockroachlabs.cloud", "us-east4"),  # Virginia
        ("x.azure-japaneast.cockroachlabs.cloud", "asia-northeast1"),  # Tokyo
    ],
)
def test_aws_and_azure_clusters_get_the_nearest_functions_region(host, region):
    choice = choose(host=host)
    assert choice.region == region
    assert choice.distance_km < 1000
    assert "nearest Cloud Functions region" in choice.why


def test_gcp_region_without_cloud_functions_gets_the_nearest_one():
    choice = choose(host="x.gcp-me-central2.cockroachlabs.cloud")
    assert choice.region == "me-central1"
    assert 0 < choice.distance_km < 500
    assert "not offered" in choice.why


def test_explicit_region_overrides_the_host():
    assert choose(host="x.gcp-us-east1.cockroachlabs.cloud", region="europe-west1").region == "europe-west1"


def test_multi_region_cluster_uses_the_named_primary_region():
    # A multi-region cluster's host names no region; its primary region is given.
    assert (
        choose(host="events.cockroachlabs.cloud", cluster_region="gcp-europe-west4").region == "europe-west4"
    )
    assert (
        choose(host="events.cockroachlabs.cloud", cluster_region="aws-ap-northeast-1").region
        == "asia-northeast1"
    )


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"host": "db.example.com"}, "set REGION"),
        ({"host": "x.gcp-mars-north1.cockroachlabs.cloud"}, "unknown GCP region"),
        ({"host": "x", "region": "mars-north1"}, "does not offer Cloud Functions"),
        ({"host": "x", "cluster_region": "oracle-phoenix"}, "not a CockroachDB Cloud region"),
    ],
)
def test_unusable_input_is_an_error_saying_what_to_set(kwargs, names):
    with pytest.raises(RegionError, match=names):
        choose(**kwargs)


def test_distance_is_great_circle():
    london, new_york = (51.51, -0.13), (40.71, -74.01)
    assert 5500 < distance_km(london, new_york) < 5600
    assert distance_km(london, london) == 0


def test_every_known_region_has_plausible_coordinates():
    for table in (*CLOUDS.values(), CLOUD_FUNCTIONS_REGIONS):
        for name, (lat, lon) in table.items():
            assert -90 <= lat <= 90 and -180 <= lon <= 180, name


def test_command_line_reads_the_dsn_from_stdin_and_prints_region_distance_reason():
    result = subprocess.run(
        [sys.executable, "-m", "deploy.region", "--dsn-stdin"],
        cwd=ROOT,
        input="postgresql://u:secret@c-1.abc.aws-eu-central-1.cockroachlabs.cloud:26257/db",
        capture_output=True,
        text=True,
        check=True,
    )
    region, km, why = result.stdout.strip().split("\t")
    assert region == "europe-west3" and int(km) < 50 and "AWS" in why
    assert "secret" not in result.stdout + result.stderr

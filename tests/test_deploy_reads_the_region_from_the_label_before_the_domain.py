"""Item 5: the region is the label just before `.cockroachlabs.cloud`, so a cluster whose
own name starts with gcp-, aws- or azure- is read correctly."""

import os
import subprocess

import pytest
from function_harness import ROOT

from deploy.region import RegionError, choose


@pytest.mark.parametrize(
    "host, region",
    [
        ("gcp-prod-1234.abc.gcp-us-east1.cockroachlabs.cloud", "us-east1"),
        ("aws-team-7.xyz.gcp-europe-west1.cockroachlabs.cloud", "europe-west1"),
        ("azure-x.abc.aws-eu-central-1.cockroachlabs.cloud", "europe-west3"),
        ("gcp-us-west2.abc.azure-westeurope.cockroachlabs.cloud", "europe-west4"),
    ],
)
def test_a_cluster_named_like_a_region_gets_the_region_of_its_host(host, region):
    assert choose(host=host).region == region


@pytest.mark.parametrize(
    "host",
    [
        "gcp-prod-1234.abc.cockroachlabs.cloud",  # multi-region: no region label
        "gcp-us-east1.example.com",  # not CockroachDB Cloud
        "x.gcp-us-east1.cockroachlabs.cloud.example.com",
    ],
)
def test_a_region_elsewhere_in_the_host_is_not_taken(host):
    with pytest.raises(RegionError, match="does not name the cluster's region"):
        choose(host=host)


def test_deploy_sh_deploys_such_a_cluster_to_its_region():
    dsn = "postgresql://u:s3cret@gcp-prod-1234.abc.gcp-us-east1.cockroachlabs.cloud:26257/defaultdb"
    result = subprocess.run(
        [str(ROOT / "deploy.sh"), "--project", "demo-project", "--dry-run"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": dsn},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "region: us-east1 (same region as the cluster's host (gcp-us-east1))" in result.stdout
    assert "unknown GCP region" not in result.stderr

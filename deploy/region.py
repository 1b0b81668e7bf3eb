"""Choose the GCP region for the function from the CockroachDB cluster it talks to.

CockroachDB Cloud host names carry the cluster's cloud and region, e.g.
`name-1234.abc.gcp-us-east1.cockroachlabs.cloud` (GCP us-east1),
`name.aws-eu-west-1.cockroachlabs.cloud`, `name.azure-westeurope.cockroachlabs.cloud`.
A GCP region with Cloud Functions is used as is; otherwise (AWS, Azure, or a GCP
region without Cloud Functions) the nearest Cloud Functions region by
great-circle distance between the data centres is chosen.

    python3 -m deploy.region --host HOST [--region REGION] [--cluster-region CLOUD-REGION]
    echo "$DSN" | python3 -m deploy.region --dsn-stdin

prints one line: REGION<TAB>DISTANCE_KM<TAB>WHY. Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from urllib.parse import urlsplit

from deploy.regions import CLOUD_FUNCTIONS_REGIONS, CLOUDS

# The cloud-region label in a CockroachDB Cloud host: "gcp-us-east1", "aws-us-east-1", ...
CLUSTER_REGION = re.compile(r"(?:^|\.)(gcp|aws|azure)-([a-z0-9-]+?)(?:\.|$)")
EARTH_RADIUS_KM = 6371.0


class RegionError(Exception):
    """No region can be chosen; the message says what to set."""


@dataclasses.dataclass(frozen=True)
class Choice:
    region: str
    distance_km: float
    why: str


def parse_cluster_region(label: str) -> tuple[str, str]:
    """("gcp", "us-east1") from "gcp-us-east1"; RegionError for anything else."""
    match = CLUSTER_REGION.fullmatch(label.strip().lower()) or CLUSTER_REGION.search(label.strip().lower())
    if not match:
        raise RegionError(f"{label!r} is not a CockroachDB Cloud region such as gcp-us-east1, "
                          "aws-us-east-1 or azure-westeurope")
    cloud, region = match.groups()
    if region not in CLOUDS[cloud]:
        raise RegionError(f"unknown {cloud.upper()} region {region!r}; set REGION to the GCP region to deploy to")
    return cloud, region


def cluster_region_from_host(host: str) -> tuple[str, str] | None:
    match = CLUSTER_REGION.search(host.lower())
    return parse_cluster_region(f"{match.group(1)}-{match.group(2)}") if match else None


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def nearest_functions_region(point: tuple[float, float]) -> tuple[str, float]:
    return min(((name, distance_km(point, where)) for name, where in CLOUD_FUNCTIONS_REGIONS.items()),
               key=lambda pair: pair[1])


def choose(host: str | None = None, region: str | None = None, cluster_region: str | None = None) -> Choice:
    """The region to deploy to: REGION if given; else from the cluster's region
    (named, for a multi-region cluster's primary, or read from the host)."""
    if region:
        if region not in CLOUD_FUNCTIONS_REGIONS:
            raise RegionError(f"REGION={region} does not offer Cloud Functions (2nd gen); "
                              f"choose one of: {', '.join(sorted(CLOUD_FUNCTIONS_REGIONS))}")
        return Choice(region, 0.0, "REGION was set explicitly")
    if cluster_region:
        cloud, name = parse_cluster_region(cluster_region)
        source = f"the cluster's primary region {cloud}-{name} (CLUSTER_REGION)"
    else:
        found = cluster_region_from_host(host or "")
        if found is None:
            raise RegionError(
                f"the host {host!r} does not name the cluster's region: set REGION (a GCP region), "
                "or CLUSTER_REGION (the cluster's primary region, e.g. gcp-us-east1 or aws-us-east-1)")
        cloud, name = found
        source = f"the cluster's host ({cloud}-{name})"
    if cloud == "gcp" and name in CLOUD_FUNCTIONS_REGIONS:
        return Choice(name, 0.0, f"same region as {source}")
    nearest, km = nearest_functions_region(CLOUDS[cloud][name])
    reason = "Cloud Functions is not offered there" if cloud == "gcp" else f"the cluster runs on {cloud.upper()}"
    return Choice(nearest, km, f"nearest Cloud Functions region to {source}: {reason}")


def host_from_dsn(dsn: str) -> str:
    try:
        host = urlsplit(dsn.strip()).hostname
    except ValueError:
        host = None
    if not host:
        raise RegionError("the connection string has no host")
    return host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m deploy.region", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--host", help="the cluster's host name")
    source.add_argument("--dsn-stdin", action="store_true",
                        help="read the connection string from standard input (keeps it out of argv)")
    parser.add_argument("--region", default="", help="deploy here, whatever the cluster (REGION)")
    parser.add_argument("--cluster-region", default="",
                        help="the cluster's (primary) region, e.g. gcp-us-east1, when the host does not say")
    args = parser.parse_args(argv)
    try:
        dsn = sys.stdin.read().strip() if args.dsn_stdin else ""
        # No DSN is fine when REGION or CLUSTER_REGION says where to go.
        host = host_from_dsn(dsn) if dsn else args.host
        choice = choose(host, args.region or None, args.cluster_region or None)
    except RegionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{choice.region}\t{choice.distance_km:.0f}\t{choice.why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

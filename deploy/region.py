"""Choose the GCP region for the function from the CockroachDB cluster it talks to.

CockroachDB Cloud host names carry the cluster's cloud and region in the label
just before `.cockroachlabs.cloud`, e.g. `name-1234.abc.gcp-us-east1.cockroachlabs.cloud`
(GCP us-east1), `name.aws-eu-west-1.cockroachlabs.cloud`,
`name.azure-westeurope.cockroachlabs.cloud`. Only that label is read: a cluster
may itself be named `gcp-prod-1234`. A GCP region with Cloud Functions is used as
is; otherwise (AWS, Azure, or a GCP region without Cloud Functions) the nearest
Cloud Functions region by great-circle distance between the data centres is chosen.

    python3 -m deploy.region --host HOST [--region REGION] [--cluster-region CLOUD-REGION]
    echo "$DSN" | python3 -m deploy.region --dsn-stdin

prints one line: REGION<TAB>DISTANCE_KM<TAB>WHY.

    python3 -m deploy.region --nearest-of us-central1,us-east1 --to us-east4

prints the offered location nearest to a GCP region, for services offered in
fewer regions than Cloud Functions (Cloud Scheduler): LOCATION<TAB>DISTANCE_KM.
Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from urllib.parse import urlsplit

from deploy.regions import CLOUD_FUNCTIONS_REGIONS, CLOUDS

# A cloud-region label: "gcp-us-east1", "aws-us-east-1", "azure-westeurope".
CLUSTER_REGION = re.compile(r"(gcp|aws|azure)-([a-z0-9-]+)")
CLOUD_DOMAIN = ".cockroachlabs.cloud"
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
    match = CLUSTER_REGION.fullmatch(label.strip().lower())
    if not match:
        raise RegionError(
            f"{label!r} is not a CockroachDB Cloud region such as gcp-us-east1, "
            "aws-us-east-1 or azure-westeurope"
        )
    cloud, region = match.groups()
    if region not in CLOUDS[cloud]:
        raise RegionError(
            f"unknown {cloud.upper()} region {region!r}; set REGION to the GCP region to deploy to"
        )
    return cloud, region


def cluster_region_from_host(host: str) -> tuple[str, str] | None:
    """The cloud and region named by the label just before `.cockroachlabs.cloud`,
    or None when the host names none (a multi-region cluster, another domain)."""
    host = host.lower().rstrip(".")
    if not host.endswith(CLOUD_DOMAIN):
        return None
    label = host[: -len(CLOUD_DOMAIN)].rsplit(".", 1)[-1]
    return parse_cluster_region(label) if CLUSTER_REGION.fullmatch(label) else None


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def nearest_functions_region(point: tuple[float, float]) -> tuple[str, float]:
    return min(
        ((name, distance_km(point, where)) for name, where in CLOUD_FUNCTIONS_REGIONS.items()),
        key=lambda pair: pair[1],
    )


def choose(host: str | None = None, region: str | None = None, cluster_region: str | None = None) -> Choice:
    """The region to deploy to: REGION if given; else from the cluster's region
    (named, for a multi-region cluster's primary, or read from the host)."""
    if region:
        if region not in CLOUD_FUNCTIONS_REGIONS:
            raise RegionError(
                f"REGION={region} does not offer Cloud Functions (2nd gen); "
                f"choose one of: {', '.join(sorted(CLOUD_FUNCTIONS_REGIONS))}"
            )
        return Choice(region, 0.0, "REGION was set explicitly")
    if cluster_region:
        cloud, name = parse_cluster_region(cluster_region)
        source = f"the cluster's primary region {cloud}-{name} (CLUSTER_REGION)"
    else:
        found = cluster_region_from_host(host or "")
        if found is None:
            raise RegionError(
                f"the host {host!r} does not name the cluster's region: set REGION (a GCP region), "
                "or CLUSTER_REGION (the cluster's primary region, e.g. gcp-us-east1 or aws-us-east-1)"
            )
        cloud, name = found
        source = f"the cluster's host ({cloud}-{name})"
    if cloud == "gcp" and name in CLOUD_FUNCTIONS_REGIONS:
        return Choice(name, 0.0, f"same region as {source}")
    nearest, km = nearest_functions_region(CLOUDS[cloud][name])
    reason = (
        "Cloud Functions is not offered there" if cloud == "gcp" else f"the cluster runs on {cloud.upper()}"
    )
    return Choice(nearest, km, f"nearest Cloud Functions region to {source}: {reason}")


def nearest_offered(region: str, offered: list[str]) -> tuple[str, float]:
    """`region` if offered, else the offered GCP location nearest to it (locations
    whose coordinates are unknown here are skipped)."""
    if region in offered:
        return region, 0.0
    where = CLOUDS["gcp"][region]
    known = [(name, distance_km(where, CLOUDS["gcp"][name])) for name in offered if name in CLOUDS["gcp"]]
    if not known:
        raise RegionError(
            f"none of the offered locations ({', '.join(offered) or 'none'}) is a known GCP region"
        )
    return min(known, key=lambda pair: pair[1])


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
    source.add_argument(
        "--dsn-stdin",
        action="store_true",
        help="read the connection string from standard input (keeps it out of argv)",
    )
    parser.add_argument("--region", default="", help="deploy here, whatever the cluster (REGION)")
    parser.add_argument(
        "--cluster-region",
        default="",
        help="the cluster's (primary) region, e.g. gcp-us-east1, when the host does not say",
    )
    parser.add_argument(
        "--nearest-of",
        default=None,
        help="comma-separated locations a service offers: print the one nearest to --to",
    )
    parser.add_argument("--to", default="", help="the GCP region --nearest-of measures from")
    args = parser.parse_args(argv)
    if args.nearest_of is not None:
        try:
            location, km = nearest_offered(args.to, [x for x in args.nearest_of.split(",") if x])
        except (RegionError, KeyError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{location}\t{km:.0f}")
        return 0
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

"""Choose the GCP region for the function from the CockroachDB cluster it talks to.

CockroachDB Cloud host names of single-region Standard and Advanced clusters carry
the cluster's cloud and region in the label just before `.cockroachlabs.cloud`,
e.g. `name-1234.abc.gcp-us-east1.cockroachlabs.cloud` (GCP us-east1),
`name.aws-eu-west-1.cockroachlabs.cloud`. Only that label is read: a cluster may
itself be named `gcp-prod-1234`. Basic and multi-region hosts
(`name-1234.g8z.cockroachlabs.cloud`) name no region: then the cluster's region
is given (CLUSTER_REGION).

Which regions offer Cloud Functions is not known here: deploy.sh asks Google
(`gcloud functions regions list --gen2`) and passes the answer as --offered. The
function goes to the cluster's own GCP region when it is offered, else to the
offered region nearest to the cluster by great-circle distance between the data
centres (deploy/regions.py). A region whose coordinates are not known, where a
distance is needed, is an error naming it: it is never skipped.

    python3 -m deploy.region --locate (--dsn-stdin | --host HOST) [--cluster-region C] [--region R]

prints CLUSTER_LOCATION<TAB>CLUSTER_NAME (e.g. `aws-us-east-1  events-1234`;
either may be empty when --region makes it unnecessary), before any gcloud call.

    python3 -m deploy.region --cluster-region C [--region R] [--offered A,B,...]

prints REGION<TAB>DISTANCE_KM<TAB>WHY; without --offered (deploy.sh --dry-run),
every GCP region with known coordinates is assumed to offer functions.

    python3 -m deploy.region --nearest-of A,B,... --to REGION

prints the offered location nearest to a GCP region (Cloud Scheduler's):
LOCATION<TAB>DISTANCE_KM. Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from urllib.parse import urlsplit

from deploy.regions import CLOUDS

# A cloud-region label: "gcp-us-east1", "aws-us-east-1", "azure-westeurope".
CLUSTER_REGION = re.compile(r"(gcp|aws|azure)-([a-z0-9-]+)")
CLOUD_DOMAIN = ".cockroachlabs.cloud"
EARTH_RADIUS_KM = 6371.0
# Label values: lowercase letters, digits, _ and -, at most 63 characters.
LABEL_VALUE = re.compile(r"[^a-z0-9_-]")


class RegionError(Exception):
    """No region can be chosen; the message says what to set."""


@dataclasses.dataclass(frozen=True)
class Choice:
    region: str
    distance_km: float
    why: str


def parse_cluster_region(label: str) -> tuple[str, str]:
    """("gcp", "us-east1") from "gcp-us-east1". An AWS or Azure region must be known here
    (its distance is always needed); a GCP region may be new, as long as it offers functions."""
    match = CLUSTER_REGION.fullmatch(label.strip().lower())
    if not match:
        raise RegionError(
            f"{label!r} is not a CockroachDB Cloud region such as gcp-us-east1, "
            "aws-us-east-1 or azure-westeurope"
        )
    cloud, region = match.groups()
    if cloud != "gcp" and region not in CLOUDS[cloud]:
        raise RegionError(unknown(cloud, [region]))
    return cloud, region


def unknown(cloud: str, regions: list[str]) -> str:
    names = ", ".join(repr(r) for r in regions)
    return (
        f"unknown {cloud.upper()} region {names}: deploy/regions.py has no coordinates for it, so the "
        "nearest region cannot be measured; add its coordinates there, or set REGION"
    )


def cluster_region_from_host(host: str) -> tuple[str, str] | None:
    """The cloud and region named by the label just before `.cockroachlabs.cloud`,
    or None when the host names none (Basic, multi-region, another domain)."""
    host = host.lower().rstrip(".")
    if not host.endswith(CLOUD_DOMAIN):
        return None
    label = host[: -len(CLOUD_DOMAIN)].rsplit(".", 1)[-1]
    return parse_cluster_region(label) if CLUSTER_REGION.fullmatch(label) else None


def cluster_name(host: str) -> str:
    """The cluster's name as a label value: the host's first label ("events-1234")."""
    return LABEL_VALUE.sub("-", host.lower().split(".", 1)[0])[:63].strip("-_")


def locate(host: str | None, cluster_region: str | None, region: str | None) -> str:
    """The cluster's location as "cloud-region", or "" when REGION makes it unnecessary."""
    if cluster_region:
        cloud, name = parse_cluster_region(cluster_region)
        return f"{cloud}-{name}"
    found = cluster_region_from_host(host or "")
    if found:
        return "-".join(found)
    if region:
        return ""
    raise RegionError(
        f"the host {host!r} does not name the cluster's region (CockroachDB Basic and multi-region "
        "hosts never do): set CLUSTER_REGION (--cluster-region, the cluster's primary region, e.g. "
        "gcp-us-east1 or aws-us-east-1, shown in the CockroachDB Cloud Console), or REGION (a GCP region)"
    )


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def nearest(point: tuple[float, float], offered: list[str]) -> tuple[str, float]:
    """The offered GCP region nearest to `point`; RegionError naming any offered region
    whose coordinates are unknown, since it might be the nearest."""
    missing = [name for name in offered if name not in CLOUDS["gcp"]]
    if missing:
        raise RegionError(unknown("gcp", missing))
    if not offered:
        raise RegionError("no location is offered")
    return min(((name, distance_km(point, CLOUDS["gcp"][name])) for name in offered), key=lambda p: p[1])


def choose(location: str, region: str | None = None, offered: list[str] | None = None) -> Choice:
    """The region to deploy to: REGION if given (and offered); else the cluster's own GCP
    region if offered; else the offered region nearest to the cluster. `offered` None:
    every GCP region with known coordinates (a dry run, which asks nothing)."""
    candidates = sorted(CLOUDS["gcp"]) if offered is None else offered
    if region:
        if offered is not None and region not in offered:
            raise RegionError(
                f"REGION={region} does not offer Cloud Functions (2nd gen) to this project; "
                f"choose one of: {', '.join(sorted(candidates))}"
            )
        return Choice(region, 0.0, "REGION was set explicitly")
    cloud, name = parse_cluster_region(location)
    source = f"the cluster's region {cloud}-{name}"
    if cloud == "gcp" and name in candidates:
        return Choice(name, 0.0, f"same region as {source}")
    if cloud == "gcp" and name not in CLOUDS["gcp"]:
        raise RegionError(unknown("gcp", [name]))
    region, km = nearest(CLOUDS[cloud][name], candidates)
    reason = (
        "Cloud Functions is not offered there" if cloud == "gcp" else f"the cluster runs on {cloud.upper()}"
    )
    return Choice(region, km, f"nearest Cloud Functions region to {source}: {reason}")


def nearest_offered(region: str, offered: list[str]) -> tuple[str, float]:
    """`region` if offered, else the offered GCP location nearest to it."""
    if region in offered:
        return region, 0.0
    if region not in CLOUDS["gcp"]:
        raise RegionError(unknown("gcp", [region]))
    return nearest(CLOUDS["gcp"][region], offered)


def host_from_dsn(dsn: str) -> str:
    try:
        host = urlsplit(dsn.strip()).hostname
    except ValueError:
        host = None
    if not host:
        raise RegionError("the connection string has no host")
    return host


def split(names: str | None) -> list[str] | None:
    return None if names is None else [x for x in names.split(",") if x]


def run(args: argparse.Namespace) -> str:
    """The line to print for the parsed command line."""
    if args.nearest_of is not None:
        location, km = nearest_offered(args.to, split(args.nearest_of) or [])
        return f"{location}\t{km:.0f}"
    if args.locate:
        dsn = sys.stdin.read().strip() if args.dsn_stdin else ""
        # No DSN is fine when REGION or CLUSTER_REGION says where to go.
        host = host_from_dsn(dsn) if dsn else (args.host or "")
        location = locate(host, args.cluster_region or None, args.region or None)
        return f"{location}\t{cluster_name(host) if host else ''}"
    choice = choose(args.cluster_region, args.region or None, split(args.offered))
    return f"{choice.region}\t{choice.distance_km:.0f}\t{choice.why}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m deploy.region", description=__doc__.splitlines()[0])
    parser.add_argument("--locate", action="store_true", help="print the cluster's location and name")
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
        "--offered", default=None, help="comma-separated regions offering Cloud Functions (asked of Google)"
    )
    parser.add_argument(
        "--nearest-of",
        default=None,
        help="comma-separated locations a service offers: print the one nearest to --to",
    )
    parser.add_argument("--to", default="", help="the GCP region --nearest-of measures from")
    try:
        print(run(parser.parse_args(argv)))
    except RegionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

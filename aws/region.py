"""Choose the AWS region for the Lambda function from the CockroachDB cluster it talks to.

    echo "$DSN" | python3 -m aws.region --dsn-stdin [--region R] [--cluster-region C]

prints REGION<TAB>DISTANCE_KM<TAB>WHY. A cluster on AWS (`aws-REGION` in its host,
e.g. `name.aws-eu-west-1.cockroachlabs.cloud`) gets its own region; a cluster on
GCP or Azure gets the AWS region nearest to its data centre (deploy.regions'
coordinates), since the function should run as close to the cluster as it can.
Standard library only.
"""

from __future__ import annotations

import argparse
import sys

from deploy.region import (
    RegionError,
    cluster_region_from_host,
    distance_km,
    host_from_dsn,
    parse_cluster_region,
    unknown,
)
from deploy.regions import CLOUDS

AWS_REGIONS = CLOUDS["aws"]


def choose(
    host: str | None, region: str | None = None, cluster_region: str | None = None
) -> tuple[str, float, str]:
    if region:
        if region not in AWS_REGIONS:
            raise RegionError(
                f"REGION={region} is not an AWS region known here: {', '.join(sorted(AWS_REGIONS))}"
            )
        return region, 0.0, "REGION was set explicitly"
    if cluster_region:
        cloud, name = parse_cluster_region(cluster_region)
        source = f"the cluster's primary region {cloud}-{name} (CLUSTER_REGION)"
    else:
        found = cluster_region_from_host(host or "")
        if found is None:
            raise RegionError(
                f"the host {host!r} does not name the cluster's region (CockroachDB Basic and multi-region "
                "hosts never do): set CLUSTER_REGION (the cluster's primary region, e.g. aws-us-east-1 or "
                "gcp-us-east1, shown in the CockroachDB Cloud Console), or REGION (an AWS region)"
            )
        cloud, name = found
        source = f"the cluster's host ({cloud}-{name})"
    if cloud == "aws":
        return name, 0.0, f"same region as {source}"
    if name not in CLOUDS[cloud]:
        raise RegionError(unknown(cloud, [name]))
    where = CLOUDS[cloud][name]
    nearest, km = min(
        ((aws, distance_km(where, point)) for aws, point in AWS_REGIONS.items()), key=lambda p: p[1]
    )
    return nearest, km, f"nearest AWS region to {source}: the cluster runs on {cloud.upper()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m aws.region", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn-stdin", action="store_true", help="read the connection string from standard input"
    )
    parser.add_argument("--region", default="")
    parser.add_argument("--cluster-region", default="")
    args = parser.parse_args(argv)
    try:
        dsn = sys.stdin.read().strip() if args.dsn_stdin else ""
        host = host_from_dsn(dsn) if dsn else None
        region, km, why = choose(host, args.region or None, args.cluster_region or None)
    except RegionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{region}\t{km:.0f}\t{why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Check a connection string as the deployed function will read it, before deploy.sh stores it.

    printf '%s' "$DSN" | python -m deploy.dsn_check

The DSN comes on standard input only (never argv, where `ps` shows it). It goes
through the function's own translation, `db.dsn.parse_dsn`, so anything the
function would refuse at run time (`sslmode=prefer`, a `mysql://` URL, an
unknown parameter, an `options` value its statement timeout cannot be merged
into) stops the deployment here, with the function's message.
Files the DSN names (`sslrootcert`, `sslcert`, `sslkey`) must also reach the
function: they must lie inside the function's folder and be uploaded with it
(not excluded by .gcloudignore); a path on the deployer's machine, such as the
`$HOME/.postgresql/root.crt` the CockroachDB Cloud console suggests, is not.

Exit 0 and no output when the DSN will work; else exit 2 and one message on
standard error. No message contains the password: parse_dsn promises that, and
the messages here name only parameters and paths. Needs the function's
dependencies (requirements.txt), unlike the rest of deploy/.

    printf '%s' "$DSN" | python -m deploy.dsn_check --locate

prints where the cluster is and its name, CLOUD-REGION<TAB>NAME, read from the
host: CockroachDB Cloud hosts of single-region clusters carry the cloud and
region in the label before `.cockroachlabs.cloud`
(`events-1234.abc.gcp-us-east1.cockroachlabs.cloud` gives `gcp-us-east1`).
Other hosts give an empty location: deploy.sh then asks for --region.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_PARAMETERS = ("sslrootcert", "sslcert", "sslkey")
CA_HOME = "db/certs/ca.crt"  # where the CA goes: shipped with the code, relative to main.py
# The cloud-region label of a CockroachDB Cloud host, just before the domain.
CLUSTER_HOST = re.compile(r"(?:.*\.)?((?:gcp|aws|azure)-[a-z0-9-]+)\.cockroachlabs\.cloud\.?")
LABEL_VALUE = re.compile(r"[^a-z0-9_-]")  # what a label value may not hold


def locate(dsn: str) -> tuple[str, str]:
    """(CLOUD-REGION or "", cluster name as a label value) from the DSN's host."""
    host = (urlsplit(dsn.strip()).hostname or "").lower()
    match = CLUSTER_HOST.fullmatch(host)
    name = LABEL_VALUE.sub("-", host.split(".", 1)[0])[:63].strip("-_")
    return (match.group(1) if match else ""), name


def uploaded_files() -> set[str]:
    """What `gcloud functions deploy --source` uploads, as gcloud itself lists it."""
    result = subprocess.run(
        ["gcloud", "meta", "list-files-for-upload", ROOT], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def problem(dsn: str, uploaded: Callable[[], set[str]] = uploaded_files) -> str | None:
    """Why the deployed function could not use `dsn`, or None."""
    from core.errors import ConfigurationError
    from db.dsn import parse_dsn

    try:
        parse_dsn(dsn)
    except ConfigurationError as err:
        return f"the function would refuse this connection string: {err}"
    query = dict(parse_qsl(urlsplit(dsn.strip()).query))
    for parameter in FILE_PARAMETERS:
        value = query.get(parameter)
        if not value or (parameter == "sslrootcert" and value == "system"):
            continue
        path = os.path.realpath(os.path.join(ROOT, os.path.expanduser(value)))
        inside = path.startswith(ROOT + os.sep)
        relative = os.path.relpath(path, ROOT)
        if inside and relative in uploaded():
            continue
        where = "is excluded by .gcloudignore" if inside else "is a file on this machine only"
        fix = (
            f"copy it into the function's folder (e.g. {CA_HOME}) and set {parameter}={CA_HOME}, a path "
            "relative to main.py, so that it is uploaded with the code"
        )
        if parameter == "sslrootcert":
            fix += "; or use sslrootcert=system if the server's certificate chains to a CA the system trusts"
        return f"{parameter}={value} {where}: the deployed function has only its own files; {fix}"
    return None


def main() -> int:
    if sys.argv[1:] == ["--locate"]:
        print("\t".join(locate(sys.stdin.read())))
        return 0
    try:
        import sqlalchemy  # noqa: F401 - the function's translation needs its dependencies
    except ImportError:
        print(
            "error: checking the DSN needs the function's dependencies: run scripts/bootstrap.sh "
            "(or set PYTHON to a Python with requirements.txt installed)",
            file=sys.stderr,
        )
        return 2
    message = problem(sys.stdin.read())
    if message:
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

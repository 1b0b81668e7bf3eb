"""A local stand-in for the Google Cloud APIs that deploy.sh's gcloud commands call.

The real Google Cloud CLI is pointed at it through its documented
`api_endpoint_overrides/<api>` properties (one URL prefix per API, so the
stand-in knows which service a request is for), and authenticates as a service
account whose key the stand-in trusts, through `auth/credential_file_override`
and `auth/token_host`. So deploy.sh runs for real and offline: `gcloud_env()`
writes such a configuration.

By default the stand-in behaves like a project created today:

- only the APIs Google enables in every new project are on; any other API
  answers 403 SERVICE_DISABLED, with the ErrorInfo details the real services
  send, until `services enable` turns it on;
- Cloud Build runs as the Compute Engine default service account, which holds
  no role, so a build that does not name its own build service account fails
  as real builds do ("Access to bucket gcf-v2-sources-... denied");
- the deployer's service account is the project's owner.

Faults a test switches on, each answering as the real service does:

- `iam_propagation_seconds`: a new service account is unknown to IAM policies
  for that long after its creation ("Service account X does not exist.", 400);
  `iam_propagation_refusals`: the same, for the next N bindings naming a new
  account (deterministic, where timing would make a test flaky);
- `functions_regions`: where Cloud Functions (2nd gen) is offered, what
  `gcloud functions regions list` answers (default: GCP_REGIONS);
- `scheduler_locations`: where Cloud Scheduler is offered; a job elsewhere is
  refused with Scheduler's own 403;
- `deny_global_locations`: the organisation enforces
  constraints/gcp.resourceLocations without `global`, so automatic secret
  replication is refused (400 FAILED_PRECONDITION with PreconditionFailure);
- `refuse_delete`: a DELETE of that resource is refused (403), as for a deployer
  without the role;
- `invoke_forbidden_seconds`: calling the function answers 403 for that long,
  counted from the first call after a deployment (its IAM still propagating);
- `function_backend`: what the deployed function answers (default 200). A
  function whose ingress is not ALLOW_ALL answers 404 instead, as Cloud Run's
  front end does for a caller outside the project (every caller here is).

Every request is recorded for the tests to assert on. `python
tests/deploy/gcloud_standin.py first-run` prints a first deploy into a new
project.
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import copy
import dataclasses
import datetime
import http.server
import json
import os
import pathlib
import re
import secrets as token_source
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# gcloud's override property name -> (service name, title in Google's error messages).
APIS = {
    "serviceusage": ("serviceusage.googleapis.com", "Service Usage API"),
    "cloudresourcemanager": ("cloudresourcemanager.googleapis.com", "Cloud Resource Manager API"),
    "iam": ("iam.googleapis.com", "Identity and Access Management (IAM) API"),
    "secretmanager": ("secretmanager.googleapis.com", "Secret Manager API"),
    "cloudfunctions": ("cloudfunctions.googleapis.com", "Cloud Functions API"),
    "run": ("run.googleapis.com", "Cloud Run Admin API"),
    "cloudbuild": ("cloudbuild.googleapis.com", "Cloud Build API"),
    "artifactregistry": ("artifactregistry.googleapis.com", "Artifact Registry API"),
    "cloudscheduler": ("cloudscheduler.googleapis.com", "Cloud Scheduler API"),
    "logging": ("logging.googleapis.com", "Cloud Logging API"),
    "vpcaccess": ("vpcaccess.googleapis.com", "Serverless VPC Access API"),
    "monitoring": ("monitoring.googleapis.com", "Cloud Monitoring API"),
}
# Collections a GET lists (the location may be "-", every location, as `gcloud functions list` asks).
LISTED = ("functions", "jobs", "metrics", "alertPolicies")
# Regions offering Cloud Functions and Cloud Scheduler unless a test says otherwise (a sample).
GCP_REGIONS = ("europe-west1", "europe-west4", "us-central1", "us-east1", "us-east4", "us-west1")
# Enabled in every project Google creates ("Services enabled by default",
# https://cloud.google.com/service-usage/docs/enabled-service, read 2026-11-27);
# Cloud Resource Manager, IAM and the rest are not.
ENABLED_IN_NEW_PROJECTS = frozenset(
    {
        "serviceusage.googleapis.com",
        "servicemanagement.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
        "storage.googleapis.com",
        "storage-api.googleapis.com",
        "storage-component.googleapis.com",
        "cloudtrace.googleapis.com",
        "bigquery.googleapis.com",
        "sql-component.googleapis.com",
        "datastore.googleapis.com",
    }
)
# What a function build needs of its build service account (Cloud Build fetches
# the source, writes logs, pushes the image), and the roles that grant it
# (https://cloud.google.com/run/docs/reference/iam/roles, read 2026-11-27).
BUILD_PERMISSIONS = (
    "storage.objects.get",
    "logging.logEntries.create",
    "artifactregistry.repositories.uploadArtifacts",
)
ROLE_PERMISSIONS = {
    "roles/owner": set(BUILD_PERMISSIONS) | {"run.routes.invoke"},
    "roles/editor": set(BUILD_PERMISSIONS) | {"run.routes.invoke"},
    "roles/run.builder": set(BUILD_PERMISSIONS),
    "roles/cloudbuild.builds.builder": set(BUILD_PERMISSIONS),
    "roles/storage.objectViewer": {"storage.objects.get"},
    "roles/storage.objectAdmin": {"storage.objects.get"},
    "roles/logging.logWriter": {"logging.logEntries.create"},
    "roles/artifactregistry.writer": {"artifactregistry.repositories.uploadArtifacts"},
    "roles/run.invoker": {"run.routes.invoke"},
    "roles/run.admin": {"run.routes.invoke"},
}
RUNTIMES = ("python311", "python312", "python313")
GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"
SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    query: dict
    body: object
    api: str = ""
    status: int = 0
    at: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def action(self) -> str:
        return f"{self.method} {self.path}"


@dataclasses.dataclass(frozen=True)
class Deployer:
    """The service account deploy.sh runs as, with a real RSA key."""

    email: str
    key_file: pathlib.Path
    public_key: object


class GoogleCloudStandIn:
    def __init__(self, project: str = "demo-project", project_number: str = "271828182845") -> None:
        self.project = project
        self.project_number = project_number
        self.deployer_email = f"deployer@{project}.iam.gserviceaccount.com"
        self.requests: list[Recorded] = []
        self.resources: dict[str, dict] = {}
        self.policies: dict[str, dict] = {
            f"projects/{project}": {
                "version": 1,
                "etag": "BwAAAA==",
                "bindings": [{"role": "roles/owner", "members": [f"serviceAccount:{self.deployer_email}"]}],
            },
        }
        self.enabled = set(ENABLED_IN_NEW_PROJECTS)
        self.uploads: dict[str, bytes] = {}
        # A function's Cloud Run service: its revisions, oldest first, and its traffic split.
        self.run_services: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self.log_entries: list[dict] = []
        self.created_at: dict[str, float] = {}  # service account email -> time.monotonic()
        self.first_called_at: dict[str, float] = {}  # function name -> first call since its deployment
        self.iam_refusals: list[str] = []  # "<resource> <email>" for each propagation refusal
        self.trusted_keys: dict[str, object] = {}
        self._access_tokens: dict[str, str] = {}
        self._id_tokens: dict[str, dict] = {}
        # Faults and behaviour, see the module docstring.
        self.iam_propagation_seconds = 0.0
        self.iam_propagation_refusals = 0
        self.functions_regions: list[str] = list(GCP_REGIONS)
        self.scheduler_locations: list[str] = list(GCP_REGIONS)
        self.deny_global_locations = False
        self.refuse_delete = ""  # a resource name a DELETE is refused for (403), as without the role
        self.invoke_forbidden_seconds = 0.0
        self.function_backend: Callable[[], tuple[int, bytes]] = lambda: (200, b'{"status": "ok"}')
        self._lock = threading.RLock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> GoogleCloudStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clone(self) -> GoogleCloudStandIn:
        """A new, started stand-in holding this one's state (not its request log):
        the same project as it is now, for a test that continues from it."""
        twin = GoogleCloudStandIn(self.project, self.project_number)
        with self._lock:
            for name in (
                "resources",
                "policies",
                "enabled",
                "uploads",
                "run_services",
                "operations",
                "log_entries",
                "trusted_keys",
                "created_at",
                "iam_propagation_seconds",
                "iam_propagation_refusals",
                "functions_regions",
                "scheduler_locations",
                "deny_global_locations",
                "invoke_forbidden_seconds",
                "function_backend",
            ):
                setattr(
                    twin,
                    name,
                    copy.copy(getattr(self, name))
                    if name in ("trusted_keys", "function_backend")
                    else copy.deepcopy(getattr(self, name)),
                )
        return twin.start()

    def find(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def trust(self, deployer: Deployer) -> None:
        self.trusted_keys[deployer.email] = deployer.public_key

    def enable_all(self) -> None:
        """Every API deploy.sh uses on, as in a project deployed to before."""
        self.enabled |= {service for service, _ in APIS.values()}

    def seed_function(self, region: str, name: str) -> dict:
        """A function deployed earlier, for tests that begin after a deployment: every API
        on, built by the default build account (given the role it needs), ACTIVE."""
        with self._lock:
            self.enable_all()
            self.policies[f"projects/{self.project}"]["bindings"].append(
                {"role": "roles/run.builder", "members": [f"serviceAccount:{self._compute_account()}"]}
            )
            self._create(
                f"projects/{self.project}/locations/{region}/functions",
                {"functionId": [name]},
                {"buildConfig": {"runtime": "python313", "entryPoint": "handler"}, "serviceConfig": {}},
            )
            return self.resources[f"projects/{self.project}/locations/{region}/functions/{name}"]

    def function_url(self, region: str, name: str) -> str:
        return f"{self.url}fn/{self.project}/{region}/{name}"

    # ------------------------------------------------------------ dispatch

    def respond(self, method: str, path: str, query: dict, body, headers) -> tuple[int, object, str]:
        """(status, JSON reply, api) for one request. `gcloud run` sends the region in the
        host name (REGION-run.standin.test, through the stand-in as its proxy)."""
        if path == "/token":
            return (*self._token(body), "token")
        if path.startswith("/upload/") and method == "PUT":
            with self._lock:
                self.uploads[path] = body if isinstance(body, bytes) else b""
            return 200, {}, "upload"
        if path.startswith("/fn/"):
            return (*self._invoke(path, headers), "function")
        api, _, rest = path.lstrip("/").partition("/")
        if api not in APIS:
            return 404, _error(404, f"the stand-in serves no API at {path}", "NOT_FOUND"), api
        if not self._authenticated(headers):
            return (
                401,
                _error(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    "UNAUTHENTICATED",
                ),
                api,
            )
        service, title = APIS[api]
        if service not in self.enabled:
            return 403, self._service_disabled(service, title), api
        if api == "cloudfunctions" and method == "GET" and re.fullmatch(r"v1/.*/functions/?", rest):
            return 200, {}, api  # 1st gen functions: deploy.sh makes none
        name = re.sub(r"^v\d+(alpha|beta)?\d*/", "", rest.rstrip("/"))
        verb = None
        if ":" in name.rsplit("/", 1)[-1]:
            name, verb = name.rsplit(":", 1)
        with self._lock:
            if api == "run":
                host = headers.get("Host") or ""
                status, reply = self._api_run(method, name, verb, query, body, host.split("-run.", 1)[0])
            else:
                status, reply = getattr(self, f"_api_{api}", self._api_generic)(
                    method, name, verb, query, body
                )
        return status, reply, api

    # ------------------------------------------------------------ per API

    def _api_serviceusage(self, method, name, verb, query, body):
        if verb == "batchEnable":
            self.enabled |= set(body.get("serviceIds", []))
            return 200, {"name": "operations/acat.enable", "done": True, "response": {}}
        if verb == "enable":
            self.enabled.add(name.rsplit("/", 1)[1])
            return 200, {"name": "operations/acat.enable", "done": True, "response": {}}
        if method == "GET" and re.fullmatch(r"projects/[^/]+/services/[^/]+", name):
            service = name.rsplit("/", 1)[1]
            return 200, {"name": name, "state": "ENABLED" if service in self.enabled else "DISABLED"}
        if method == "GET" and name.endswith("/services"):
            return 200, {
                "services": [
                    {
                        "name": f"projects/{self.project_number}/services/{s}",
                        "config": {"name": s},
                        "state": "ENABLED",
                    }
                    for s in sorted(self.enabled)
                ]
            }
        return self._api_generic(method, name, verb, query, body)

    def _api_cloudresourcemanager(self, method, name, verb, query, body):
        if method == "GET" and re.fullmatch(r"projects/[^/]+", name):
            return 200, {
                "projectId": self.project,
                "projectNumber": self.project_number,
                "name": self.project,
                "lifecycleState": "ACTIVE",
            }
        return self._api_generic(method, name, verb, query, body)

    def _api_cloudscheduler(self, method, name, verb, query, body):
        if method == "GET" and re.fullmatch(r"projects/[^/]+/locations", name):
            return 200, {
                "locations": [
                    {"name": f"projects/{self.project}/locations/{location}", "locationId": location}
                    for location in self.scheduler_locations
                ]
            }
        location = re.match(r"projects/[^/]+/locations/([^/]+)", name)
        if location and location.group(1) not in self.scheduler_locations:
            # What Cloud Scheduler answers for a region it does not serve.
            permission = {"GET": "get", "POST": "create", "PATCH": "update", "DELETE": "delete"}[method]
            resource = f"projects/{self.project}/locations/{location.group(1)}"
            return 403, _error(
                403,
                f"The principal (user or service account) lacks IAM permission "
                f'"cloudscheduler.jobs.{permission}" for the resource "{resource}" '
                f"(or the resource may not exist).",
                "PERMISSION_DENIED",
            )
        return self._api_generic(method, name, verb, query, body)

    def _api_secretmanager(self, method, name, verb, query, body):
        if (
            method == "POST"
            and name.endswith("/secrets")
            and self.deny_global_locations
            and "automatic" in (body or {}).get("replication", {})
        ):
            message = (
                f"Constraint constraints/gcp.resourceLocations violated for "
                f"[orgpolicy:projects/{self.project_number}] attempting to create a secret in [global]. "
                "For more information, see "
                "https://cloud.google.com/resource-manager/docs/organization-policy/defining-locations."
            )
            return 400, _error(
                400,
                message,
                "FAILED_PRECONDITION",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                        "violations": [
                            {
                                "type": "constraints/gcp.resourceLocations",
                                "subject": f"orgpolicy:projects/{self.project_number}",
                                "description": message,
                            }
                        ],
                    }
                ],
            )
        if verb == "addVersion":
            versions = [k for k in self.resources if k.startswith(f"{name}/versions/")]
            version = f"{name}/versions/{len(versions) + 1}"
            self.resources[version] = {"name": version, "state": "ENABLED", "data": body["payload"]["data"]}
            # Like the real API: confirm the checksum gcloud sent was verified.
            return 200, {
                "name": version,
                "state": "ENABLED",
                "clientSpecifiedPayloadChecksum": "dataCrc32c" in body["payload"],
            }
        if verb == "access":
            if name.endswith("/versions/latest"):
                prefix = name[: -len("latest")]
                versions = sorted(
                    (k for k in self.resources if k.startswith(prefix)),
                    key=lambda k: int(k.rsplit("/", 1)[1]),
                )
                name = versions[-1] if versions else name
            if name not in self.resources:
                return 404, _error(404, f"Secret Version [{name}] not found or has no versions.", "NOT_FOUND")
            return 200, {"name": name, "payload": {"data": self.resources[name]["data"]}}
        if method == "GET" and name.endswith("/versions") and name[: -len("/versions")] in self.resources:
            versions = [
                {k: v for k, v in r.items() if k != "data"}
                for key, r in self.resources.items()
                if re.fullmatch(rf"{re.escape(name)}/\d+", key)
            ]
            return 200, {"versions": versions[::-1], "totalSize": len(versions)}
        if method == "DELETE" and name in self.resources:
            for key in [k for k in self.resources if k.startswith(f"{name}/versions/")]:
                del self.resources[key]
            self.policies.pop(name, None)
        return self._api_generic(method, name, verb, query, body)

    def _api_cloudfunctions(self, method, name, verb, query, body):
        if method == "GET" and re.fullmatch(r"projects/[^/]+/locations", name):
            return 200, {
                "locations": [
                    {"name": f"projects/{self.project}/locations/{region}", "locationId": region}
                    for region in self.functions_regions
                ]
            }
        if method == "GET" and name.endswith("/runtimes"):
            return 200, {
                "runtimes": [
                    {"name": runtime, "displayName": runtime, "stage": "GA", "environment": "GEN_2"}
                    for runtime in RUNTIMES
                ]
            }
        if verb == "generateUploadUrl":
            upload = f"{self.url}upload/{len(self.uploads) + 1}.zip"
            return 200, {
                "uploadUrl": upload,
                "storageSource": {"bucket": "standin", "object": f"{len(self.uploads) + 1}.zip"},
            }
        return self._api_generic(method, name, verb, query, body)

    def _api_cloudbuild(self, method, name, verb, query, body):
        if method == "GET" and name.endswith("/defaultServiceAccount"):
            # Since mid-2024, new projects build as the Compute Engine default service account.
            return 200, {
                "name": name,
                "serviceAccountEmail": f"projects/{self.project}/serviceAccounts/{self._compute_account()}",
            }
        return self._api_generic(method, name, verb, query, body)

    def _api_logging(self, method, name, verb, query, body):
        if method == "POST" and name == "entries" and verb == "list":
            matching = [e for e in self.log_entries if _log_filter(body.get("filter", ""), e)]
            matching.sort(key=lambda e: e["timestamp"], reverse="desc" in body.get("orderBy", ""))
            return 200, {"entries": matching[: int(body.get("pageSize") or 1000)]}
        return self._api_generic(method, name, verb, query, body)

    def _api_generic(self, method, name, verb, query, body):
        if verb == "getIamPolicy":
            return 200, self.policies.get(name, {"etag": "BwAAAA==", "version": 1})
        if verb == "setIamPolicy":
            return self._set_iam_policy(name, body.get("policy", {}))
        if "/operations/" in name or name.startswith("operations/"):
            return 200, self.operations.get(name, {"name": name, "done": True})
        if method == "GET":
            if name.startswith("projects/-/serviceAccounts/"):
                email = name.rsplit("/", 1)[1]
                name = next((k for k in self.resources if k.endswith(f"/serviceAccounts/{email}")), name)
            if name.rsplit("/", 1)[-1] in LISTED:
                pattern = re.escape(name).replace("/\\-/", "/[^/]+/") + "/[^/]+"
                return 200, {
                    name.rsplit("/", 1)[-1]: [
                        r for k, r in self.resources.items() if re.fullmatch(pattern, k)
                    ]
                }
            if name.endswith("/serviceAccounts"):
                return 200, {
                    "accounts": [
                        r for k, r in self.resources.items() if re.fullmatch(rf"{re.escape(name)}/[^/]+", k)
                    ]
                }
            if name in self.resources:
                return 200, self.resources[name]
            return 404, _error(404, f"Resource '{name}' was not found", "NOT_FOUND")
        if method == "POST":
            return self._create(name, query, body)
        if method == "PATCH":
            if name not in self.resources:
                return 404, _error(404, f"Resource '{name}' was not found", "NOT_FOUND")
            self.resources[name] = _patch(
                self.resources[name], {**body, "name": name}, query.get("updateMask")
            )
            return 200, self._after_write(name)
        if method == "PUT" and name in self.resources:  # logging metrics are replaced whole
            self.resources[name] = {**body, "name": name}
            return 200, self.resources[name]
        if method == "DELETE":
            if self.refuse_delete and name == self.refuse_delete:
                return 403, _error(403, f"Permission denied on '{name}'", "PERMISSION_DENIED")
            if "/serviceAccounts/" in name:
                email = name.rsplit("/", 1)[1]
                name = next((k for k in self.resources if k.endswith(f"/serviceAccounts/{email}")), name)
                if name not in self.resources:
                    return 404, _error(404, f"Service account {email} does not exist.", "NOT_FOUND")
            if name not in self.resources:
                return 404, _error(404, f"Resource '{name}' was not found", "NOT_FOUND")
            del self.resources[name]
            self.policies.pop(name, None)
            if "/functions/" in name:
                self.policies.pop(name.replace("/functions/", "/services/"), None)
                return 200, self._operation(name, {"@type": "type.googleapis.com/google.protobuf.Empty"})
            return 200, {}
        return 400, _error(400, f"the stand-in does not know {method} {name}", "INVALID_ARGUMENT")

    # ------------------------------------------------------------ resources

    def _create(self, collection: str, query: dict, body) -> tuple[int, object]:
        body = copy.deepcopy(body) if isinstance(body, dict) else {}  # the recorded request stays as sent
        if collection.endswith("/serviceAccounts"):
            email = f"{body['accountId']}@{self.project}.iam.gserviceaccount.com"
            name = f"{collection}/{email}"
            resource = {
                **body.get("serviceAccount", {}),
                "name": name,
                "email": email,
                "projectId": self.project,
                "uniqueId": str(10**20 + len(self.resources)),
            }
        else:
            resource_id = next((v[0] for k, v in query.items() if k.endswith("Id")), None)
            resource_id = resource_id or body.get("name", "").rsplit("/", 1)[-1]
            if collection.endswith("/alertPolicies"):  # the server names a policy
                resource_id = str(1000 + len(self.resources))
            name = f"{collection}/{resource_id}"
            resource = {**body, "name": name}
        if name in self.resources:
            return 409, _error(409, f"{name} already exists", "ALREADY_EXISTS")
        if collection.endswith("/serviceAccounts"):
            self.created_at[resource["email"]] = time.monotonic()
        if collection.endswith("/functions"):
            region = collection.split("/")[3]
            resource.setdefault("serviceConfig", {})
            resource["serviceConfig"]["uri"] = self.function_url(region, resource_id)
            resource["serviceConfig"]["service"] = (
                f"{collection.rsplit('/functions', 1)[0]}/services/{resource_id}"
            )
            resource["environment"] = "GEN_2"
            resource["url"] = resource["serviceConfig"]["uri"]
            repository = f"projects/{self.project}/locations/{region}/repositories/gcf-artifacts"
            self.resources.setdefault(repository, {"name": repository, "format": "DOCKER"})
        self.resources[name] = resource
        return 200, self._after_write(name)

    def _after_write(self, name: str) -> dict:
        resource = self.resources[name]
        if "/functions/" not in name:
            return resource
        self.first_called_at.pop(name.rsplit("/", 1)[1], None)
        failure = self._build_failure(name, resource)
        resource["state"] = "FAILED" if failure else "ACTIVE"
        if failure:
            return self._operation(name, None, error={"code": 13, "message": failure})
        self._new_revision(name, resource)
        return self._operation(
            name, {"@type": "type.googleapis.com/google.cloud.functions.v2.Function", **resource}
        )

    def _new_revision(self, name: str, function: dict) -> None:
        """A deploy makes a revision of the function's Cloud Run service; with
        allTrafficOnLatestRevision (or on the first) the latest one serves everything."""
        service = self.run_services.setdefault(name, {"revisions": [], "traffic": [], "generation": 0})
        revision = f"{name.rsplit('/', 1)[1]}-{len(service['revisions']) + 1:05d}-{token_source.token_hex(2)}"
        service["revisions"].append(revision)
        if function["serviceConfig"].get("allTrafficOnLatestRevision") or len(service["revisions"]) == 1:
            service["traffic"] = [{"latestRevision": True, "percent": 100}]
        service["generation"] += 1
        function["serviceConfig"]["revision"] = revision

    def serving_revisions(self, region: str, name: str) -> dict[str, int]:
        """Which revisions of the function's service get traffic: name -> percent."""
        service = self.run_services[f"projects/{self.project}/locations/{region}/functions/{name}"]
        latest = service["revisions"][-1]
        return {t.get("revisionName") or latest: t["percent"] for t in service["traffic"]}

    def service_max_instances(self, region: str, name: str) -> int | None:
        """The service-level maximum of the function's service, across its revisions."""
        service = self.run_services[f"projects/{self.project}/locations/{region}/functions/{name}"]
        value = service.get("annotations", {}).get("run.googleapis.com/maxScale")
        return None if value is None else int(value)

    def _api_run(self, method, name, verb, query, body, region: str = ""):
        """The Cloud Run Admin API v1 (Knative resources) at the regional endpoint `gcloud run`
        uses: a function's service, its revisions, and replaceService (a traffic change, or the
        service-level maximum)."""
        match = re.fullmatch(
            r"apis/serving\.knative\.dev/v1/namespaces/([^/]+)/(services|revisions)(?:/([^/]+))?", name
        )
        if not match:
            return self._api_generic(method, name, verb, query, body)
        _, kind, item = match.groups()
        if kind == "revisions":
            wanted = (query.get("labelSelector") or [""])[0].rpartition("=")[2].strip()
            key = f"projects/{self.project}/locations/{region}/functions/{wanted}"
            revisions = self.run_services.get(key, {}).get("revisions", [])
            items = [self._knative_revision(region, wanted, r) for r in reversed(revisions)]
            return 200, {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "RevisionList",
                "metadata": {},
                "items": items,
            }
        key = f"projects/{self.project}/locations/{region}/functions/{item}"
        if key not in self.run_services:
            return 404, _error(
                404, f"Resource '{item}' of kind 'SERVICE' in region '{region}' does not exist.", "NOT_FOUND"
            )
        if method == "PUT":
            service = self.run_services[key]
            # The service-level maximum (`gcloud beta run services update --max`) is an annotation.
            service["annotations"] = dict(body["metadata"].get("annotations", {}))
            service["traffic"] = [
                {k: t[k] for k in ("revisionName", "latestRevision", "percent") if k in t}
                for t in body["spec"].get("traffic", [])
            ]
            service["generation"] += 1
        return 200, self._knative_service(region, item)

    def _knative_service(self, region: str, name: str) -> dict:
        service = self.run_services[f"projects/{self.project}/locations/{region}/functions/{name}"]
        latest = service["revisions"][-1]
        status_traffic = [
            {
                "revisionName": t.get("revisionName") or latest,
                "percent": t["percent"],
                **({"latestRevision": True} if t.get("latestRevision") else {}),
            }
            for t in service["traffic"]
        ]
        return {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": self.project_number,
                "generation": service["generation"],
                "labels": {"cloud.googleapis.com/location": region},
                "annotations": copy.deepcopy(service.get("annotations", {})),
            },
            "spec": {
                "template": {"metadata": {"annotations": {}}, "spec": {"containers": [{"image": "standin"}]}},
                "traffic": copy.deepcopy(service["traffic"]),
            },
            "status": {
                "observedGeneration": service["generation"],
                "conditions": [
                    {"type": t, "status": "True"} for t in ("Ready", "ConfigurationsReady", "RoutesReady")
                ],
                "latestCreatedRevisionName": latest,
                "latestReadyRevisionName": latest,
                "traffic": status_traffic,
                "url": self.function_url(region, name),
                "address": {"url": self.function_url(region, name)},
            },
        }

    def _knative_revision(self, region: str, service: str, revision: str) -> dict:
        return {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": {
                "name": revision,
                "namespace": self.project_number,
                "labels": {"serving.knative.dev/service": service, "cloud.googleapis.com/location": region},
                "annotations": {},
            },
            "spec": {"containers": [{"image": "standin"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }

    def _operation(self, target: str, response: dict | None, error: dict | None = None) -> dict:
        location = target.split("/functions/")[0]
        operation = {
            "name": f"{location}/operations/op-{len(self.requests)}",
            "done": True,
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.functions.v2.OperationMetadata",
                "target": target,
                "stages": [{"name": stage, "state": "COMPLETE"} for stage in ("BUILD", "SERVICE")],
            },
        }
        operation.update({"error": error} if error else {"response": response})
        self.operations[operation["name"]] = operation
        return operation

    def _compute_account(self) -> str:
        return f"{self.project_number}-compute@developer.gserviceaccount.com"

    def _build_failure(self, name: str, function: dict) -> str | None:
        """Cloud Build's message when the build service account lacks a permission, else None."""
        account = function.get("buildConfig", {}).get("serviceAccount", "").rsplit("/", 1)[-1]
        account = account or self._compute_account()
        granted = set()
        for binding in self.policies[f"projects/{self.project}"].get("bindings", []):
            if f"serviceAccount:{account}" in binding.get("members", []):
                granted |= ROLE_PERMISSIONS.get(binding["role"], set())
        region, function_id = name.split("/")[3], name.rsplit("/", 1)[1]
        logs = (
            f". For more details see the logs at https://console.cloud.google.com/cloud-build/builds;"
            f"region={region}/5c5a1c1e?project={self.project_number}"
        )
        if "storage.objects.get" not in granted:
            bucket = f"gcf-v2-sources-{self.project_number}-{region}"
            return (
                f"Build failed with status: FAILURE and message: failed to Fetch: failed to download archive "
                f"gs://{bucket}/{function_id}/function-source.zip: Access to bucket {bucket} denied. You must "
                f"grant Storage Object Viewer permission to {account}. If you are using VPC Service Controls, "
                f"you must also grant it access to your service perimeter.\n{logs}"
            )
        if "logging.logEntries.create" not in granted:
            return (
                f"Build failed with status: FAILURE. The service account running this build "
                f"projects/{self.project}/serviceAccounts/{account} does not have permission to write logs to "
                f"Cloud Logging. To fix this, grant the Logs Writer (roles/logging.logWriter) role to the "
                f"service account.{logs}"
            )
        if "artifactregistry.repositories.uploadArtifacts" not in granted:
            return (
                "Build failed with status: FAILURE. Could not build the function due to a missing permission "
                "on the build service account. If you didn't revoke that permission explicitly, this could be "
                "caused by a change in the organization policies." + logs
            )
        return None

    def _set_iam_policy(self, name: str, policy: dict) -> tuple[int, object]:
        for binding in policy.get("bindings", []):
            for member in binding.get("members", []):
                email = member.partition(":")[2]
                if (
                    not member.startswith("serviceAccount:")
                    or not email.endswith(f"@{self.project}.iam.gserviceaccount.com")
                    or email == self.deployer_email
                ):
                    continue
                created = self.created_at.get(email)
                propagating = created is not None and (
                    time.monotonic() - created < self.iam_propagation_seconds
                    or self.iam_propagation_refusals > 0
                )
                if created is None or propagating:
                    if propagating:
                        self.iam_refusals.append(f"{name} {email}")
                        self.iam_propagation_refusals = max(0, self.iam_propagation_refusals - 1)
                    return 400, _error(400, f"Service account {email} does not exist.", "INVALID_ARGUMENT")
        stored = {**policy, "etag": base64.b64encode(os.urandom(6)).decode()}
        self.policies[name] = stored
        return 200, stored

    # ------------------------------------------------------------ auth and the function

    def _token(self, body) -> tuple[int, object]:
        """Google's OAuth token endpoint for a service account's signed JWT assertion."""
        form = urllib.parse.parse_qs(body.decode() if isinstance(body, bytes) else "")
        assertion = form.get("assertion", [""])[0]
        try:
            header, payload, signature = assertion.split(".")
            claims = json.loads(_b64decode(payload))
            key = self.trusted_keys[claims["iss"]]
            key.verify(
                _b64decode(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:  # noqa: BLE001 - any malformed or unknown assertion is refused alike
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if "target_audience" in claims:
            token = _unsigned_jwt(
                {
                    "iss": "https://accounts.google.com",
                    "aud": claims["target_audience"],
                    "azp": claims["iss"],
                    "email": claims["iss"],
                    "email_verified": True,
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 3600,
                }
            )
            with self._lock:
                self._id_tokens[token] = {"email": claims["iss"], "aud": claims["target_audience"]}
            return 200, {"id_token": token}
        token = "ya29.standin-" + token_source.token_urlsafe(24)
        with self._lock:
            self._access_tokens[token] = claims["iss"]
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _authenticated(self, headers) -> bool:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        return token in self._access_tokens

    def _invoke(self, path: str, headers) -> tuple[int, object]:
        """Cloud Run's front end for a private function: identity token, run.routes.invoke, then the code."""
        _, _, project, region, name = path.rstrip("/").split("/")[:5]
        function = self.resources.get(f"projects/{project}/locations/{region}/functions/{name}")
        if not function or function.get("state") != "ACTIVE":
            return 404, {"error": "Page not found"}
        if function["serviceConfig"].get("ingressSettings", "ALLOW_ALL") != "ALLOW_ALL":
            return 404, {"error": "Page not found"}  # ingress refuses a caller from outside the project
        claims = self._id_tokens.get((headers.get("Authorization") or "").removeprefix("Bearer "))
        if claims is None or claims["aud"] not in (self.function_url(region, name), GCLOUD_CLIENT_ID):
            return 401, {"error": "Your client does not have permission to the requested URL."}
        member = f"serviceAccount:{claims['email']}"
        roles = [
            b["role"]
            for policy in (
                self.policies.get(function["serviceConfig"]["service"], {}),
                self.policies[f"projects/{self.project}"],
            )
            for b in policy.get("bindings", [])
            if member in b.get("members", [])
        ]
        first_call = self.first_called_at.setdefault(name, time.monotonic())
        propagating = time.monotonic() - first_call < self.invoke_forbidden_seconds
        if propagating or not any("run.routes.invoke" in ROLE_PERMISSIONS.get(role, ()) for role in roles):
            return 403, {"error": f"Your client does not have permission to get URL {path} from this server."}
        status, raw = self.function_backend()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, {"body": raw.decode(errors="replace")}

    def add_log_line(self, function: str, region: str, line: dict) -> None:
        """One structured log line the function wrote, as Cloud Logging stores it."""
        with self._lock:
            self.log_entries.append(
                {
                    "logName": f"projects/{self.project}/logs/run.googleapis.com%2Fstdout",
                    "resource": {
                        "type": "cloud_run_revision",
                        "labels": {"service_name": function, "location": region, "project_id": self.project},
                    },
                    "severity": line.get("severity", "DEFAULT"),
                    "jsonPayload": {k: v for k, v in line.items() if k != "severity"},
                    "timestamp": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
                }
            )

    def _service_disabled(self, service: str, title: str) -> dict:
        url = (
            f"https://console.developers.google.com/apis/api/{service}/overview?project={self.project_number}"
        )
        message = (
            f"{title} has not been used in project {self.project_number} before or it is disabled. "
            f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a few minutes "
            "for the action to propagate to our systems and retry."
        )
        return _error(
            403,
            message,
            "PERMISSION_DENIED",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "SERVICE_DISABLED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": service,
                        "consumer": f"projects/{self.project_number}",
                        "serviceTitle": title,
                        "containerInfo": self.project_number,
                        "activationUrl": url,
                    },
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": message,
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Google developers console API activation", "url": url}],
                },
            ],
        )

    # ------------------------------------------------------------ HTTP

    def _handler_class(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parsed = urllib.parse.urlsplit(self.path)
                try:
                    body = (
                        json.loads(raw) if raw and "json" in (self.headers.get("Content-Type") or "") else raw
                    )
                except ValueError:
                    body = raw
                query = urllib.parse.parse_qs(parsed.query)
                path = parsed.path
                status, reply, api = standin.respond(self.command, path, query, body, self.headers)
                api_path = path[len(api) + 1 :] if api in APIS else path
                standin.requests.append(Recorded(self.command, api_path, query, body, api, status))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *args) -> None:
                pass

        return Handler


# ---------------------------------------------------------------- the gcloud side

_deployer_key: rsa.RSAPrivateKey | None = None
_deployer_key_lock = threading.Lock()  # scenarios start on two threads at once


def make_deployer(directory: pathlib.Path, standin: GoogleCloudStandIn) -> Deployer:
    """A service account key file for the stand-in's deployer (one RSA key per test run)."""
    global _deployer_key
    with _deployer_key_lock:
        if _deployer_key is None:
            _deployer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _deployer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_file = directory / "deployer-key.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": standin.project,
                "private_key_id": "standin",
                "private_key": pem,
                "client_email": standin.deployer_email,
                "client_id": "1",
                "token_uri": f"{standin.url}token",
            }
        )
    )
    return Deployer(standin.deployer_email, key_file, _deployer_key.public_key())


def gcloud_env(config_dir: pathlib.Path, standin: GoogleCloudStandIn | None, logged_in: bool = True) -> dict:
    """The environment for the real gcloud, in a throwaway CLOUDSDK_CONFIG, talking to `standin`.

    The configuration is written as gcloud's own properties file (what `gcloud
    config set` would write, without a gcloud start-up per property):
    api_endpoint_overrides/<api> sends each API to its prefix on the stand-in (and
    proxy/* routes gcloud through it, for the regional host names of `gcloud run`),
    auth/credential_file_override and auth/token_host make gcloud sign in as the
    deployer's service account at the stand-in's token endpoint.
    """
    sections: dict[str, dict[str, str]] = {
        "core": {"disable_usage_reporting": "true", "disable_file_logging": "true"},
        "component_manager": {"disable_update_check": "true"},
    }
    if standin is not None:
        sections["api_endpoint_overrides"] = {api: f"{standin.url}{api}/" for api in APIS}
        # `gcloud run` puts the region in front of the host name (REGION-run.standin.test), which
        # no resolver knows: the stand-in is also gcloud's HTTP proxy, and reads the host.
        sections["api_endpoint_overrides"]["run"] = "http://run.standin.test/run/"
        sections["proxy"] = {"type": "http", "address": "127.0.0.1", "port": str(standin.port)}
        if logged_in:
            deployer = make_deployer(config_dir, standin)
            standin.trust(deployer)
            sections["core"]["account"] = deployer.email
            sections["auth"] = {
                "credential_file_override": str(deployer.key_file),
                "token_host": f"{standin.url}token",
            }
    (config_dir / "configurations").mkdir(parents=True, exist_ok=True)
    (config_dir / "active_config").write_text("default")  # no newline: gcloud reads the name verbatim
    (config_dir / "configurations" / "config_default").write_text(
        "".join(
            f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())
            for section, values in sections.items()
        )
    )
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        # Retries in deploy.sh at test speed (deploy.sh documents these).
        "DEPLOY_BACKOFF_MS": "200",
    }
    env.pop("DATABASE_URL", None)
    return env


ROOT = pathlib.Path(__file__).resolve().parents[2]


def gcloud_without(component: str) -> pathlib.Path:
    """A bin directory whose gcloud is this machine's installation less one component
    (alpha, beta): its command group is absent, as where it was never installed.

    Everything is a symlink into the real installation except the directories on the way to
    what is left out, and lib/googlecloudsdk/core: gcloud finds its root (`gcloud info`'s
    installation.sdk_root) from the real path of that directory, and bin/gcloud and
    lib/gcloud.py, which it finds its root from too."""
    real = pathlib.Path(shutil.which("gcloud") or "gcloud").resolve().parents[1]
    copy_root = scratch_dir() / "google-cloud-sdk"
    kept_apart = {
        pathlib.Path("bin"),
        pathlib.Path("lib"),
        pathlib.Path("lib/surface"),
        pathlib.Path("lib/googlecloudsdk"),
        pathlib.Path("lib/googlecloudsdk/core"),
    }
    copied = {pathlib.Path("bin/gcloud"), pathlib.Path("lib/gcloud.py")}
    left_out = pathlib.Path("lib/surface") / component

    def mirror(relative: pathlib.Path) -> None:
        (copy_root / relative).mkdir(parents=True)
        for entry in (real / relative).iterdir():
            inner = relative / entry.name
            if inner == left_out or entry.name == "__pycache__":
                continue
            if inner in kept_apart:
                mirror(inner)
            elif inner in copied:
                shutil.copy2(entry, copy_root / inner)
            else:
                (copy_root / inner).symlink_to(entry)

    mirror(pathlib.Path())
    return copy_root / "bin"


def gcloud_wrapper() -> pathlib.Path:
    """A bin directory whose gcloud is a script that runs this machine's gcloud, as a package
    manager's wrapper does (snap's): its real path is in no installation."""
    bin_dir = scratch_dir() / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "gcloud"
    real = pathlib.Path(shutil.which("gcloud") or "gcloud").resolve()
    wrapper.write_text(f'#!/usr/bin/env bash\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


# The priority of the background scenarios' commands (coreutils' nice). At nice 10 a
# command still gets about a tenth of a core beside a busy test, so it never starves.
BACKGROUND_PRIORITY = ("nice", "-n", "10")


def run_deploy(
    env: dict,
    *args: str,
    stdin: str | None = None,
    merged: bool = False,
    background: bool = False,
) -> subprocess.CompletedProcess:
    """deploy.sh, run as a user would: stdout and stderr kept apart, or `merged` in order.
    `background`: at a low CPU priority (BACKGROUND_PRIORITY), so that it takes mostly
    the CPU that the tests running beside it leave idle."""
    return subprocess.run(
        [*BACKGROUND_PRIORITY, str(ROOT / "deploy.sh"), *args]
        if background
        else [str(ROOT / "deploy.sh"), *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
    )


def scratch_dir() -> pathlib.Path:
    """A throwaway directory (a CLOUDSDK_CONFIG, a log), removed when the test process ends."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="gcloud-standin-"))
    atexit.register(shutil.rmtree, path, True)
    return path


# ---------------------------------------------------------------- scenarios


@dataclasses.dataclass
class Run:
    """One deploy.sh run and the requests it made."""

    args: tuple
    result: subprocess.CompletedProcess
    requests: list[Recorded]
    resources: dict  # the stand-in's resources when the run ended

    @property
    def returncode(self) -> int:
        return self.result.returncode

    @property
    def stdout(self) -> str:
        return self.result.stdout or ""

    @property
    def stderr(self) -> str:
        return self.result.stderr or ""

    def find(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]


@dataclasses.dataclass
class Scenario:
    standin: GoogleCloudStandIn
    env: dict
    runs: list[Run] = dataclasses.field(default_factory=list)
    gcloud: subprocess.CompletedProcess | None = None  # a gcloud command run without deploy.sh
    extra: dict = dataclasses.field(default_factory=dict)

    def run_gcloud(self, *args: str) -> subprocess.CompletedProcess:
        self.gcloud = subprocess.run(
            [*BACKGROUND_PRIORITY, "gcloud", *args], env=self.env, capture_output=True, text=True
        )
        return self.gcloud

    def deploy(
        self, *args: str, env: dict | None = None, stdin: str | None = None, merged: bool = False
    ) -> Run:
        first = len(self.standin.requests)
        result = run_deploy({**self.env, **(env or {})}, *args, stdin=stdin, merged=merged, background=True)
        run = Run(args, result, self.standin.requests[first:], copy.deepcopy(self.standin.resources))
        self.runs.append(run)
        return run


def scenario(standin: GoogleCloudStandIn) -> Scenario:
    return Scenario(standin, gcloud_env(scratch_dir(), standin))


def functions_deploy_alone(*disabled: str) -> Scenario:
    """`gcloud functions deploy` as a user would type it, without deploy.sh's preparations,
    in a new project where every API is on but the `disabled` ones."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.enable_all()
    standin.enabled -= set(disabled)
    world = scenario(standin)
    world.run_gcloud(
        "functions",
        "deploy",
        "events",
        "--gen2",
        "--region",
        REGION,
        "--runtime",
        "python313",
        "--source",
        str(ROOT),
        "--entry-point",
        "handler",
        "--trigger-http",
        "--no-allow-unauthenticated",
        "--project",
        PROJECT,
        "--quiet",
    )
    return world


def watched_project(dsn: str) -> tuple[GoogleCloudStandIn, dict]:
    """A stand-in that records whatever reaches it, and the environment to run deploy.sh
    against it with `dsn`: for checks that must stop deploy.sh before any request."""
    standin = GoogleCloudStandIn(PROJECT).start()
    return standin, {**gcloud_env(scratch_dir(), standin), "DATABASE_URL": dsn}


class Scenarios:
    """deploy.sh scenarios, each run once per test process, two at a time.

    A scenario is a function returning a Scenario; test modules define theirs
    with `@SCENARIOS.define` and read results with `SCENARIOS.result(name)`.
    `start()` (tests/deploy/conftest.py calls it once collection is done, when a selected test
    uses scenarios; the first `result` otherwise) runs every defined scenario on two worker
    threads: deploy.sh spends its time in gcloud's start-up, so two runs at once take the time
    of one on two cores. A scenario defined `after` another starts as soon as that one is done,
    in its thread (a second follower in a thread of its own), and the scenarios others wait for
    start first: the longest chain never waits behind short scenarios.
    Their commands run at a low CPU priority, so the other tests, which
    tests/deploy/conftest.py runs first, go at nearly their own speed while the scenarios take
    the CPU those tests leave idle (they mostly wait on servers and timeouts).
    `stop()` drops the scenarios not yet started (a run that ends early).
    """

    def __init__(self, workers: int = 2) -> None:
        self._defined: dict[str, tuple[Callable, str | None]] = {}
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="deploy-scenario")
        self._lock = threading.Lock()

    def define(self, after: str | None = None) -> Callable:
        """Register a scenario; with `after`, it is given that scenario's result."""

        def register(function: Callable) -> Callable:
            self._defined[function.__name__] = (function, after)
            return function

        return register

    def start(self) -> None:
        """Start every defined scenario, the first time it is called; returns at once."""
        with self._lock:
            if self._futures:
                return
            unknown = {after for _, after in self._defined.values() if after and after not in self._defined}
            if unknown:
                raise KeyError(f"scenarios defined after undefined ones: {sorted(unknown)}")
            self._futures = {name: concurrent.futures.Future() for name in self._defined}
            independent = [name for name, (_, after) in self._defined.items() if after is None]
            for name in sorted(independent, key=lambda name: -self._chain_length(name)):
                self._pool.submit(self._run_chain, name, None)

    def result(self, name: str) -> Scenario:
        self.start()
        return self._futures[name].result()

    def stop(self) -> None:
        """Cancel the scenarios not yet started; those running finish."""
        for future in self._futures.values():
            future.cancel()

    def _followers(self, name: str) -> list[str]:
        return [follower for follower, (_, after) in self._defined.items() if after == name]

    def _chain_length(self, name: str) -> int:
        return 1 + sum(self._chain_length(follower) for follower in self._followers(name))

    def _run_chain(self, name: str, given: Scenario | None) -> None:
        """Run `name` (given its dependency's result), then its followers."""
        future = self._futures[name]
        if not future.set_running_or_notify_cancel():
            return
        function, after = self._defined[name]
        try:
            world = function(given) if after else function()
        except BaseException as err:  # noqa: BLE001 - raised again by result(), for it and its followers
            self._fail(name, err)
            return
        future.set_result(world)
        followers = self._followers(name)
        for follower in followers[1:]:  # a second follower runs beside the first, on a thread of its own
            thread_name = f"deploy-scenario-{follower}"
            threading.Thread(target=self._run_chain, args=(follower, world), name=thread_name).start()
        if followers:
            self._run_chain(followers[0], world)

    def _fail(self, name: str, err: BaseException) -> None:
        """`name` failed, or the scenario it goes on from did: so do its followers."""
        future = self._futures[name]
        if future.running() or future.set_running_or_notify_cancel():
            future.set_exception(err)
        for follower in self._followers(name):
            self._fail(follower, err)


SCENARIOS = Scenarios()

PROJECT = "demo-project"
PASSWORD = "s3cret-Passw0rd"
# A cluster on GCP in us-east4: the function goes there.
HOST = "events-1234.abc.gcp-us-east4.cockroachlabs.cloud"
DSN = f"postgresql://maxroach:{PASSWORD}@{HOST}:26257/defaultdb?sslmode=verify-full"
REGION = "us-east4"
CHANNEL = f"projects/{PROJECT}/notificationChannels/42"
# A cluster on AWS: deploy.sh asks for --region.
AWS_DSN = DSN.replace(HOST, "events-1234.abc.aws-us-east-1.cockroachlabs.cloud")


def new_project_standin() -> GoogleCloudStandIn:
    """A project created today, where IAM refuses the first binding naming a new
    service account."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.iam_propagation_refusals = 1
    return standin


@SCENARIOS.define()
def new_project_first_run() -> Scenario:
    """The first deploy into a new project; extra["deployed"] is a copy of the project
    as it left it, for scenarios that go on from there."""
    world = scenario(new_project_standin())
    world.deploy("--project", PROJECT, env={"DATABASE_URL": DSN})
    world.extra["deployed"] = world.standin.clone()
    return world


@SCENARIOS.define(after="new_project_first_run")
def new_project(world: Scenario) -> Scenario:
    """The first deploy into a new project, then a second run with the same DSN
    (from standard input this time) and another schedule, through a wrapper named gcloud
    (gcloud_wrapper). Between them the secret's labels are removed, as on a secret made
    before deploy.sh labelled it."""
    world.standin.resources[f"projects/{PROJECT}/secrets/events-dsn"].pop("labels", None)
    function = world.standin.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]
    function["serviceConfig"]["environmentVariables"]["SET_BY_HAND"] = "1"
    world.deploy(
        "--project",
        PROJECT,
        "--dsn-stdin",
        "--schedule",
        "0 * * * *",
        "--env",
        "LOG_LEVEL=DEBUG",
        "--notification-channel",
        CHANNEL,
        "--image-cleanup-days",
        "30",
        env={"PATH": f"{gcloud_wrapper()}:{world.env['PATH']}"},
        stdin=DSN + "\n",
    )
    return world


# A cluster on GCP in us-east1, where Cloud Scheduler is offered.
GCP_DSN = DSN.replace(HOST, "events-5678.xyz.gcp-us-east1.cockroachlabs.cloud")
EU_DSN = DSN.replace(HOST, "events-5678.xyz.gcp-europe-west1.cockroachlabs.cloud")
OPTIONS = (
    "--secret-delivery",
    "client",
    "--secret-locations",
    "us-east1,us-central1",
    "--vpc-connector",
    "egress",
    "--memory",
    "1Gi",
    "--cpu",
    "1",
    "--pool-size",
    "4",
    "--connection-budget",
    "40",
    "--runtime",
    "python312",
    "--no-smoke-test",
    "--no-alerts",
)


@SCENARIOS.define()
def constrained_org_with_options() -> Scenario:
    """A new project in an organisation that forbids `global` resources, with a VPC
    connector made for the function, deployed with every option set, to us-east1 for a
    cluster in europe-west1 (--region), by a gcloud installation without the beta component."""
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.deny_global_locations = True
    standin.enabled.add("vpcaccess.googleapis.com")  # the connector was made with it
    standin.resources[f"projects/{PROJECT}/locations/us-east1/connectors/egress"] = {
        "name": f"projects/{PROJECT}/locations/us-east1/connectors/egress",
        "network": "default",
        "ipCidrRange": "10.8.0.0/28",
        "state": "READY",
    }
    world = scenario(standin)
    without_beta = f"{gcloud_without('beta')}:{world.env['PATH']}"
    world.deploy(
        "--project",
        PROJECT,
        "--region",
        "us-east1",
        *OPTIONS,
        env={"DATABASE_URL": EU_DSN, "PATH": without_beta},
    )
    return world


def first_run_transcript() -> str:
    """What a first deploy into a new project prints (stdout and stderr in order), for docs/deploy.md."""
    world = scenario(new_project_standin())
    run = world.deploy("--project", PROJECT, env={"DATABASE_URL": DSN}, merged=True)
    world.standin.stop()
    command = f"$ DATABASE_URL='{DSN.replace(PASSWORD, '****')}' \\\n    ./deploy.sh --project {PROJECT}\n"
    return command + run.stdout.replace(world.standin.url, "http://127.0.0.1:PORT/")


# ---------------------------------------------------------------- helpers


def _patch(old: dict, new: dict, mask: list | None) -> dict:
    """A PATCH: with an updateMask, each field it names is replaced (or removed when the body
    lacks it); without one, nested objects are merged, so fields the server set (a URL) survive."""
    if not mask:
        return _merge(old, new)
    patched = copy.deepcopy(old)
    for path in ",".join(mask).split(","):
        # gcloud names fields in snake_case (service_config.environment_variables)
        *parents, leaf = (
            re.sub(r"_([a-z])", lambda m: m.group(1).upper(), p) for p in path.strip().split(".")
        )
        source, target = new, patched
        for key in parents:
            source = source.get(key, {}) if isinstance(source, dict) else {}
            target = target.setdefault(key, {})
        if isinstance(source, dict) and leaf in source:
            target[leaf] = source[leaf]
        else:
            target.pop(leaf, None)
    patched["name"] = new["name"]
    return patched


def _merge(old: dict, new: dict) -> dict:
    """A PATCH: nested objects are merged, so fields the server set (a URL) survive."""
    merged = dict(old)
    for key, value in new.items():
        merged[key] = (
            _merge(old[key], value) if isinstance(value, dict) and isinstance(old.get(key), dict) else value
        )
    return merged


def _error(code: int, message: str, status: str, details: list | None = None) -> dict:
    error = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _unsigned_jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT', 'kid': 'standin'})}.{part(claims)}.c3RhbmRpbg"


def _log_filter(expression: str, entry: dict) -> bool:
    """The part of Cloud Logging's filter language gcloud logging read sends here:
    terms joined by AND, each `path="value"`, `severity>=LEVEL` or `timestamp>="..."`."""
    for term in (t.strip() for t in re.split(r"\s+AND\s+", expression.strip()) if t.strip()):
        match = re.fullmatch(r'([\w.]+)\s*(=|>=)\s*"?([^"]*)"?', term.strip("()"))
        if not match:
            raise ValueError(f"the stand-in's log filter does not know {term!r}")
        path, operator, value = match.groups()
        if path == "severity":
            if SEVERITIES.index(entry["severity"]) < SEVERITIES.index(value):
                return False
            continue
        actual = entry
        for key in path.split("."):
            actual = actual.get(key, {}) if isinstance(actual, dict) else {}
        if operator == ">=" and not str(actual) >= value:
            return False
        if operator == "=" and actual != value:
            return False
    return True


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


if __name__ == "__main__":
    if sys.argv[1:] != ["first-run"]:
        sys.exit("usage: python tests/deploy/gcloud_standin.py first-run")
    sys.path.insert(0, str(ROOT))
    print(first_run_transcript(), end="")

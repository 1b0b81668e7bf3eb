"""A local stand-in for the Google Cloud APIs that deploy.sh's gcloud commands call.

The real Google Cloud CLI is pointed at it through its documented
`api_endpoint_overrides/<api>` properties, with an access token from a file, so
deploy.sh runs for real and offline. The stand-in keeps resources in memory
(enough state for a second run to find what the first created) and records
every request, which the tests then assert on.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import http.server
import json
import re
import threading
import urllib.parse

# The APIs deploy.sh reaches, by the name gcloud uses for the override property.
APIS = ("serviceusage", "iam", "secretmanager", "cloudfunctions", "run", "cloudscheduler",
        "cloudresourcemanager", "cloudbuild", "artifactregistry")


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    query: dict
    body: object

    @property
    def action(self) -> str:
        return f"{self.method} {self.path}"


class GoogleCloudStandIn:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.resources: dict[str, dict] = {}
        self.policies: dict[str, dict] = {}
        self.uploads: dict[str, bytes] = {}
        self.operations: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "GoogleCloudStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def find(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # ------------------------------------------------------------ behaviour

    def respond(self, method: str, path: str, query: dict, body) -> tuple[int, object]:
        path = path.rstrip("/")
        name = re.sub(r"^/v\d+(beta|alpha)?\d*/", "", path)
        verb = None
        if ":" in name.rsplit("/", 1)[-1]:
            name, verb = name.rsplit(":", 1)
        with self._lock:
            if method == "PUT" and path.startswith("/upload/"):
                self.uploads[path] = body if isinstance(body, bytes) else b""
                return 200, {}
            if verb in ("enable", "batchEnable"):
                return 200, {"name": "operations/enable", "done": True, "response": {}}
            if verb == "getIamPolicy":
                return 200, self.policies.get(name, {"etag": "BwAAAA=="})
            if verb == "setIamPolicy":
                policy = {**body.get("policy", {}), "etag": "BwAAAB=="}
                self.policies[name] = policy
                return 200, policy
            if verb == "generateUploadUrl":
                upload = f"{self.url}upload/{len(self.uploads) + 1}.zip"
                return 200, {"uploadUrl": upload,
                             "storageSource": {"bucket": "standin", "object": f"{len(self.uploads) + 1}.zip"}}
            if verb == "addVersion":
                versions = [k for k in self.resources if k.startswith(f"{name}/versions/")]
                version = f"{name}/versions/{len(versions) + 1}"
                self.resources[version] = {"name": version, "state": "ENABLED",
                                           "data": body["payload"]["data"]}
                # Like the real API: confirm the checksum gcloud sent was verified.
                return 200, {"name": version, "state": "ENABLED",
                             "clientSpecifiedPayloadChecksum": "dataCrc32c" in body["payload"]}
            if verb == "access":
                if name.endswith("/versions/latest"):
                    prefix = name[: -len("latest")]
                    versions = sorted((k for k in self.resources if k.startswith(prefix)),
                                      key=lambda k: int(k.rsplit("/", 1)[1]))
                    name = versions[-1] if versions else name
                if name not in self.resources:
                    return 404, _error(404, f"{name} not found", "NOT_FOUND")
                return 200, {"name": name, "payload": {"data": self.resources[name]["data"]}}
            if method == "GET" and re.fullmatch(r"projects/[^/]+/services/[^/]+", name):
                return 200, {"name": name, "state": "ENABLED"}
            if method == "GET" and name.endswith("/defaultServiceAccount"):
                project = name.split("/")[1]
                return 200, {"name": name, "serviceAccountEmail":
                             f"projects/{project}/serviceAccounts/123-compute@developer.gserviceaccount.com"}
            if method == "GET" and re.fullmatch(r"projects/[^/]+", name):
                project = name.split("/")[1]
                return 200, {"projectId": project, "projectNumber": "123", "name": project,
                             "lifecycleState": "ACTIVE"}
            if method == "GET" and name.endswith("/runtimes"):
                return 200, {"runtimes": [{"name": runtime, "displayName": runtime, "stage": "GA",
                                           "environment": "GEN_2"} for runtime in ("python311", "python312")]}
            if "/operations/" in name or name.startswith("operations/"):
                return 200, self.operations.get(name, {"name": name, "done": True})
            if method == "GET":
                if name.startswith("projects/-/serviceAccounts/"):
                    email = name.rsplit("/", 1)[1]
                    name = next((k for k in self.resources if k.endswith(f"/serviceAccounts/{email}")), name)
                if name in self.resources:
                    return 200, self.resources[name]
                return 404, _error(404, f"Resource {name} not found", "NOT_FOUND")
            if method == "POST":
                return self._create(name, query, body)
            if method == "PATCH":
                if name not in self.resources:
                    return 404, _error(404, f"Resource {name} not found", "NOT_FOUND")
                self.resources[name] = _merge(self.resources[name], {**body, "name": name})
                return 200, self._maybe_operation(name)
        return 400, _error(400, f"the stand-in does not know {method} {path}", "INVALID_ARGUMENT")

    def _create(self, collection: str, query: dict, body) -> tuple[int, object]:
        body = copy.deepcopy(body) if isinstance(body, dict) else {}  # the recorded request stays as sent
        if collection.endswith("/serviceAccounts"):
            project = collection.split("/")[1]
            email = f"{body['accountId']}@{project}.iam.gserviceaccount.com"
            name = f"{collection}/{email}"
            resource = {**body.get("serviceAccount", {}), "name": name, "email": email}
        else:
            resource_id = next((v[0] for k, v in query.items() if k.endswith("Id")), None)
            resource_id = resource_id or body.get("name", "").rsplit("/", 1)[-1]
            name = f"{collection}/{resource_id}"
            resource = {**body, "name": name}
        if name in self.resources:
            return 409, _error(409, f"{name} already exists", "ALREADY_EXISTS")
        if collection.endswith("/functions"):
            region = collection.split("/")[3]
            resource.setdefault("serviceConfig", {})
            resource["serviceConfig"]["uri"] = f"https://{resource_id}-standin-{region}.a.run.app"
            resource["serviceConfig"]["service"] = f"{collection.rsplit('/functions', 1)[0]}/services/{resource_id}"
            resource["state"] = "ACTIVE"
            resource["environment"] = "GEN_2"
            resource["url"] = resource["serviceConfig"]["uri"]
        self.resources[name] = resource
        return 200, self._maybe_operation(name)

    def _maybe_operation(self, name: str) -> dict:
        resource = self.resources[name]
        if "/functions/" in name:
            location = name.split("/functions/")[0]
            operation = {
                "name": f"{location}/operations/op-{len(self.requests)}", "done": True,
                "metadata": {"@type": "type.googleapis.com/google.cloud.functions.v2.OperationMetadata",
                             "target": name, "stages": [{"name": stage, "state": "COMPLETE"}
                                                        for stage in ("BUILD", "SERVICE")]},
                "response": {"@type": "type.googleapis.com/google.cloud.functions.v2.Function", **resource},
            }
            self.operations[operation["name"]] = operation
            return operation
        return resource

    def _handler_class(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parsed = urllib.parse.urlsplit(self.path)
                try:
                    body = json.loads(raw) if raw and "json" in (self.headers.get("Content-Type") or "") else raw
                except ValueError:
                    body = raw
                standin.requests.append(Recorded(self.command, parsed.path, urllib.parse.parse_qs(parsed.query), body))
                status, reply = standin.respond(self.command, parsed.path, urllib.parse.parse_qs(parsed.query), body)
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


def _merge(old: dict, new: dict) -> dict:
    """A PATCH: nested objects are merged, so fields the server set (a URL) survive."""
    merged = dict(old)
    for key, value in new.items():
        merged[key] = _merge(old[key], value) if isinstance(value, dict) and isinstance(old.get(key), dict) else value
    return merged


def _error(code: int, message: str, status: str) -> dict:
    return {"error": {"code": code, "message": message, "status": status}}


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()

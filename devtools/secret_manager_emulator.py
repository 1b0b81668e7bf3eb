"""A local server speaking Secret Manager's gRPC API, for the tests and the benchmark.

The function's own client library (google-cloud-secret-manager) talks to it
unchanged, over a plain gRPC channel, when SECRET_MANAGER_EMULATOR_HOST is set
(the way Google's Pub/Sub and Firestore emulators are used). It serves the one
call the function makes, AccessSecretVersion, with the real API's answers:

    OK                   the version's payload (`latest` is the newest version)
    NOT_FOUND            a missing secret or version, or a secret with no versions
    INVALID_ARGUMENT     a malformed resource name
    any status           set by `fail_with` (PERMISSION_DENIED: the caller lacks
                         secretAccessor), until `clear_faults()`

Stopping it (`stop()`) makes the client see an unreachable service; `start()`
listens on the same port again. Secrets live in memory:

    with SecretManagerEmulator() as emulator:
        name = emulator.put("my-project", "db-dsn", "postgresql://...")
        os.environ["SECRET_MANAGER_EMULATOR_HOST"] = emulator.host
"""

from __future__ import annotations

import re
import threading
from concurrent import futures
from typing import Any

import grpc
from google.cloud.secretmanager_v1 import types

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
_SECRET = r"projects/[^/]+/secrets/[A-Za-z0-9_-]{1,255}"
SECRET_NAME = re.compile(_SECRET)
VERSION_NAME = re.compile(rf"(?P<secret>{_SECRET})/versions/(?P<version>[1-9][0-9]*|latest)")


class SecretManagerEmulator:
    """An in-process gRPC server for SecretManagerService.AccessSecretVersion (its own threads)."""

    def __init__(self, port: int | None = None):
        self.port = port or 0
        self._server: grpc.Server | None = None
        self._lock = threading.Lock()
        self._versions: dict[str, list[bytes]] = {}  # secret name -> payloads, version n at [n - 1]
        self.access_count = 0  # AccessSecretVersion calls since reset(), failed ones included
        self._failure: tuple[grpc.StatusCode, str] | None = None

    @property
    def host(self) -> str:
        """ "127.0.0.1:PORT": the value for SECRET_MANAGER_EMULATOR_HOST."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> SecretManagerEmulator:
        if self._server is not None:
            return self
        # No SO_REUSEPORT: two servers must never share a port unnoticed.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(
            self._access,
            request_deserializer=types.AccessSecretVersionRequest.deserialize,
            response_serializer=types.AccessSecretVersionResponse.serialize,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"AccessSecretVersion": handler}),)
        )
        port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        if port == 0:
            raise OSError(f"cannot listen on 127.0.0.1:{self.port}")
        server.start()
        self.port, self._server = port, server
        return self

    def stop(self) -> None:
        """Stop listening and cancel calls in flight; idempotent. The secrets are kept."""
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> SecretManagerEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every secret, fault and the call count (between tests)."""
        with self._lock:
            self._versions.clear()
            self._failure = None
            self.access_count = 0

    def fail_with(self, code: grpc.StatusCode, message: str = "injected fault") -> None:
        """Answer every call with `code` until clear_faults()."""
        with self._lock:
            self._failure = (code, message)

    def clear_faults(self) -> None:
        with self._lock:
            self._failure = None

    def put(self, project: str, secret_id: str, payload: str | bytes) -> str:
        """Add a version to projects/PROJECT/secrets/SECRET_ID (created if needed); its resource name."""
        name = f"projects/{project}/secrets/{secret_id}"
        if not SECRET_NAME.fullmatch(name):
            raise ValueError(f"invalid secret name {name!r}")
        with self._lock:
            versions = self._versions.setdefault(name, [])
            versions.append(payload.encode() if isinstance(payload, str) else bytes(payload))
            return f"{name}/versions/{len(versions)}"

    def _access(self, request: Any, context: grpc.ServicerContext) -> types.AccessSecretVersionResponse:
        with self._lock:
            self.access_count += 1
            if self._failure is not None:
                context.abort(*self._failure)
            match = VERSION_NAME.fullmatch(request.name)
            if not match:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid secret version resource name [{request.name}].",
                )
            versions = self._versions.get(match.group("secret"), [])
            label = match.group("version")
            number = len(versions) if label == "latest" else int(label)
            if not versions or number > len(versions):
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{request.name}] not found.")
            return types.AccessSecretVersionResponse(
                name=f"{match.group('secret')}/versions/{number}",
                payload=types.SecretPayload(data=versions[number - 1]),
            )

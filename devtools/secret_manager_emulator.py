"""A local server speaking the Secret Manager v1 gRPC API, for tests and the benchmark.

The function's real client library (google-cloud-secretmanager) talks to it
unchanged when SECRET_MANAGER_EMULATOR_HOST=127.0.0.1:PORT is set, the way
Google's Pub/Sub and Firestore emulators are used. It keeps secrets in memory
and answers with the real API's status codes: NOT_FOUND for a missing secret
or version, ALREADY_EXISTS, FAILED_PRECONDITION for a disabled version,
INVALID_ARGUMENT for a malformed name.

    python -m devtools.secret_manager_emulator --port 8085 --secret projects/p/secrets/s=VALUE
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
from concurrent import futures
from typing import Callable

import grpc
from google.cloud.secretmanager_v1 import types
from google.protobuf import empty_pb2, timestamp_pb2

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
SECRET_NAME = re.compile(r"projects/([^/]+)/secrets/([^/]+)")
VERSION_NAME = re.compile(r"projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)")


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class SecretManagerEmulator:
    """In-process gRPC server; `start()`, `stop()`, and `start()` again on the same port."""

    def __init__(self, port: int = 0):
        self.port = port
        self.access_count = 0
        self._secrets: dict[str, list[dict]] = {}  # secret name -> versions (1-based by index)
        self._lock = threading.Lock()
        self._fault: grpc.StatusCode | None = None
        self._server: grpc.Server | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------ control

    def start(self) -> "SecretManagerEmulator":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, self._handlers()),))
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> "SecretManagerEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._fault = None
            self.access_count = 0

    def put(self, project: str, secret_id: str, payload: str | bytes) -> str:
        """Add a version (creating the secret if needed); its resource name."""
        name = f"projects/{project}/secrets/{secret_id}"
        data = payload.encode() if isinstance(payload, str) else payload
        with self._lock:
            versions = self._secrets.setdefault(name, [])
            versions.append({"data": data, "enabled": True})
            return f"{name}/versions/{len(versions)}"

    def fail_with(self, code: grpc.StatusCode) -> None:
        """Answer every call with `code` until clear_faults()."""
        self._fault = code

    def clear_faults(self) -> None:
        self._fault = None

    # ------------------------------------------------------------ the API

    def _handlers(self) -> dict:
        def unary(method: Callable, request_type, response_serializer):
            def behaviour(request, context):
                try:
                    if self._fault is not None:
                        raise _Abort(self._fault, "injected fault")
                    with self._lock:
                        return method(request)
                except _Abort as abort:
                    context.abort(abort.code, abort.message)

            return grpc.unary_unary_rpc_method_handler(
                behaviour, request_deserializer=request_type.deserialize,
                response_serializer=response_serializer)

        return {
            "CreateSecret": unary(self._create_secret, types.CreateSecretRequest, types.Secret.serialize),
            "GetSecret": unary(self._get_secret, types.GetSecretRequest, types.Secret.serialize),
            "DeleteSecret": unary(self._delete_secret, types.DeleteSecretRequest,
                                  empty_pb2.Empty.SerializeToString),
            "AddSecretVersion": unary(self._add_version, types.AddSecretVersionRequest,
                                      types.SecretVersion.serialize),
            "GetSecretVersion": unary(self._get_version, types.GetSecretVersionRequest,
                                      types.SecretVersion.serialize),
            "DisableSecretVersion": unary(self._disable_version, types.DisableSecretVersionRequest,
                                          types.SecretVersion.serialize),
            "AccessSecretVersion": unary(self._access, types.AccessSecretVersionRequest,
                                         types.AccessSecretVersionResponse.serialize),
        }

    def _secret(self, name: str) -> list[dict]:
        if not SECRET_NAME.fullmatch(name):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name [{name}]")
        if name not in self._secrets:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found or has no versions.")
        return self._secrets[name]

    def _version(self, name: str) -> tuple[str, int, dict]:
        match = VERSION_NAME.fullmatch(name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret version name [{name}]")
        secret = name.rsplit("/versions/", 1)[0]
        versions = self._secret(secret)
        label = match.group(3)
        if label == "latest":
            enabled = [i for i, version in enumerate(versions, 1) if version["enabled"]]
            if not enabled:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{secret}] not found or has no versions.")
            number = enabled[-1]
        elif label.isdigit() and 1 <= int(label) <= len(versions):
            number = int(label)
        else:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        return secret, number, versions[number - 1]

    def _version_message(self, secret: str, number: int, version: dict) -> types.SecretVersion:
        state = types.SecretVersion.State.ENABLED if version["enabled"] else types.SecretVersion.State.DISABLED
        return types.SecretVersion(name=f"{secret}/versions/{number}", state=state,
                                   create_time=timestamp_pb2.Timestamp())

    def _create_secret(self, request: types.CreateSecretRequest) -> types.Secret:
        name = f"{request.parent}/secrets/{request.secret_id}"
        if name in self._secrets:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
        self._secret_name_check(name)
        self._secrets[name] = []
        return types.Secret(name=name)

    def _secret_name_check(self, name: str) -> None:
        if not SECRET_NAME.fullmatch(name):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name [{name}]")

    def _get_secret(self, request: types.GetSecretRequest) -> types.Secret:
        self._secret(request.name)
        return types.Secret(name=request.name)

    def _delete_secret(self, request: types.DeleteSecretRequest) -> empty_pb2.Empty:
        self._secret(request.name)
        del self._secrets[request.name]
        return empty_pb2.Empty()

    def _add_version(self, request: types.AddSecretVersionRequest) -> types.SecretVersion:
        versions = self._secret(request.parent)
        versions.append({"data": bytes(request.payload.data), "enabled": True})
        return self._version_message(request.parent, len(versions), versions[-1])

    def _get_version(self, request: types.GetSecretVersionRequest) -> types.SecretVersion:
        return self._version_message(*self._version(request.name))

    def _disable_version(self, request: types.DisableSecretVersionRequest) -> types.SecretVersion:
        secret, number, version = self._version(request.name)
        version["enabled"] = False
        return self._version_message(secret, number, version)

    def _access(self, request: types.AccessSecretVersionRequest) -> types.AccessSecretVersionResponse:
        self.access_count += 1
        secret, number, version = self._version(request.name)
        if not version["enabled"]:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f"Secret Version [{secret}/versions/{number}] is in DISABLED state.")
        return types.AccessSecretVersionResponse(
            name=f"{secret}/versions/{number}", payload=types.SecretPayload(data=version["data"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.secret_manager_emulator",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--secret", action="append", default=[], metavar="projects/P/secrets/S=VALUE",
                        help="a secret to create with one version (repeatable)")
    args = parser.parse_args(argv)
    emulator = SecretManagerEmulator(args.port).start()
    for item in args.secret:
        name, _, value = item.partition("=")
        match = SECRET_NAME.fullmatch(name)
        if not match:
            parser.error(f"--secret needs projects/P/secrets/S=VALUE, got {name!r}")
        emulator.put(match.group(1), match.group(2), value)
    print(f"Secret Manager emulator on {emulator.host} (SECRET_MANAGER_EMULATOR_HOST={emulator.host})", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

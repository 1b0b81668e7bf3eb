"""A local server speaking the Secret Manager v1 gRPC API, for tests, the benchmark and local runs.

The function's own client library (google-cloud-secret-manager) talks to it
unchanged, over a plain gRPC channel, when SECRET_MANAGER_EMULATOR_HOST is set
(the way Google's Pub/Sub and Firestore emulators are used). Secrets live in
memory. It answers with the real API's status codes, so error handling is
tested against real gRPC errors rather than mocks:

    NOT_FOUND            a missing secret, version, or a secret with no versions
    ALREADY_EXISTS       CreateSecret of an existing secret
    FAILED_PRECONDITION  accessing a disabled or destroyed version
    INVALID_ARGUMENT     a malformed resource name, an oversized payload or a
                         payload whose data_crc32c does not match its data

`latest` is, as documented for the real service, the most recently created
version, whatever its state: once it is disabled, accessing `latest` fails
with FAILED_PRECONDITION rather than falling back to an older version.

Every payload carries data_crc32c (CRC-32C, as google-crc32c computes it). The
Python client library does not check it; callers that want integrity checks
compare it themselves.

In process:

    with SecretManagerEmulator() as emulator:
        name = emulator.put("my-project", "db-dsn", "postgresql://...")
        os.environ["SECRET_MANAGER_EMULATOR_HOST"] = emulator.host

From a shell (prints SECRET_MANAGER_EMULATOR_HOST=127.0.0.1:PORT, runs until SIGTERM or Ctrl-C):

    python -m devtools.secret_manager_emulator --port 8085 --secret projects/p/secrets/s=VALUE
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re
import signal
import threading
import time
from concurrent import futures
from typing import Any, Callable

import grpc
from google.cloud.secretmanager_v1 import types
from google.protobuf import empty_pb2, timestamp_pb2

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
MAX_PAYLOAD_BYTES = 64 * 1024
_PROJECT = r"projects/(?P<project>[^/]+)"
_SECRET_ID = r"(?P<secret_id>[A-Za-z0-9_-]{1,255})"
PROJECT_NAME = re.compile(_PROJECT)
SECRET_NAME = re.compile(rf"{_PROJECT}/secrets/{_SECRET_ID}")
VERSION_NAME = re.compile(rf"{_PROJECT}/secrets/{_SECRET_ID}/versions/(?P<version>[1-9][0-9]*|latest)")
SecretVersionState = types.SecretVersion.State


# ---------------------------------------------------------------- CRC-32C

def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`: the checksum Secret Manager reports as data_crc32c.

    Pure Python (payloads are at most 64 KiB), so the emulator needs no
    google-crc32c wheel.
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------- the stored state

def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


@dataclasses.dataclass
class _Version:
    number: int
    data: bytes
    checksum: int
    client_checksum: bool
    state: SecretVersionState = SecretVersionState.ENABLED
    created: timestamp_pb2.Timestamp = dataclasses.field(default_factory=_now)


@dataclasses.dataclass
class _Secret:
    name: str
    labels: dict[str, str]
    created: timestamp_pb2.Timestamp = dataclasses.field(default_factory=_now)
    versions: list[_Version] = dataclasses.field(default_factory=list)  # versions[n - 1] is version n


class _Abort(Exception):
    """Ends a call with a gRPC status, like the real service would."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class _Fault:
    code: grpc.StatusCode
    message: str
    remaining: int | None  # None: every call until cleared
    methods: frozenset[str] | None  # None: every method


# ---------------------------------------------------------------- the emulator

class SecretManagerEmulator:
    """An in-process gRPC server for SecretManagerService (its own threads).

    `start()`, `stop()`, and `start()` again listens on the same port, so a
    client can see the service go away and come back. `port=None` (or 0)
    takes a free port at the first start.
    """

    def __init__(self, port: int | None = None, *, max_workers: int = 8):
        self.port = port or 0
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}
        self._fault: _Fault | None = None
        self._delay = 0.0
        self.calls: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------ running

    @property
    def host(self) -> str:
        """"127.0.0.1:PORT": the value for SECRET_MANAGER_EMULATOR_HOST."""
        return f"127.0.0.1:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._server is not None

    def start(self) -> "SecretManagerEmulator":
        if self._server is not None:
            return self
        # No SO_REUSEPORT: two servers must never share a port unnoticed.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers,
                                                        thread_name_prefix="secret-manager-emulator"),
                             options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, self._handlers()),))
        try:
            port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        except RuntimeError as error:  # newer grpcio raises; older ones return 0
            raise OSError(f"cannot listen on 127.0.0.1:{self.port}: {error}") from None
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

    def restart(self) -> "SecretManagerEmulator":
        self.stop()
        return self.start()

    def __enter__(self) -> "SecretManagerEmulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SecretManagerEmulator {self.host} {'running' if self.is_running else 'stopped'}>"

    # ------------------------------------------------------------ test controls

    @property
    def access_count(self) -> int:
        """AccessSecretVersion calls received (failed and faulted ones included) since reset()."""
        return self.calls["AccessSecretVersion"]

    def reset(self) -> None:
        """Forget every secret, fault, delay and call count (between tests)."""
        with self._lock:
            self._secrets.clear()
            self._fault = None
            self._delay = 0.0
            self.calls.clear()

    def put(self, project: str, secret_id: str, payload: str | bytes) -> str:
        """Add a version to projects/PROJECT/secrets/SECRET_ID, creating the secret if needed.

        Returns the new version's resource name, ".../versions/N".
        """
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        name = f"projects/{project}/secrets/{secret_id}"
        try:
            _check_name(SECRET_NAME, name, "secret")
            with self._lock:
                if name not in self._secrets:
                    self._secrets[name] = _Secret(name, {})
                version = self._add_version(self._secrets[name], data, client_checksum=None)
        except _Abort as abort:
            raise ValueError(abort.message) from None
        return f"{name}/versions/{version.number}"

    def fail_with(self, code: grpc.StatusCode, message: str = "injected fault", *,
                  times: int | None = None, methods: list[str] | None = None) -> None:
        """Answer calls with `code` instead: the next `times` calls (all, when None), of the
        given method names (e.g. ["AccessSecretVersion"]; all, when None), until clear_faults()."""
        with self._lock:
            self._fault = _Fault(code, message, times, frozenset(methods) if methods else None)

    def set_delay(self, seconds: float) -> None:
        """Hold every answer for `seconds` (a slow service, to exercise client deadlines)."""
        with self._lock:
            self._delay = seconds

    def clear_faults(self) -> None:
        with self._lock:
            self._fault = None
            self._delay = 0.0

    # ------------------------------------------------------------ gRPC plumbing

    def _handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        methods: dict[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]] = {
            "CreateSecret": (self._create_secret, types.CreateSecretRequest, types.Secret.serialize),
            "GetSecret": (self._get_secret, types.GetSecretRequest, types.Secret.serialize),
            "DeleteSecret": (self._delete_secret, types.DeleteSecretRequest, empty_pb2.Empty.SerializeToString),
            "AddSecretVersion": (self._add_secret_version, types.AddSecretVersionRequest,
                                 types.SecretVersion.serialize),
            "GetSecretVersion": (self._get_secret_version, types.GetSecretVersionRequest,
                                 types.SecretVersion.serialize),
            "AccessSecretVersion": (self._access_secret_version, types.AccessSecretVersionRequest,
                                    types.AccessSecretVersionResponse.serialize),
            "DisableSecretVersion": (self._disable_secret_version, types.DisableSecretVersionRequest,
                                     types.SecretVersion.serialize),
            "EnableSecretVersion": (self._enable_secret_version, types.EnableSecretVersionRequest,
                                    types.SecretVersion.serialize),
            "DestroySecretVersion": (self._destroy_secret_version, types.DestroySecretVersionRequest,
                                     types.SecretVersion.serialize),
        }
        return {
            name: grpc.unary_unary_rpc_method_handler(
                self._unary(name, behaviour), request_deserializer=request_type.deserialize,
                response_serializer=serialize)
            for name, (behaviour, request_type, serialize) in methods.items()
        }

    def _unary(self, method: str, behaviour: Callable[[Any], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls[method] += 1
                fault, delay = self._take_fault(method), self._delay
            if delay:
                time.sleep(delay)
            try:
                if fault is not None:
                    raise fault
                with self._lock:
                    return behaviour(request)
            except _Abort as abort:
                context.abort(abort.code, abort.message)

        return handle

    def _take_fault(self, method: str) -> _Abort | None:
        fault = self._fault
        if fault is None or (fault.methods is not None and method not in fault.methods):
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._fault = None
        return _Abort(fault.code, fault.message)

    # ------------------------------------------------------------ the API (called under the lock)

    def _create_secret(self, request: types.CreateSecretRequest) -> types.Secret:
        _check_name(PROJECT_NAME, request.parent, "parent")
        name = f"{request.parent}/secrets/{request.secret_id}"
        _check_name(SECRET_NAME, name, "secret")
        if name in self._secrets:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
        self._secrets[name] = _Secret(name, dict(request.secret.labels))
        return _secret_message(self._secrets[name])

    def _get_secret(self, request: types.GetSecretRequest) -> types.Secret:
        return _secret_message(self._find_secret(request.name))

    def _delete_secret(self, request: types.DeleteSecretRequest) -> empty_pb2.Empty:
        del self._secrets[self._find_secret(request.name).name]
        return empty_pb2.Empty()

    def _add_secret_version(self, request: types.AddSecretVersionRequest) -> types.SecretVersion:
        secret = self._find_secret(request.parent)
        given = request.payload.data_crc32c if "data_crc32c" in request.payload else None
        version = self._add_version(secret, bytes(request.payload.data), client_checksum=given)
        return _version_message(secret, version)

    def _get_secret_version(self, request: types.GetSecretVersionRequest) -> types.SecretVersion:
        return _version_message(*self._find_version(request.name))

    def _access_secret_version(self, request: types.AccessSecretVersionRequest) -> types.AccessSecretVersionResponse:
        secret, version = self._find_version(request.name)
        if version.state != SecretVersionState.ENABLED:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f"Secret Version [{secret.name}/versions/{version.number}] is in "
                         f"{version.state.name} state.")
        return types.AccessSecretVersionResponse(
            name=f"{secret.name}/versions/{version.number}",
            payload=types.SecretPayload(data=version.data, data_crc32c=version.checksum))

    def _disable_secret_version(self, request: types.DisableSecretVersionRequest) -> types.SecretVersion:
        return self._change_state(request.name, SecretVersionState.DISABLED)

    def _enable_secret_version(self, request: types.EnableSecretVersionRequest) -> types.SecretVersion:
        return self._change_state(request.name, SecretVersionState.ENABLED)

    def _destroy_secret_version(self, request: types.DestroySecretVersionRequest) -> types.SecretVersion:
        return self._change_state(request.name, SecretVersionState.DESTROYED)

    # ------------------------------------------------------------ helpers (under the lock)

    def _find_secret(self, name: str) -> _Secret:
        _check_name(SECRET_NAME, name, "secret")
        if name not in self._secrets:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found or has no versions.")
        return self._secrets[name]

    def _find_version(self, name: str) -> tuple[_Secret, _Version]:
        match = _check_name(VERSION_NAME, name, "secret version")
        secret = self._find_secret(name.rsplit("/versions/", 1)[0])
        label = match.group("version")
        if label == "latest":
            if not secret.versions:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{secret.name}] not found or has no versions.")
            return secret, secret.versions[-1]
        number = int(label)
        if number > len(secret.versions):
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        return secret, secret.versions[number - 1]

    def _add_version(self, secret: _Secret, data: bytes, client_checksum: int | None) -> _Version:
        if len(data) > MAX_PAYLOAD_BYTES:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"Secret payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}.")
        checksum = crc32c(data)
        if client_checksum is not None and client_checksum != checksum:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         "The data_crc32c of the payload does not match its data.")
        version = _Version(len(secret.versions) + 1, data, checksum, client_checksum is not None)
        secret.versions.append(version)
        return version

    def _change_state(self, name: str, state: SecretVersionState) -> types.SecretVersion:
        secret, version = self._find_version(name)
        if version.state == SecretVersionState.DESTROYED and state != SecretVersionState.DESTROYED:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f"Secret Version [{secret.name}/versions/{version.number}] is in DESTROYED state.")
        version.state = state
        if state == SecretVersionState.DESTROYED:
            version.data = b""
        return _version_message(secret, version)


def _check_name(pattern: re.Pattern[str], name: str, what: str) -> re.Match[str]:
    match = pattern.fullmatch(name)
    if not match:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid {what} resource name [{name}].")
    return match


def _secret_message(secret: _Secret) -> types.Secret:
    return types.Secret(name=secret.name, create_time=secret.created, labels=secret.labels,
                        replication=types.Replication(automatic=types.Replication.Automatic()))


def _version_message(secret: _Secret, version: _Version) -> types.SecretVersion:
    return types.SecretVersion(name=f"{secret.name}/versions/{version.number}", create_time=version.created,
                               state=version.state,
                               client_specified_payload_checksum=version.client_checksum)


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.secret_manager_emulator",
                                     description="Serve the Secret Manager v1 gRPC API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--secret", action="append", default=[], metavar="projects/P/secrets/S=VALUE",
                        help="create a secret with VALUE as its first version (repeatable; repeat a name "
                             "to add versions)")
    args = parser.parse_args(argv)
    initial = []
    for item in args.secret:
        name, separator, value = item.partition("=")
        match = SECRET_NAME.fullmatch(name)
        if not separator or not match:
            parser.error(f"--secret takes projects/P/secrets/S=VALUE, not {item!r}")
        initial.append((match.group("project"), match.group("secret_id"), value))

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    emulator = SecretManagerEmulator(args.port).start()
    try:
        for project, secret_id, value in initial:
            print(f"created {emulator.put(project, secret_id, value)}", flush=True)
        # Last, once everything is in place: a script may wait for this line.
        print(f"SECRET_MANAGER_EMULATOR_HOST={emulator.host}", flush=True)
        stopping.wait()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

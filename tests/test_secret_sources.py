"""Where the DSN comes from: a file the platform mounts, or Secret Manager. Each is read
once per instance, an unusable one is read again only rarely, and a rotation is picked
up by the same instance without a restart or more connections than the pool.

- DATABASE_URL_FILE end to end: a secret the platform mounts as a file
  (`--set-secrets=/PATH=SECRET:latest`), through the real server (functions-framework
  in its own process). The file is watched with the kernel's inotify, so "read once"
  is the kernel's count of opens, not the function's word for it. Rotation is done as
  an operator would: a new password on the database, the file's new content (what the
  platform serves once a new secret version exists), the old connections gone; the
  same instance, never restarted, answers the next request with the new password.
- The DSN read through the real Secret Manager client, once per instance, and
  rotation. The client library talks gRPC to a local server that implements the
  Secret Manager API (devtools.secret_manager_emulator); nothing in the client is
  patched.
- A connection string in Secret Manager that cannot be used, whatever the reason, is
  read again at most once every SECRET_RETRY_INTERVAL: requests in between get a 503
  without a Secret Manager call. Once the secret is fixed, the instance recovers
  without a restart. Reads are counted by the Secret Manager server the real client
  talks to.
- A password rotated while a request holds a connection: the engine is rebuilt, and
  the connection of the replaced engine is closed when its request returns it, so the
  server never holds more of the instance's connections than the pool size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import os
import pathlib
import struct
import time
import uuid

import grpc
import pytest
from function_harness import FunctionServer, HeldConnection, load_function

from db.secret import SECRET_TIMEOUT
from devtools.function_server import json_lines

IN_OPEN = 0x20
IN_NONBLOCK = os.O_NONBLOCK
# SECRET_RETRY_INTERVAL: the DSN is read again at most this often; short, so the tests
# see recovery quickly (the default is 5 s).
RETRY_INTERVAL = 0.3


class FileOpens:
    """How many times a file was opened since the watch began (Linux inotify)."""

    def __init__(self, path: pathlib.Path):
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = self._libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(self._fd, os.fsencode(path), IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self._count = 0

    @property
    def count(self) -> int:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return self._count
            offset = 0
            while offset < len(data):
                _, mask, _, name_length = struct.unpack_from("iIII", data, offset)
                if mask & IN_OPEN:
                    self._count += 1
                offset += 16 + name_length

    def close(self) -> None:
        os.close(self._fd)


def _errors(server: FunctionServer) -> list[str]:
    return [line["message"] for line in server.log_lines() if line.get("severity") == "ERROR"]


def test_the_file_is_read_once_per_instance(events_db, tmp_path):
    dsn_file = tmp_path / "database-url"
    dsn_file.write_text(events_db.dsn() + "\n")
    opens = FileOpens(dsn_file)
    try:
        with FunctionServer({"DATABASE_URL_FILE": str(dsn_file)}, tmp_path / "function.log") as server:
            for i in range(20):
                assert server.request(body=f'{{"kind": "file-{i}"}}'.encode()).status == 201
            assert opens.count == 1
    finally:
        opens.close()
    assert len(events_db.rows()) == 20


def test_rotation_new_password_new_file_content_backends_killed_next_request_succeeds(events_db, tmp_path):
    events_db.set_password("rotating", "first-file-password")
    dsn_file = tmp_path / "database-url"
    dsn_file.write_text(events_db.dsn(user="rotating", password="first-file-password"))
    env = {"DATABASE_URL_FILE": str(dsn_file), "SECRET_RETRY_INTERVAL": str(RETRY_INTERVAL)}
    with FunctionServer(env, tmp_path / "function.log") as server:
        assert server.request(body=b'{"kind": "before-rotation"}').status == 201
        workers = server.worker_pids()
        opens = FileOpens(dsn_file)
        try:
            events_db.set_password("rotating", "second-file-password")
            dsn_file.write_text(events_db.dsn(user="rotating", password="second-file-password"))
            opens.count  # noqa: B018 - the test's own write is not the function's read
            assert events_db.terminate_backends(user="rotating") == 1
            time.sleep(RETRY_INTERVAL)

            reply = server.request(body=b'{"kind": "after-rotation"}')
            assert reply.status == 201, reply.body
            assert server.request(body=b'{"kind": "steady"}').status == 201
            assert opens.count == 2  # the test's write, then one read by the function
        finally:
            opens.close()
        assert server.worker_pids() == workers  # the same instance, not restarted
        assert events_db.connection_count(user="rotating") == 1
    kinds = sorted(row["kind"] for row in events_db.rows().values())
    assert kinds == ["after-rotation", "before-rotation", "steady"]


def test_a_missing_file_is_a_503_whose_log_line_names_the_file(events_db, tmp_path):
    missing = tmp_path / "not-mounted" / "database-url"
    with FunctionServer({"DATABASE_URL_FILE": str(missing)}, tmp_path / "function.log") as server:
        reply = server.request(body=b'{"kind": "x"}')
        assert reply.status == 503
        assert reply.headers["Retry-After"]
        errors = _errors(server)
    assert any(str(missing) in message and "FileNotFoundError" in message for message in errors), errors
    assert events_db.rows() == {}


def test_an_unreadable_file_is_a_503_naming_the_file_not_its_content(events_db, tmp_path):
    # Not UTF-8 text: the function cannot read it as a DSN, and must not echo it.
    unreadable = tmp_path / "database-url"
    secret_part = "do-not-echo-this-password"
    events_db.secrets.add(secret_part)  # the autouse leak check looks for it too
    unreadable.write_bytes(f"postgresql://app:{secret_part}@127.0.0.1/app".encode() + b"\xff\xfe")
    a_directory = tmp_path / "a-directory"
    a_directory.mkdir()
    for path, error in ((unreadable, "not UTF-8 text"), (a_directory, "not a regular file (a directory)")):
        log = tmp_path / f"{path.name}.log"
        with FunctionServer({"DATABASE_URL_FILE": str(path)}, log) as server:
            reply = server.request(body=b'{"kind": "x"}')
            assert reply.status == 503
            errors = _errors(server)
        assert any(str(path) in message and error in message for message in errors), errors
        assert secret_part not in reply.body.decode() and secret_part not in log.read_text()
    assert events_db.rows() == {}


def test_an_empty_file_or_one_with_a_byte_order_mark_is_a_503_naming_that(events_db, tmp_path):
    empty, marked = tmp_path / "empty", tmp_path / "marked"
    empty.write_text("\n")
    marked.write_text("\ufeff" + events_db.dsn())
    for path, named in ((empty, "is empty"), (marked, "byte order mark")):
        with FunctionServer({"DATABASE_URL_FILE": str(path)}, tmp_path / f"{path.name}.log") as server:
            assert server.request(body=b'{"kind": "x"}').status == 503
            errors = _errors(server)
        assert any(str(path) in message and named in message for message in errors), errors
    assert events_db.rows() == {}


def a_fifo_with_no_writer(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def a_file_too_large(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "large"
    path.write_bytes(b"x" * (64 * 1024 + 1))
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda tmp_path: pathlib.Path("/dev/zero"), "not a regular file (a character device)"),
        (a_fifo_with_no_writer, "not a regular file (a FIFO)"),
        (a_file_too_large, "larger than 65536 bytes"),
    ],
    ids=["dev-zero", "fifo-without-writer", "too-large"],
)
def test_a_file_that_is_no_secret_is_a_prompt_503_naming_the_variable_and_why(
    events_db, tmp_path, make, reason
):
    """/dev/zero grew the worker to 1.9 GB; a FIFO with no writer blocked every request, 404s included."""
    path = make(tmp_path)
    with FunctionServer({"DATABASE_URL_FILE": str(path)}, tmp_path / "function.log") as server:
        started = time.monotonic()
        reply = server.request(body=b'{"kind": "x"}')
        answered_in = time.monotonic() - started
        assert server.request("GET", path="/other").status == 404
        errors = _errors(server)
        rss = server.worker_rss_bytes()
    assert reply.status == 503 and reply.headers["Retry-After"]
    assert any(f"DATABASE_URL_FILE {path}" in message and reason in message for message in errors), errors
    # Within the function's own bound on reading a secret (a blocked open never answered),
    # and no memory grown by it (a read of /dev/zero took 1.9 GB).
    assert answered_in < SECRET_TIMEOUT and rss < 200 * 1024 * 1024
    assert events_db.rows() == {}


@pytest.mark.parametrize("source", ["DATABASE_URL", "DATABASE_URL_FILE"])
def test_a_malformed_connection_string_is_named_by_its_variable(tmp_path, monkeypatch, capfd, source):
    value = "events database, see the wiki"
    if source == "DATABASE_URL_FILE":
        (tmp_path / "dsn").write_text(value)
        value = str(tmp_path / "dsn")
    _, client = load_function(monkeypatch, **{source: value})
    assert client.post("/", json={"kind": "x"}).status_code == 503
    [error] = [line["message"] for line in json_lines(capfd.readouterr().out) if line["severity"] == "ERROR"]
    assert source in error and "must start with one of" in error


PROJECT = "demo-project"
SECRET = "events-dsn"


def secret_env(secret_manager, version="latest"):
    return {
        "DATABASE_URL_SECRET": f"projects/{PROJECT}/secrets/{SECRET}/versions/{version}",
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host,
        "SECRET_RETRY_INTERVAL": str(RETRY_INTERVAL),
    }


def test_dsn_is_read_from_secret_manager_once_per_instance(events_db, secret_manager, monkeypatch):
    secret_manager.put(PROJECT, SECRET, events_db.dsn())
    _, client = load_function(monkeypatch, **secret_env(secret_manager))
    before = secret_manager.access_count
    for _ in range(20):
        assert client.post("/", json={"kind": "from-secret"}).status_code == 201
    assert secret_manager.access_count - before == 1


def test_rotated_password_is_picked_up_without_a_restart(events_db, secret_manager, monkeypatch):
    events_db.set_password("rotating", "first-password")
    secret_manager.put(PROJECT, SECRET, events_db.dsn(user="rotating", password="first-password"))
    module, client = load_function(monkeypatch, **secret_env(secret_manager))
    assert client.post("/", json={"kind": "before-rotation"}).status_code == 201

    # Rotate: new password on the database, new secret version, old connections gone.
    events_db.set_password("rotating", "second-password")
    secret_manager.put(PROJECT, SECRET, events_db.dsn(user="rotating", password="second-password"))
    events_db.terminate_backends(user="rotating")
    time.sleep(RETRY_INTERVAL)  # the secret was read less than the retry interval ago

    reply = client.post("/", json={"kind": "after-rotation"})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    assert client.post("/", json={"kind": "steady"}).status_code == 201
    module.runtime.database().dispose()


def test_wrong_password_in_an_unchanged_secret_is_a_503(events_db, secret_manager, monkeypatch, capfd):
    secret_manager.put(PROJECT, SECRET, events_db.dsn(password="not-the-password"))
    _, client = load_function(monkeypatch, **secret_env(secret_manager))
    reply = client.post("/", json={"kind": "x"})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"]
    assert "not-the-password" not in capfd.readouterr().out


def test_missing_secret_is_a_503_naming_the_secret_then_recovers(
    events_db, secret_manager, monkeypatch, capfd
):
    _, client = load_function(
        monkeypatch,
        **{
            **secret_env(secret_manager),
            "DATABASE_URL_SECRET": f"projects/{PROJECT}/secrets/absent/versions/latest",
        },
    )
    reply = client.post("/", json={"kind": "x"})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"]
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert any(f"projects/{PROJECT}/secrets/absent" in entry["message"] for entry in logged)
    # Once the secret exists, the same instance reads it and serves.
    secret_manager.put(PROJECT, "absent", events_db.dsn())
    time.sleep(RETRY_INTERVAL)
    assert client.post("/", json={"kind": "x"}).status_code == 201
    assert events_db.dsn() not in capfd.readouterr().out


def test_unreachable_secret_manager_is_a_prompt_503_then_recovers(events_db, secret_manager, monkeypatch):
    secret_manager.put(PROJECT, SECRET, events_db.dsn())
    _, client = load_function(monkeypatch, SECRET_TIMEOUT="1", **secret_env(secret_manager))
    secret_manager.stop()
    try:
        reply = client.post("/", json={"kind": "x"})
        assert reply.status_code == 503
    finally:
        secret_manager.start()
    time.sleep(RETRY_INTERVAL)
    assert client.post("/", json={"kind": "x"}).status_code == 201


def test_malformed_secret_name_is_a_503_with_a_clear_log(monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL_SECRET="events-dsn")
    assert client.post("/", json={"kind": "x"}).status_code == 503
    assert "projects/PROJECT/secrets/SECRET/versions/VERSION" in capfd.readouterr().out


def test_no_database_configured_is_a_503_saying_what_to_set(monkeypatch, capfd):
    _, client = load_function(monkeypatch)
    assert client.get("/").status_code == 503
    assert "DATABASE_URL" in capfd.readouterr().out


UNUSABLE_RETRY_INTERVAL = 0.5
REQUESTS = 20
PAUSE = 0.1  # between requests, so the run spans several retry intervals


def unencoded_hash(events_db) -> str:
    password = f"pa#ss-{uuid.uuid4().hex[:8]}"
    events_db.secrets.add(password)
    return f"postgresql://app:{password}@127.0.0.1:{events_db.port}/app"


def rejected_password(events_db) -> str:
    password = f"wrong-{uuid.uuid4().hex[:8]}"
    events_db.secrets.add(password)
    return events_db.dsn(password=password)


UNUSABLE = {
    "an unencoded '#' in the password": unencoded_hash,
    "not a connection string": lambda events_db: "events database, see the wiki",
    "a rejected password": rejected_password,
    "an unknown database": lambda events_db: events_db.dsn(database="no_such_database"),
    "no such secret version": None,
    "no permission to read it": "PERMISSION_DENIED",
}


def make_unusable(secret_manager, events_db, how) -> None:
    if callable(how):
        secret_manager.put(PROJECT, SECRET, how(events_db))
    elif how == "PERMISSION_DENIED":
        secret_manager.put(PROJECT, SECRET, events_db.dsn())
        secret_manager.fail_with(grpc.StatusCode.PERMISSION_DENIED, "the caller lacks secretAccessor")


@pytest.mark.parametrize("how", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_unusable_secret_is_read_at_most_once_per_interval_then_recovers(
    events_db, secret_manager, monkeypatch, how
):
    make_unusable(secret_manager, events_db, how)
    _, client = load_function(
        monkeypatch,
        DATABASE_URL_SECRET=f"projects/{PROJECT}/secrets/{SECRET}/versions/latest",
        SECRET_MANAGER_EMULATOR_HOST=secret_manager.host,
        SECRET_RETRY_INTERVAL=str(UNUSABLE_RETRY_INTERVAL),
        DB_TIMEOUT="2",
    )
    started = time.monotonic()
    for _ in range(REQUESTS):
        reply = client.post("/", json={"kind": "unusable-secret"})
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
        time.sleep(PAUSE)
    elapsed = time.monotonic() - started
    reads = secret_manager.access_count
    assert 2 <= reads <= math.ceil(elapsed / UNUSABLE_RETRY_INTERVAL) + 1, (reads, elapsed)

    secret_manager.clear_faults()
    secret_manager.put(PROJECT, SECRET, events_db.dsn())
    time.sleep(UNUSABLE_RETRY_INTERVAL)
    assert client.post("/", json={"kind": "fixed"}).status_code == 201
    assert [row["kind"] for row in events_db.rows().values()] == ["fixed"]


ROLE = "rotating_pool"


def test_a_connection_of_a_replaced_engine_is_closed_when_it_is_returned(events_db, tmp_path, monkeypatch):
    events_db.set_password(ROLE, "first-pool-password")
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(events_db.dsn(user=ROLE, password="first-pool-password"))
    module, client = load_function(
        monkeypatch, DATABASE_URL_FILE=str(dsn_file), DB_POOL_SIZE="2", SECRET_RETRY_INTERVAL="0.1"
    )
    assert client.post("/", json={"kind": "before"}).status_code == 201
    with HeldConnection(module.runtime.database()) as held:  # a request still running
        events_db.set_password(ROLE, "second-pool-password")
        dsn_file.write_text(events_db.dsn(user=ROLE, password="second-pool-password"))
        time.sleep(0.15)  # past SECRET_RETRY_INTERVAL: the file may be read again
        # The pool's second connection is refused the old password: the DSN is read
        # again and the engine rebuilt; the held connection still works.
        assert client.post("/", json={"kind": "after"}).status_code == 201
        assert events_db.connection_count(ROLE) == 2
        held.release()
    assert events_db.connection_count(ROLE) == 1
    # Two requests at once on the new engine: its pool grows to two, and no more.
    with HeldConnection(module.runtime.database()):
        assert client.post("/", json={"kind": "beside"}).status_code == 201
        assert events_db.connection_count(ROLE) == 2
    assert len(events_db.rows()) == 3
    events_db.terminate_backends(user=ROLE)

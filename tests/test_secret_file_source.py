"""DATABASE_URL_FILE end to end: a secret the platform mounts as a file (`--set-secrets=/PATH=SECRET:latest`).

Through the real server (functions-framework in its own process). The file is
watched with the kernel's inotify, so "read once" is the kernel's count of
opens, not the function's word for it. Rotation is done as an operator would:
a new password on the database, the file's new content (what the platform
serves once a new secret version exists), the old connections gone; the same
instance, never restarted, answers the next request with the new password.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib
import struct
import time

from function_harness import FunctionServer

IN_OPEN = 0x20
IN_NONBLOCK = os.O_NONBLOCK
RETRY_INTERVAL = 0.3  # SECRET_RETRY_INTERVAL: the file is read again at most this often


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
    for path, error in ((unreadable, "UnicodeDecodeError"), (a_directory, "IsADirectoryError")):
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

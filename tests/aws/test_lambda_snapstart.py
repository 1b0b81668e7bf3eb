"""SnapStart: no connection and no secret value in the snapshot, unique ids and random
draws in every restored copy, and exactly one new connection for the first request
after a restore. The registered hooks run through awslambdaric's own runner,
around real requests against the real PostgreSQL server."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from function_harness import capture
from sample_events import http_event, json_body

from devtools.function_server import ROOT

HERE = pathlib.Path(__file__).resolve().parent


class Environment:
    """tests/aws/snapstart_driver.py: one execution environment, step by step."""

    def __init__(self, env: dict[str, str], log_path: pathlib.Path):
        capture.log_files.append(log_path)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "snapstart_driver.py")],
            env={"PATH": "", "PYTHONPATH": str(ROOT), **env},
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.PIPE,
            text=True,
        )

    def send(self, command: dict):
        assert self.process.stdin and self.process.stderr
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stderr.readline()
        assert line, "the driver exited"
        return json.loads(line)

    def post(self, kind: str) -> int:
        return self.send({"invoke": http_event(body=json_body({"kind": kind}))})["statusCode"]

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(10)
        self._log.close()


@pytest.fixture
def environment(tmp_path):
    started = []

    def start(env: dict[str, str]) -> Environment:
        started.append(Environment(env, tmp_path / f"environment-{len(started)}.log"))
        return started[-1]

    yield start
    for each in started:
        each.close()


def reads_of_the_secret(aws) -> int:
    return [call.name for call in aws.calls()].count("secretsmanager:GetSecretValue")


def test_before_the_snapshot_the_connection_closes_and_the_dsn_is_forgotten(environment, aws, events_db):
    arn = aws.client("secretsmanager").create_secret(Name="events-dsn", SecretString=events_db.dsn())["ARN"]
    instance = environment({"DATABASE_URL_SECRET_ARN": arn, **aws.client_environment()})
    assert instance.post("primed") == 201
    assert events_db.connection_count() == 1 and reads_of_the_secret(aws) == 1
    instance.send({"hooks": "before"})
    assert events_db.connection_count() == 0
    # boto3 goes into the snapshot, so restored copies do not import it again.
    assert instance.send({"imported": ["boto3"]}) == ["boto3"]
    instance.send({"hooks": "after"})
    events_db.reset_connection_log()
    assert instance.post("after-restore") == 201
    assert instance.post("warm") == 201
    # The first request after the restore read the secret again and opened one connection.
    assert events_db.connections_opened() == 1
    assert reads_of_the_secret(aws) == 2


def test_restored_copies_draw_different_numbers_and_ids(environment, events_db):
    instance = environment({"DATABASE_URL": events_db.dsn()})
    instance.send({"hooks": "before"})
    # Without the after-restore hooks, copies of one snapshot repeat each other's draws:
    # the reason the hook reseeds.
    unhooked = instance.send({"copies": 2, "hooks": False})
    assert unhooked[0][0] == unhooked[1][0]
    hooked = instance.send({"copies": 3, "hooks": True})
    assert len({draw for draw, _ in hooked}) == 3
    # Event ids come from os.urandom: unique in every copy, hooks or not.
    assert len({event_id for _, event_id in hooked + unhooked}) == 5


def process_memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any writable mapping of the process holds `needle` (root reads /proc/PID/mem)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1] or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            start, end = (int(value, 16) for value in fields[0].split("-"))
            try:
                memory.seek(start)
                if needle in memory.read(end - start):
                    return True
            except OSError:
                continue  # a mapping that cannot be read (guard pages)
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
def test_under_snapstart_the_snapshot_holds_no_connection_and_no_secret(lambda_function, aws, events_db):
    events_db.set_password("snapshotted", "password-never-in-a-snapshot")
    arn = aws.client("secretsmanager").create_secret(
        Name="events-dsn",
        SecretString=events_db.dsn(user="snapshotted", password="password-never-in-a-snapshot"),
    )["ARN"]
    function = lambda_function({"DATABASE_URL_SECRET_ARN": arn, **aws.client_environment()}, snap_start=True)
    function.process.wait_for_snapshot()
    # The snapshot would be taken now: awslambdaric has imported the handler, run the
    # before-snapshot hooks, and waits in restore/next.
    assert events_db.connection_count(user="snapshotted") == 0
    assert reads_of_the_secret(aws) == 0
    assert function.process.process is not None
    assert not process_memory_holds(function.process.process.pid, b"password-never-in-a-snapshot")
    function.api.restore()
    events_db.reset_connection_log()
    reply = function.invoke(http_event(body=json_body({"kind": "first-after-restore"}))).payload
    assert reply["statusCode"] == 201
    assert events_db.connections_opened(user="snapshotted") == 1
    assert reads_of_the_secret(aws) == 1
    assert function.api.init_errors == [] and function.api.restore_errors == []
    # The scan can see the password once the function has read it: the check above has teeth.
    assert process_memory_holds(function.process.process.pid, b"password-never-in-a-snapshot")

"""A process that plays one Lambda execution environment step by step, for the SnapStart tests.

It imports the handler as Lambda does, then follows commands, one JSON line each
on stdin, answering one JSON line each on stderr (stdout carries the function's log):

    {"invoke": EVENT}            the handler's return value
    {"hooks": "before"}          the registered before-snapshot hooks, run by awslambdaric's runner
    {"hooks": "after"}           the after-restore hooks, likewise
    {"imported": [NAME, ...]}    which of these modules the process has imported
    {"copies": N, "hooks": B}    fork N copies of this process, as N restores of one
                                 snapshot; each runs the after-restore hooks if B, then
                                 reports a `random` draw and a new event id
"""

import json
import os
import random
import sys
import types
import uuid

from awslambdaric import lambda_runtime_hooks_runner

from aws.lambda_function import lambda_handler
from core.rules import random_id


def copies(count: int, run_hooks: bool) -> list:
    # A restore copies memory as the snapshot held it, with no fork: `random` seeds
    # itself again in a forked child (os.register_at_fork), so each copy is put
    # back to the state the snapshot held before anything else runs.
    snapshot_state = random.getstate()
    reports = []
    for _ in range(count):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # a restored copy
            os.close(read_end)
            random.setstate(snapshot_state)
            if run_hooks:
                lambda_runtime_hooks_runner.run_after_restore()
            os.write(write_end, json.dumps([random.random(), random_id()]).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            reports.append(json.loads(pipe.read()))
        os.waitpid(pid, 0)
    return reports


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        if "invoke" in command:
            answer = lambda_handler(
                command["invoke"], types.SimpleNamespace(aws_request_id=str(uuid.uuid4()))
            )
        elif "imported" in command:
            answer = [name for name in command["imported"] if name in sys.modules]
        elif "copies" in command:
            answer = copies(command["copies"], command["hooks"])
        elif command["hooks"] == "before":
            answer = lambda_runtime_hooks_runner.run_before_snapshot()
        else:
            answer = lambda_runtime_hooks_runner.run_after_restore()
        sys.stderr.write(json.dumps(answer) + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    main()

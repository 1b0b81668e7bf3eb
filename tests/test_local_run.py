"""The local loop as a new user meets it: scripts/run-local.sh and its Python side, devtools.serve_local.

It says "serving" only once the function answers and stops cleanly on Ctrl-C;
a taken port, or a data dir another run uses, is refused before anything slow
starts, naming --port, --db-port and --data-dir; --show reads the database of
a running local run; the requirements are installed again only when they change.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from function_harness import ROOT, capture

from devtools.deadlines import scaled
from devtools.postgres import free_port

EVERY_OPTION = ("--port", "--db-port", "--data-dir")


@pytest.fixture
def data_dir():
    parent = pathlib.Path(tempfile.mkdtemp(prefix="serve-local-test-"))
    parent.chmod(0o711)  # as root, PostgreSQL runs as `nobody`, which must reach its folder
    yield parent / "pgdata"
    shutil.rmtree(parent, ignore_errors=True)


def without_dsn() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}


def local_run(*args: str) -> subprocess.Popen:
    # A session of its own, so Ctrl-C can be sent as a terminal sends it: to the whole process group.
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.serve_local", *args],
        cwd=ROOT,
        env=without_dsn(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finished(*args: str) -> tuple[int, str]:
    process = local_run(*args)
    output, _ = process.communicate(timeout=scaled(60))
    capture.add(output)
    return process.returncode, output


def ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)


def read_until(process: subprocess.Popen, text: str, timeout: float = 60.0) -> str:
    seen = []
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never printed; output was:\n{''.join(seen)}")


def post(port: int, kind: str) -> None:
    body = f'{{"kind": "{kind}"}}'.encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=scaled(10)) as reply:  # right after "serving": no retry
        assert reply.status == 201


def assert_refused_naming_every_option(returncode: int, output: str) -> None:
    assert returncode == 2, output
    assert all(option in output for option in EVERY_OPTION), output
    assert "Traceback" not in output and "serving" not in output and "stopped" not in output


def write_postmaster_pid(data_dir: pathlib.Path, pid: int) -> None:
    """postmaster.pid as a server that did not stop leaves it: owned by the server's user."""
    cluster = data_dir / "data"
    pid_file = cluster / "postmaster.pid"
    pid_file.write_text(f"{pid}\n{cluster}\n1700000000\n54329\n\n127.0.0.1\n")
    os.chown(pid_file, cluster.stat().st_uid, cluster.stat().st_gid)


def test_serving_is_printed_once_it_answers_and_ctrl_c_stops_everything_cleanly(data_dir):
    port, db_port = free_port(), free_port()
    sockets_before = set(pathlib.Path(tempfile.gettempdir()).glob("devtools-pgsock-*"))
    process = local_run("--port", str(port), "--db-port", str(db_port), "--data-dir", str(data_dir))
    try:
        read_until(process, "is serving on")
        post(port, "local")
        ctrl_c(process)
        output, _ = process.communicate(timeout=scaled(20))
    finally:
        process.kill()
    capture.add(output)
    assert process.returncode == 0
    assert "Traceback" not in output and "embedded PostgreSQL stopped" in output
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", db_port), timeout=1).close()
    assert set(pathlib.Path(tempfile.gettempdir()).glob("devtools-pgsock-*")) <= sockets_before


@pytest.mark.parametrize("option", ["--port", "--db-port"])
def test_a_taken_port_is_refused_before_pip_or_postgresql_naming_every_option(option, data_dir, tmp_path):
    venv = tmp_path / "venv-not-made-yet"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = {"--port": free_port(), "--db-port": free_port(), option: taken.getsockname()[1]}
        arguments = [f"{name}={value}" for name, value in ports.items()]
        script = subprocess.run(
            ["bash", "scripts/run-local.sh", *arguments, "--data-dir", str(data_dir)],
            cwd=ROOT,
            env={**without_dsn(), "EVENTS_VENV": str(venv)},
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
    output = script.stdout + script.stderr
    capture.add(output)
    assert_refused_naming_every_option(script.returncode, output)
    assert f"port {ports[option]} is taken; choose another with {option}" in output
    assert not venv.exists() and not data_dir.exists()  # neither pip nor PostgreSQL ran


def test_while_a_run_serves_show_reads_its_database_and_a_second_run_is_told_to_use_another_data_dir(
    data_dir,
):
    port = free_port()
    process = local_run("--port", str(port), "--db-port", str(free_port()), "--data-dir", str(data_dir))
    try:
        banner = read_until(process, "--show")
        assert f"--show --data-dir {data_dir}" in banner
        post(port, "shown-while-serving")

        returncode, shown = finished("--show", "5", "--data-dir", str(data_dir))
        assert returncode == 0, shown
        assert "shown-while-serving" in shown and "stopped" not in shown  # the running server's

        second = ("--port", str(free_port()), "--db-port", str(free_port()), "--data-dir", str(data_dir))
        returncode, refused = finished(*second)
        assert_refused_naming_every_option(returncode, refused)
        assert f"a local run is already running on {data_dir}" in refused
        assert f"--data-dir {data_dir}-2" in refused
        ctrl_c(process)
        output, _ = process.communicate(timeout=scaled(20))
    finally:
        process.kill()
    capture.add(output)
    assert process.returncode == 0 and "Traceback" not in output


def test_a_postmaster_pid_left_by_a_server_that_died_is_no_obstacle(data_dir):
    returncode, output = finished("--show", "--data-dir", str(data_dir))  # makes the cluster
    assert returncode == 0, output
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_postmaster_pid(data_dir, gone.pid)

    returncode, output = finished("--show", "--data-dir", str(data_dir))
    assert returncode == 0, output
    assert "the newest 0 events" in output and "Traceback" not in output


def test_a_postmaster_pid_naming_another_program_is_refused_with_the_file_to_delete(data_dir):
    (data_dir / "data").mkdir(parents=True)
    write_postmaster_pid(data_dir, os.getpid())  # alive, and not PostgreSQL

    for arguments in (["--show"], ["--port", str(free_port()), "--db-port", str(free_port())]):
        returncode, output = finished(*arguments, "--data-dir", str(data_dir))
        assert_refused_naming_every_option(returncode, output)
        assert (
            f"{data_dir}/data/postmaster.pid names process {os.getpid()}, which is not PostgreSQL" in output
        )


def test_the_usage_text_names_every_option():
    usage = subprocess.run(
        ["bash", "scripts/run-local.sh", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(10),
    )
    assert usage.returncode == 0
    assert all(option in usage.stdout for option in (*EVERY_OPTION, "--show"))


# A pip that notes each call and installs a uv that notes each call: no package is fetched.
STAND_IN_PIP = """\
import os, pathlib, sys
log = pathlib.Path(os.environ["STAND_IN_LOG"])
with log.open("a") as calls:
    calls.write("pip " + " ".join(sys.argv[1:]) + "\\n")
uv = pathlib.Path(sys.executable).parent / "uv"
uv.write_text("#!" + sys.executable + "\\n" + os.environ["STAND_IN_UV"])
uv.chmod(0o755)
"""
STAND_IN_UV = """\
import os, pathlib, sys
log = pathlib.Path(os.environ["STAND_IN_LOG"])
with log.open("a") as calls:
    calls.write("uv " + " ".join(sys.argv[1:]) + "\\n")
sys.exit(1 if pathlib.Path(str(log) + ".fail").exists() else 0)
"""


def test_the_requirements_are_installed_again_only_when_they_change(tmp_path):
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    for name in ("scripts/bootstrap.sh", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, project / name)
    # A Python 3.13 virtual environment with the stand-in pip.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project / ".venv")], check=True)
    site = next((project / ".venv" / "lib").glob("python3.*/site-packages"))
    (site / "pip").mkdir()
    (site / "pip" / "__init__.py").write_text("")
    (site / "pip" / "__main__.py").write_text(STAND_IN_PIP)
    log = tmp_path / "install-calls"
    env = {k: v for k, v in os.environ.items() if k != "EVENTS_VENV"}
    env |= {"STAND_IN_LOG": str(log), "STAND_IN_UV": STAND_IN_UV}
    pinned_uv = next(
        line for line in (ROOT / "requirements-dev.txt").read_text().split() if line.startswith("uv==")
    )

    def bootstrap() -> int:
        run = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=project, env=env, timeout=scaled(60))
        return run.returncode

    def installs() -> int:
        """How often the requirements were installed: pip installs the pinned uv, uv the rest."""
        calls = log.read_text().splitlines() if log.exists() else []
        assert calls[0::2] == [f"pip install --quiet --disable-pip-version-check {pinned_uv}"] * len(
            calls[1::2]
        )
        assert all(call.startswith("uv pip install ") for call in calls[1::2])
        assert all(call.endswith("requirements-dev.txt") for call in calls[1::2])
        return len(calls[1::2])

    assert bootstrap() == 0 and installs() == 1
    assert bootstrap() == 0 and installs() == 1  # unchanged: nothing installed
    with open(project / "requirements.txt", "a") as requirements:
        requirements.write("# changed\n")
    pathlib.Path(f"{log}.fail").touch()
    assert bootstrap() != 0 and installs() == 2  # changed: installed again, which fails this time
    pathlib.Path(f"{log}.fail").unlink()
    assert bootstrap() == 0 and installs() == 3  # a failed install is tried again
    assert bootstrap() == 0 and installs() == 3

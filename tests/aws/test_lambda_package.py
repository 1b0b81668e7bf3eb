"""The deployment package: the function's own files and nothing of development, every
module byte-compiled so a read-only task root compiles nothing, the same bytes from
the same sources, and a DSN checked against the files the package really carries."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import zipfile

from aws import package
from devtools.function_server import ROOT


def test_the_package_holds_the_function_and_no_development_file():
    files = package.own_files()
    for needed in (
        "aws/lambda_function.py",
        "aws/lambda_events.py",
        "config.py",
        "runtime.py",
        "core/service.py",
        "db/events.py",
    ):
        assert needed in files
    assert not [name for name in files if name.endswith((".pyc", ".sh")) or "__pycache__" in name]
    assert not [name for name in files if name.split("/")[0] in ("tests", "devtools", "deploy", "scripts")]
    assert "main.py" not in files and "aws/deploy.sh" not in files and "aws/package.py" not in files


def test_every_module_is_compiled_with_unchecked_hashes(tmp_path):
    (tmp_path / "module.py").write_text("VALUE = 1\n")
    package.compile_for_lambda(tmp_path)
    (compiled,) = (tmp_path / "__pycache__").glob("module.cpython-313.pyc")
    flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, not checked against the source
    assert compiled.read_bytes()[:4] == importlib.util.MAGIC_NUMBER


def test_a_dsn_naming_a_file_outside_the_package_is_refused():
    dsn = "postgresql://u:p@h.aws-us-east-1.cockroachlabs.cloud:26257/db?sslmode=verify-full&sslrootcert="
    check = [sys.executable, "-m", "aws.package", "--check-dsn"]
    outside = subprocess.run(
        check, input=dsn + "/etc/ssl/cluster-ca.crt", cwd=ROOT, capture_output=True, text=True
    )
    assert outside.returncode == 2 and "sslrootcert" in outside.stderr and "p@h" not in outside.stderr
    system = subprocess.run(check, input=dsn + "system", cwd=ROOT, capture_output=True, text=True)
    assert system.returncode == 0, system.stderr


def test_the_same_sources_build_the_same_bytes_with_no_build_path_inside(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")  # the function's own files only: no wheel is downloaded
    pip = [sys.executable, "-m", "pip"]
    package.build(tmp_path / "one.zip", pip, requirements)
    package.build(tmp_path / "two.zip", pip, requirements)
    built = (tmp_path / "one.zip").read_bytes()
    assert built == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        compiled = [name for name in archive.namelist() if name.endswith(".pyc")]
        assert "core/__pycache__/service.cpython-313.pyc" in compiled
        assert {entry.date_time for entry in archive.infolist()} == {package.ZIP_TIMESTAMP}
        code = archive.read("core/__pycache__/service.cpython-313.pyc")
    assert b"/var/task/core/service.py" in code and tempfile.gettempdir().encode() not in code

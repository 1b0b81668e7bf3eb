"""The Lambda deployment package: which files go in, building the zip, and checking a DSN against it.

    python3 -m aws.package --build OUT.zip     the function's code and aws/requirements.txt
    python3 -m aws.package --list              the function's own files, one per line
    printf '%s' "$DSN" | python3 -m aws.package --check-dsn

The package holds the handler (aws/lambda_function.py, aws/lambda_events.py), the
core, the database layer, the configuration module, and the pinned dependencies,
installed for Lambda's platform (manylinux x86_64, CPython 3.13) whatever the
machine that builds it, and byte-compiled (see compile_for_lambda). Tests, development tools and the Google entry point stay out.
`--check-dsn` runs the function's own DSN translation (deploy.dsn_check) with this
package as the uploaded files, so a CA file the DSN names must be in it.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The function's own code, relative to the repository root.
SOURCES = (
    "aws/__init__.py",
    "aws/lambda_function.py",
    "aws/lambda_events.py",
    "core",
    "db",
    "config.py",
    "runtime.py",
)
REQUIREMENTS = ROOT / "aws" / "requirements.txt"
# Where Lambda unpacks the package.
TASK_ROOT = "/var/task"
# The earliest time a zip entry can carry; every entry gets it.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.13", "--implementation", "cp")


def own_files() -> list[str]:
    """The repository's files that go into the package (no caches, no compiled files)."""
    files = []
    for source in SOURCES:
        path = ROOT / source
        if path.is_file():
            files.append(source)
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and "__pycache__" not in found.parts and found.suffix != ".pyc":
                    files.append(found.relative_to(ROOT).as_posix())
    return files


def build(out: pathlib.Path, pip: list[str], requirements: pathlib.Path = REQUIREMENTS) -> None:
    """Write the package to `out`: the dependencies for Lambda's platform, then the code.

    The same sources and requirements give the same bytes, wherever and whenever it is
    built: Lambda then sees an unchanged CodeSha256, and aws/deploy.sh publishes nothing.
    """
    with tempfile.TemporaryDirectory() as staging:
        subprocess.run(
            [*pip, "install", "--quiet", "--disable-pip-version-check", "--no-compile", "--only-binary=:all:",
             *PLATFORM, "--target", staging, "-r", str(requirements)],
            check=True,
        )  # fmt: skip
        for name in own_files():
            target = pathlib.Path(staging) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, target)
        compile_for_lambda(pathlib.Path(staging))
        tmp = out.with_name(out.name + ".partial")
        write_zip(pathlib.Path(staging), tmp)
        os.replace(tmp, out)


def write_zip(folder: pathlib.Path, out: pathlib.Path) -> None:
    """Zip `folder` reproducibly: entries sorted by name, one fixed timestamp and mode."""
    files = sorted(
        (path.relative_to(folder).as_posix(), path) for path in folder.rglob("*") if path.is_file()
    )
    with zipfile.ZipFile(out, "w") as archive:
        for name, path in files:
            entry = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            entry.external_attr = (
                0o100644 << 16
            )  # a regular file, readable by all: Lambda runs as another user
            entry.create_system = 3  # Unix, so the mode above is read as one
            archive.writestr(entry, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def compile_for_lambda(staging: pathlib.Path) -> None:
    """Byte-compile everything, so no cold start compiles: Lambda's task root is read-only,
    and Python compiles in memory, on every start, what has no usable .pyc.

    Unchecked-hash .pyc files, since a zip keeps modification times only to two seconds
    and a timestamp .pyc would then look stale; each records its source as
    /var/task/..., where Lambda unpacks the package, not the build's temporary folder.
    Only a Python 3.13 writes .pyc files that Lambda's python3.13 reads.
    """
    if sys.version_info[:2] != (3, 13):
        print(f"warning: Python {sys.version_info[0]}.{sys.version_info[1]} cannot compile for python3.13; "
              "the package has no .pyc files", file=sys.stderr)  # fmt: skip
        return
    import compileall

    compileall.compile_dir(
        staging,
        quiet=1,
        stripdir=str(staging),
        prependdir=TASK_ROOT,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m aws.package", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--build", metavar="OUT.zip", help="build the package into this file")
    action.add_argument("--list", action="store_true", help="list the function's own files")
    action.add_argument("--check-dsn", action="store_true", help="check the DSN on standard input")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(own_files()))
        return 0
    if args.check_dsn:
        from deploy.dsn_check import problem

        packaged = set(own_files())
        message = problem(sys.stdin.read(), uploaded=lambda: packaged)
        if message:
            print(f"error: {message.replace('.gcloudignore', 'aws/package.py')}", file=sys.stderr)
            return 2
        return 0
    build(pathlib.Path(args.build).resolve(), [sys.executable, "-m", "pip"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

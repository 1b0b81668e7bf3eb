"""The layers as the imports make them: entry points over runtime.py over core/ and db/,
db/ implementing core's port, and no import cycle.

- Validation and the use case load without SQLAlchemy or pg8000 (a fresh interpreter's
  sys.modules), so the rules run and are tested without a database library.
- core/ imports nothing of db/, config.py or runtime.py; config.py, core/errors.py and
  core/store.py import nothing of the project; db/ imports of core only its port and errors.
- No module of the function imports itself back through others.
"""

import ast
import json
import pathlib
import subprocess
import sys

from function_harness import ROOT

# The function's own code: what is deployed, and db's command line.
SOURCES = [
    "main.py",
    "runtime.py",
    "config.py",
    "core",
    "db",
    "aws/lambda_function.py",
    "aws/lambda_events.py",
]
# Entry points stand above everything; `python -m db` is one, though it lives in db/.
ENTRY_POINTS = {"main", "aws.lambda_function", "db.__main__"}


def module_files() -> dict[str, str]:
    """{module name: path} for every module of the function."""
    found = {}
    for source in SOURCES:
        path = ROOT / source
        for file in [path] if path.is_file() else sorted(path.glob("*.py")):
            name = file.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            found[name.removesuffix(".__init__")] = str(file)
    return found


def project_imports(name: str, path: str, modules: dict[str, str]) -> set[str]:
    """The function's modules that `name` imports, anywhere in its file."""
    imported = set()
    for node in ast.walk(ast.parse(pathlib.Path(path).read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from db import faults` names the module db.faults; `from db.x import y`, db.x.
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            imported.add(node.module)
    return {module for module in imported if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: project_imports(name, path, modules) for name, path in modules.items()}


def test_validation_and_the_use_case_load_no_database_library():
    probe = (
        "import json, sys; import core.events, core.service; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'pg8000', 'db'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_each_layer_imports_only_the_layers_below_it():
    graph = import_graph()
    for name, imported in graph.items():
        if name.startswith("core"):
            assert not {m for m in imported if m.split(".")[0] in ("db", "config", "runtime")}, name
        if name.startswith("db") and name not in ENTRY_POINTS:
            assert {m for m in imported if not m.startswith("db")} <= {"core.errors", "core.store"}, name
        if name in ("config", "core.errors", "core.store"):
            assert imported == set(), f"{name} is a leaf"
        assert not imported & ENTRY_POINTS, f"{name} imports an entry point"


def test_no_module_imports_itself_back():
    graph = import_graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path[path.index(name) :], name])
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])

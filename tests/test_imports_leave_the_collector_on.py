"""main.py pauses the garbage collector while it imports, and always turns it back on.

The pause and gc.freeze() shorten a cold start (README, "Cold start"); a
collector left off would let every reference cycle a request makes pile up
for the life of the instance, so these run main.py's import in a fresh
interpreter and look at the collector afterwards, also when an import fails.
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

REPORT = "import gc, json; print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))"


def import_main(before: str = "") -> dict:
    code = f"{before}\ntry:\n    import main\nexcept ImportError:\n    pass\n{REPORT}"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_collector_is_on_after_the_import_and_the_imported_objects_are_frozen():
    state = import_main()
    assert state["enabled"] is True
    # SQLAlchemy's and pg8000's classes, functions and module dicts alone are
    # tens of thousands of tracked objects.
    assert state["frozen"] > 20_000


def test_the_collector_is_on_even_when_an_import_fails():
    # A None entry in sys.modules makes `import sqlalchemy` raise ImportError.
    state = import_main(before="import sys; sys.modules['sqlalchemy'] = None")
    assert state["enabled"] is True

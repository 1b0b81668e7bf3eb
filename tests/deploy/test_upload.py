"""What `gcloud functions deploy` uploads: the function's code, nothing else, as gcloud lists
it and as deploy.sh's upload to the stand-in holds it."""

import io
import os
import shutil
import subprocess
import zipfile

import pytest
from function_harness import ROOT
from gcloud_standin import SCENARIOS


@pytest.mark.skipif(
    shutil.which("gcloud") is None and not os.environ.get("CI"),
    reason="the Google Cloud CLI is not installed (on CI this test must run)",
)
def test_upload_holds_only_the_function_code(tmp_path):
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    result = subprocess.run(
        ["gcloud", "meta", "list-files-for-upload", str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    files = set(result.stdout.split())
    assert {
        "main.py",
        "config.py",
        "runtime.py",
        "requirements.txt",
        "db/database.py",
        "core/events.py",
    } <= files
    for path in files:
        top = path.split("/", 1)[0]
        assert top in ("main.py", "runtime.py", "config.py", "requirements.txt", "core", "db"), (
            f"{path} would be uploaded"
        )
        assert "__pycache__" not in path
    # The development side of the tree is there, but stays home.
    assert (ROOT / "tests").is_dir() and (ROOT / "devtools").is_dir()


def test_deploy_sh_uploads_the_function_code_only():
    """What reached the stand-in: gcloud's zipper for functions reads some patterns
    differently from the listing above."""
    upload = next(iter(SCENARIOS.result("new_project").standin.uploads.values()))
    # Files only: gcloud's zipper also writes (empty) entries for ignored folders.
    names = {name for name in zipfile.ZipFile(io.BytesIO(upload)).namelist() if not name.endswith("/")}
    assert {"main.py", "requirements.txt", "db/events.py", "core/events.py"} <= names
    assert not any(name.startswith(("tests/", "devtools/", ".venv/", ".local/", "deploy")) for name in names)

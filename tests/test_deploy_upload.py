"""What `gcloud functions deploy` would upload: the function's code, nothing else."""

import os
import shutil
import subprocess

import pytest
from function_harness import ROOT


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
        "requirements.txt",
        "db/schema.sql",
        "db/database.py",
        "core/events.py",
    } <= files
    for path in files:
        top = path.split("/", 1)[0]
        assert top in ("main.py", "config.py", "requirements.txt", "core", "db"), f"{path} would be uploaded"
        assert "__pycache__" not in path
    # The development side of the tree is there, but stays home. (deploy.sh's
    # upload is checked too, by tests/test_deploy_script.py: gcloud's zipper for
    # functions reads some patterns differently from this listing.)
    assert (ROOT / "tests").is_dir() and (ROOT / "devtools").is_dir()

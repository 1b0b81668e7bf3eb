"""The CI/CD workflow: linted by zizmor (a static analyser for GitHub Actions), the README's
test command on every push, and on main a deploy with Workload Identity Federation: an OIDC
token, no service-account key."""

import pathlib
import subprocess
import sys

from function_harness import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "test-and-deploy.yml"


def test_the_workflow_passes_the_linter():
    zizmor = pathlib.Path(sys.executable).with_name("zizmor")
    result = subprocess.run([str(zizmor), "--offline", str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tests_run_the_readme_command_and_main_deploys_with_workload_identity():
    text = WORKFLOW.read_text()
    assert "run: CI=true bash .ci/run" in text
    assert "if: github.event_name == 'push' && github.ref == 'refs/heads/main'" in text
    assert "id-token: write" in text and "workload_identity_provider:" in text
    assert "credentials_json" not in text  # no key file
    assert './deploy.sh --project "${PROJECT}" --region "${REGION}"' in text

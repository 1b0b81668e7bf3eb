"""Memory and CPU (issue 11): --memory (default 256Mi) and --cpu (default 0.333 up to
512Mi, else the platform's share for the memory) reach the function; combinations Cloud
Run refuses stop deploy.sh before any gcloud command, with a message."""

import os

import pytest
from gcloud_standin import DSN, PROJECT, SCENARIOS, run_deploy, watched_project


@pytest.fixture(scope="module")
def standin_env():
    """A stand-in that records whatever reaches it: nothing should."""
    standin, env = watched_project(DSN)
    yield standin, env
    standin.stop()


def service_config(scenario_name: str) -> dict:
    [create] = SCENARIOS.result(scenario_name).runs[0].find("POST", r"/functions$")
    return create.body["serviceConfig"]


def test_by_default_256mi_and_a_third_of_a_vcpu():
    service = service_config("new_project")
    assert (service["availableMemory"], service["availableCpu"]) == ("256Mi", "0.333")


def test_more_memory_without_a_cpu_gets_the_platforms_share_for_it():
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": DSN}
    result = run_deploy(env, "--project", PROJECT, "--dry-run", "--memory", "1Gi")
    assert result.returncode == 0, result.stderr
    deploy = next(line for line in result.stdout.splitlines() if "functions deploy" in line)
    assert "--memory 1Gi " in deploy and "--cpu" not in deploy


def test_memory_cpu_and_pool_size_are_passed_on():
    service = service_config("constrained_org_with_options")
    assert service["availableMemory"] == "1Gi"
    assert service["availableCpu"] == "1"
    assert service["maxInstanceRequestConcurrency"] == 4
    assert service["maxInstanceCount"] == 10  # budget 40 / pool size 4


def test_a_pool_above_one_gets_a_whole_vcpu():
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": DSN}
    result = run_deploy(env, "--project", PROJECT, "--dry-run", "--pool-size", "2")
    assert result.returncode == 0, result.stderr
    deploy = next(line for line in result.stdout.splitlines() if "functions deploy" in line)
    assert "--memory 256Mi --cpu 1 " in deploy


@pytest.mark.parametrize(
    "args, message",
    [
        (("--memory", "64Mi"), "--memory must be from 128Mi to 32Gi, got 64Mi"),
        (("--memory", "64Gi"), "--memory must be from 128Mi to 32Gi, got 64Gi"),
        (("--memory", "256MB"), "--memory must be a size in Mi or Gi"),
        (("--cpu", "3"), "--cpu must be a fraction from 0.08 to 0.999, or 1, 2, 4, 6 or 8, got '3'"),
        (("--cpu", "0.05"), "--cpu must be at least 0.08, got 0.05"),
        (
            ("--cpu", "0.5", "--pool-size", "2"),
            "--cpu 0.5 serves one request at a time: --pool-size 2 needs --cpu 1",
        ),
        (("--cpu", "0.333", "--memory", "1Gi"), "--cpu 0.333 allows at most 512Mi of memory, got 1Gi"),
        (("--cpu", ".5", "--memory", "2Gi"), "--cpu .5 allows at most 1024Mi of memory, got 2Gi"),
        (("--cpu", "4", "--memory", "1Gi"), "--cpu 4 needs from 2048Mi to 16384Mi of memory, got 1Gi"),
        (("--cpu", "1", "--memory", "8Gi"), "--cpu 1 needs from 128Mi to 4096Mi of memory, got 8Gi"),
    ],
)
def test_combinations_cloud_run_refuses_stop_before_anything(standin_env, args, message):
    standin, env = standin_env
    result = run_deploy(env, "--project", PROJECT, *args)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert standin.requests == []

"""The function as deployed: private, Python 3.13 unless --runtime says otherwise,
GOOGLE_CLOUD_PROJECT set, concurrency and max instances from the connection budget, memory
and CPU stated on every deploy (an update without --cpu keeps the old value: gcloud's help),
all traffic on the new revision, and labelled. Numbers are read as decimal and every range
and combination Cloud Run refuses stops deploy.sh before any gcloud command."""

import json
import os
import re

import pytest
from gcloud_standin import (
    DSN,
    PROJECT,
    REGION,
    SCENARIOS,
    Scenario,
    run_deploy,
    scenario,
    watched_project,
)

LABELS = {"function": "events", "cluster": "events-1234", "managed-by": "deploy-sh"}


@pytest.fixture(scope="module")
def standin_env():
    """A stand-in that records whatever reaches it: nothing should."""
    standin, env = watched_project(DSN)
    yield standin, env
    standin.stop()


def created(scenario_name: str) -> dict:
    [create] = SCENARIOS.result(scenario_name).runs[0].find("POST", r"/functions$")
    return create.body


def dry_run_deploy_line(*args: str) -> str:
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": DSN}
    result = run_deploy(env, "--project", PROJECT, "--dry-run", *args)
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if "functions deploy" in line)


def flag(output: str, name: str) -> str:
    return re.search(rf"{name} (\S+)", output).group(1)


# ---------------------------------------------------------------- what reaches the function


def test_the_function_is_private_with_concurrency_and_max_instances_from_the_budget():
    first = SCENARIOS.result("new_project").runs[0]
    [create] = first.find("POST", rf"/v2/projects/{PROJECT}/locations/{REGION}/functions$")
    service = create.body["serviceConfig"]
    assert create.query["functionId"] == ["events"]
    assert create.body["buildConfig"]["entryPoint"] == "handler"
    assert service["maxInstanceRequestConcurrency"] == 1
    assert service["maxInstanceCount"] == 25  # half the default budget of 50 / pool size 1: headroom
    assert service["environmentVariables"]["DB_POOL_SIZE"] == "1"
    assert service["serviceAccountEmail"] == f"events-runtime@{PROJECT}.iam.gserviceaccount.com"
    assert service["timeoutSeconds"] == 60
    # Private: nothing grants allUsers anything, anywhere.
    assert not any("allUsers" in json.dumps(r.body) for r in first.requests if isinstance(r.body, dict))


def test_python313_by_default_and_runtime_changes_it():
    assert created("new_project")["buildConfig"]["runtime"] == "python313"
    assert created("constrained_org_with_options")["buildConfig"]["runtime"] == "python312"


def test_google_cloud_project_is_set_in_every_mode():
    for name in ("new_project", "constrained_org_with_options"):
        assert created(name)["serviceConfig"]["environmentVariables"]["GOOGLE_CLOUD_PROJECT"] == PROJECT


def test_the_function_carries_its_name_and_its_clusters_as_labels():
    labels = created("new_project")["labels"]
    assert {k: labels[k] for k in LABELS} == LABELS
    assert created("constrained_org_with_options")["labels"]["cluster"] == "events-5678"


def test_a_redeploy_states_cpu_and_memory_and_sends_all_traffic_to_the_new_revision():
    second = SCENARIOS.result("new_project").runs[1]
    [update] = second.find("PATCH", r"/functions/events$")
    mask = set(update.query["updateMask"][0].split(","))
    assert {
        "service_config.available_cpu",
        "service_config.available_memory",
        "service_config.all_traffic_on_latest_revision",
    } <= mask
    service = update.body["serviceConfig"]
    assert (service["availableCpu"], service["availableMemory"]) == ("0.333", "256Mi")
    assert service["allTrafficOnLatestRevision"] is True
    labels = second.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]["labels"]
    assert {k: labels[k] for k in LABELS} == LABELS


def test_by_default_256mi_and_a_third_of_a_vcpu():
    service = created("new_project")["serviceConfig"]
    assert (service["availableMemory"], service["availableCpu"]) == ("256Mi", "0.333")


@pytest.mark.parametrize("memory, cpu", [("768Mi", "0.583"), ("32Gi", "8")])
def test_more_memory_without_a_cpu_states_the_platforms_share_for_it(memory, cpu):
    deploy = dry_run_deploy_line("--memory", memory)
    assert f"--memory {memory} --cpu {cpu} " in deploy


def test_memory_cpu_and_pool_size_are_passed_on():
    service = created("constrained_org_with_options")["serviceConfig"]
    assert service["availableMemory"] == "1Gi"
    assert service["availableCpu"] == "1"
    assert service["maxInstanceRequestConcurrency"] == 4
    assert service["maxInstanceCount"] == 5  # budget 40 / 2 (headroom) / pool size 4


def test_a_pool_above_one_gets_a_whole_vcpu():
    assert "--memory 256Mi --cpu 1 " in dry_run_deploy_line("--pool-size", "2")


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


# ---------------------------------------------------------------- numbers


def test_a_leading_zero_is_decimal_not_octal():
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": DSN}
    result = run_deploy(env, "--project", PROJECT, "--dry-run", "--pool-size", "010", "--timeout", "09")
    assert result.returncode == 0, result.stderr
    deploy = next(line for line in result.stdout.splitlines() if "functions deploy" in line)
    assert flag(deploy, "--concurrency") == "10"
    assert flag(deploy, "--max-instances") == "2"  # half of 50 connections / 10 per instance
    assert flag(deploy, "--timeout") == "9s"
    job = next(line for line in result.stdout.splitlines() if "scheduler jobs create" in line)
    assert flag(job, "--attempt-deadline") == "39s"
    assert "DB_POOL_SIZE=10" in deploy


@pytest.mark.parametrize(
    "args, message",
    [
        (("--timeout", "1800"), "--timeout must be from 1 to 1799, got 1800"),  # Scheduler's cap
        (("--timeout", "0"), "--timeout must be from 1 to 1799, got 0"),
        (("--timeout", "1e3"), "--timeout must be a whole number, got '1e3'"),
        (("--pool-size", "1001"), "--pool-size must be from 1 to 1000, got 1001"),
        (("--pool-size", "-1"), "--pool-size must be a whole number, got '-1'"),
        (("--pool-size", "99999999999999999999"), "--pool-size must be from 1 to 1000"),
        (("--attempt-deadline", "1801"), "from 15 to 1800, got 1801"),
        (("--attempt-deadline", "14"), "from 15 to 1800, got 14"),
        (("--min-instances", "26"), "--min-instances must be from 0 to 25, got 26"),
        (("--env", "DATABASE_URL=x"), "--env DATABASE_URL is set by deploy.sh or the platform"),
        (("--env", "A=1,B=2"), "--env must be KEY=VALUE without a comma"),
        (("--runtime-update-policy", "never"), "--runtime-update-policy must be automatic or on-deploy"),
        (("--timeout", "120", "--attempt-deadline", "100"), "must be longer than --timeout (120s)"),
        (("--connection-budget", "0"), "--connection-budget must be from 1 to 100000, got 0"),
        (("--pool-size", "20", "--connection-budget", "30"), "no instance fits with headroom"),
        (
            ("--pool-size", "10", "--max-instances", "6"),
            "6 x --pool-size 10 = 60 connections, over the --connection-budget of 50",
        ),
        (("--max-instances", "0"), "--max-instances must be from 1 to 1000, got 0"),
    ],
)
def test_out_of_range_numbers_stop_before_any_gcloud_command(standin_env, args, message):
    standin, env = standin_env
    result = run_deploy(env, "--project", PROJECT, *args)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert standin.requests == []


def test_retry_settings_are_numbers_too(standin_env):
    standin, env = standin_env
    result = run_deploy({**env, "DEPLOY_BACKOFF_MS": "0x10"}, "--project", PROJECT)
    assert result.returncode == 2 and "DEPLOY_BACKOFF_MS must be a whole number" in result.stderr
    assert standin.requests == []


def test_the_longest_timeout_gets_the_schedulers_longest_deadline():
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "DATABASE_URL": DSN}
    result = run_deploy(env, "--project", PROJECT, "--dry-run", "--timeout", "1799", "--min-instances", "2")
    assert result.returncode == 0, result.stderr
    deploy = next(line for line in result.stdout.splitlines() if "functions deploy" in line)
    assert flag(deploy, "--timeout") == "1799s" and flag(deploy, "--min-instances") == "2"
    job = next(line for line in result.stdout.splitlines() if "scheduler jobs create" in line)
    assert flag(job, "--attempt-deadline") == "1800s"


def test_a_redeploy_keeps_variables_set_by_hand_and_adds_those_passed_with_env():
    second = SCENARIOS.result("new_project").runs[1]
    variables = second.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]["serviceConfig"][
        "environmentVariables"
    ]
    assert variables["SET_BY_HAND"] == "1" and variables["LOG_LEVEL"] == "DEBUG"
    assert variables["THREADS"] == variables["DB_POOL_SIZE"] == "1"  # one thread per connection


def test_the_runtime_update_policy_is_stated_on_every_deploy():
    for run in SCENARIOS.result("new_project").runs:
        [write] = run.find("POST", r"/functions$") or run.find("PATCH", r"/functions/events$")
        assert "automaticUpdatePolicy" in write.body["buildConfig"]


# ---------------------------------------------------------------- the service-level maximum


def test_the_service_level_maximum_equals_max_instances_after_every_deploy():
    world = SCENARIOS.result("new_project")
    for run in world.runs:
        [update] = run.find("PUT", r"/namespaces/demo-project/services/events$")
        assert update.body["metadata"]["annotations"]["run.googleapis.com/maxScale"] == "25"
    assert world.standin.service_max_instances(REGION, "events") == 25
    assert "maximum holds per revision and for the service" in world.runs[-1].stdout


def test_without_the_beta_component_only_the_per_revision_maximum_is_set():
    world = SCENARIOS.result("constrained_org_with_options")  # its gcloud lacks the beta component
    [run] = world.runs
    assert run.returncode == 0, run.stderr
    [line] = [line for line in run.stdout.splitlines() if line.startswith("no gcloud beta component")]
    # Pool size 4 in a budget of 40: 40 / 2 / 4 = 5 instances.
    assert "only the per-revision max of 5 instances is set" in line
    assert "traffic split or rollback may run more and exceed the connection budget" in line
    assert not run.find("PUT", r"/services/events$")
    assert world.standin.service_max_instances("us-east1", "events") is None
    [create] = run.find("POST", r"/functions$")
    assert create.body["serviceConfig"]["maxInstanceCount"] == 5  # the per-revision limit stays


# ---------------------------------------------------------------- rolling back the code


@SCENARIOS.define(after="new_project")
def code_rolled_back(world: Scenario) -> Scenario:
    """docs/deploy.md's rollback on the two deploys of new_project: list the revisions, then send
    all traffic to the older one with `gcloud run` (through its regional endpoint)."""
    twin = scenario(world.standin.clone())
    listed = twin.run_gcloud(
        "run",
        "revisions",
        "list",
        "--service",
        "events",
        "--region",
        REGION,
        "--project",
        PROJECT,
        "--format",
        "value(metadata.name)",
    )
    twin.extra["listed"] = listed
    older = listed.stdout.split()[-1]
    twin.run_gcloud(
        "run",
        "services",
        "update-traffic",
        "events",
        "--region",
        REGION,
        "--project",
        PROJECT,
        "--to-revisions",
        f"{older}=100",
    )
    twin.extra["older"] = older
    return twin


def test_the_documented_rollback_sends_all_traffic_to_the_previous_revision():
    twin = SCENARIOS.result("code_rolled_back")
    assert twin.extra["listed"].returncode == 0, twin.extra["listed"].stderr
    assert len(twin.extra["listed"].stdout.split()) == 2  # one revision per deploy, newest first
    assert twin.gcloud.returncode == 0, twin.gcloud.stderr
    assert twin.standin.serving_revisions(REGION, "events") == {twin.extra["older"]: 100}
    [replace] = [r for r in twin.standin.requests if r.method == "PUT" and r.api == "run"]
    assert replace.path.endswith("/namespaces/demo-project/services/events")
    assert twin.standin.service_max_instances(REGION, "events") == 25  # the rollback keeps it


def test_image_cleanup_days_sets_a_cleanup_policy_on_gcf_artifacts():
    first, second = SCENARIOS.result("new_project").runs
    assert not first.find("PATCH", r"/repositories/gcf-artifacts$")  # no policy unless asked
    [patch] = second.find("PATCH", rf"/locations/{REGION}/repositories/gcf-artifacts$")
    policies = patch.body["cleanupPolicies"]
    assert policies["delete-old"]["condition"]["olderThan"] in ("2592000s", "2592000.0s")
    assert policies["keep-newest"]["mostRecentVersions"]["keepCount"] == 5
    assert patch.body.get("cleanupPolicyDryRun") is False


def test_a_cluster_out_of_connections_is_logged_with_the_budget_and_the_fix(caplog):
    """16 instances started at once against a limit of 13 gave three 503s logged only as
    "53300: sorry, too many clients already": the line now says what to change."""
    import pg8000.dbapi

    from core.outcomes import outcome_for_error
    from db.faults import translate

    refused = pg8000.dbapi.DatabaseError({"S": "FATAL", "C": "53300", "M": "sorry, too many clients already"})
    with caplog.at_level("ERROR"):
        outcome = outcome_for_error(translate(refused, statement_sent=False))
    assert outcome.status == 503
    [line] = [r.getMessage() for r in caplog.records if "53300" in r.getMessage()]
    assert "sorry, too many clients already" in line
    assert "--connection-budget" in line and "max instances x DB_POOL_SIZE" in line
    assert "lower --max-instances" in line and "or raise the limit" in line

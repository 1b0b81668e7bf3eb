"""aws/deploy.sh with the real AWS CLI against moto's server, every call recorded:
what a deployment creates and with which settings, that a second run changes
nothing it need not, that --delete removes it all (twice safely), and the checks
and --dry-run that make no call at all."""

from __future__ import annotations

import json
import shlex

import pytest
from deploy_scenarios import ACCOUNT, DEPLOY_SCENARIOS, DSN, PASSWORD, REGION, deploy_environment, run_deploy
from function_harness import capture, known_secrets

known_secrets.add(PASSWORD, DSN)

FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:events"
ALIAS_ARN = f"{FUNCTION_ARN}:live"
CHANGING = ("Create", "Put", "Update", "Delete", "POST ", "PUT ", "DELETE ")


def run(name: str):
    result = DEPLOY_SCENARIOS.run(name)
    capture.add(result.stdout)
    capture.add(result.stderr)
    assert result.returncode == 0, result.stderr
    return result


def one(calls, name: str):
    (found,) = [call for call in calls if call.name == name]
    return found


def changes(calls) -> list[str]:
    return [call.name for call in calls if call.operation.startswith(CHANGING)]


def test_a_first_deployment_creates_each_resource_once_in_the_clusters_region():
    calls = run("first").calls
    assert changes(calls) == [
        "secretsmanager:CreateSecret",
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "lambda:POST /2015-03-31/functions",
        "lambda:PUT /2017-10-31/functions/events/concurrency",
        "lambda:POST /2015-03-31/functions/events/versions",
        "lambda:POST /2015-03-31/functions/events/aliases",
        "lambda:POST /2021-10-31/functions/events/url",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "scheduler:POST /schedules/events-schedule",
    ]
    assert {call.region for call in calls if call.service != "iam"} == {REGION}


def test_the_function_runs_python313_with_snapstart_and_finds_the_secret_by_arn():
    calls = run("first").calls
    created = one(calls, "lambda:POST /2015-03-31/functions").json()
    assert (created["Runtime"], created["Handler"]) == ("python3.13", "aws.lambda_function.lambda_handler")
    assert created["MemorySize"] == 1024 and created["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert created["Architectures"] == ["x86_64"]
    variables = created["Environment"]["Variables"]
    assert variables["DATABASE_URL_SECRET_ARN"].startswith(
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:events-dsn-"
    )
    assert variables["DB_POOL_SIZE"] == "1" and "DATABASE_URL" not in variables
    assert created["Role"] == f"arn:aws:iam::{ACCOUNT}:role/events-function"
    assert one(calls, "lambda:PUT /2017-10-31/functions/events/concurrency").json() == {
        "ReservedConcurrentExecutions": 50
    }


def test_the_function_role_may_write_its_own_logs_and_read_that_one_secret():
    calls = run("first").calls
    roles = [call.form() for call in calls if call.name == "iam:CreateRole"]
    policies = [call.form() for call in calls if call.name == "iam:PutRolePolicy"]
    assert [role["RoleName"] for role in roles] == ["events-function", "events-scheduler"]
    trust = json.loads(roles[0]["AssumeRolePolicyDocument"])["Statement"]
    assert [statement["Principal"] for statement in trust] == [{"Service": "lambda.amazonaws.com"}]
    statements = json.loads(policies[0]["PolicyDocument"])["Statement"]
    function_arn = json.loads(one(calls, "lambda:POST /2015-03-31/functions").body)["Environment"][
        "Variables"
    ]["DATABASE_URL_SECRET_ARN"]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/events:*",
        },
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": function_arn},
    ]


def test_the_url_is_private_and_the_alias_points_at_the_published_version():
    calls = run("first").calls
    url = one(calls, "lambda:POST /2021-10-31/functions/events/url")
    assert url.json() == {"AuthType": "AWS_IAM"} and url.path.endswith("/url")
    alias = one(calls, "lambda:POST /2015-03-31/functions/events/aliases").json()
    assert alias == {"Name": "live", "FunctionVersion": "1"}


def test_the_schedule_invokes_the_alias_with_the_event_contract_its_own_role_and_retries():
    calls = run("first").calls
    schedule = one(calls, "scheduler:POST /schedules/events-schedule").json()
    target = schedule["Target"]
    assert target["Arn"] == ALIAS_ARN
    assert target["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/events-scheduler"
    assert json.loads(target["Input"]) == {
        "schedule_arn": "<aws.scheduler.schedule-arn>",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert schedule["ScheduleExpression"] == "rate(5 minutes)" and schedule["FlexibleTimeWindow"] == {
        "Mode": "OFF"
    }
    scheduler_role = [call.form() for call in calls if call.name == "iam:PutRolePolicy"][1]
    assert json.loads(scheduler_role["PolicyDocument"])["Statement"] == [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": ALIAS_ARN}
    ]
    trust = json.loads(
        [call.form() for call in calls if call.name == "iam:CreateRole"][1]["AssumeRolePolicyDocument"]
    )
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_the_dsn_reaches_the_secret_and_nothing_else():
    first = run("first")
    carrying = [call.name for call in first.calls if PASSWORD.encode() in call.body]
    assert carrying == ["secretsmanager:CreateSecret"]
    assert PASSWORD not in first.stdout + first.stderr


def test_a_second_run_creates_nothing_and_stores_no_new_secret_version():
    calls = run("again").calls
    creations = [
        call.name
        for call in calls
        if "Create" in call.operation
        or (call.operation.startswith("POST ") and not call.path.endswith("/versions"))
    ]
    assert creations == []  # a version is published: Lambda itself publishes none when nothing changed
    assert "secretsmanager:PutSecretValue" not in changes(calls)
    assert "lambda:PUT /2015-03-31/functions/events/code" in changes(calls)
    assert "lambda:PUT /2015-03-31/functions/events/aliases/live" in changes(calls)
    assert "scheduler:PUT /schedules/events-schedule" in changes(calls)


def test_delete_removes_everything_it_made_and_a_second_delete_finds_nothing():
    deleted = run("delete")
    assert changes(deleted.calls) == [
        "scheduler:DELETE /schedules/events-schedule",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
        "lambda:DELETE /2021-10-31/functions/events/url",
        "lambda:DELETE /2015-03-31/functions/events",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
        "secretsmanager:DeleteSecret",
    ]
    again = run("delete-again")
    assert again.stdout.count("not there (nothing to do)") == 7
    assert "removed" not in again.stdout


# ---------------------------------------------------------------- no AWS call at all

NO_AWS = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "none",
    "AWS_SECRET_ACCESS_KEY": "none",
}


def test_a_concurrency_over_the_connection_budget_is_refused():
    done = run_deploy(
        ["--reserved-concurrency", "60", "--connection-budget", "50"], {**deploy_environment(None), **NO_AWS}
    )
    assert done.returncode == 2
    assert (
        "--reserved-concurrency 60 x pool size 1 = 60 connections, over the --connection-budget of 50"
        in done.stderr
    )


def test_dry_run_prints_the_changes_and_calls_nothing():
    env = {**deploy_environment(None), **NO_AWS}
    done = run_deploy(["--dry-run", "--schedule-body", '{"kind": "tick"}'], env)
    capture.add(done.stdout)
    assert done.returncode == 0, done.stderr
    assert "+ aws lambda create-function --function-name events" in done.stdout
    assert "--snap-start ApplyOn=PublishedVersions" in done.stdout
    (line,) = [
        line for line in done.stdout.splitlines() if line.startswith("+ aws scheduler create-schedule")
    ]
    words = shlex.split(line)
    target = json.loads(words[words.index("--target") + 1])
    assert json.loads(target["Input"])["body"] == {"kind": "tick"}
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("events-1.gcp-us-east1.cockroachlabs.cloud", "us-east-1"),
        ("c.azure-westeurope.cockroachlabs.cloud", "eu-west-2"),
    ],
)
def test_a_cluster_on_another_cloud_gets_the_nearest_aws_region(host, region):
    env = {
        **deploy_environment(None, DSN.replace(f"events-1.aws-{REGION}.cockroachlabs.cloud", host)),
        **NO_AWS,
    }
    done = run_deploy(["--dry-run", "--no-smoke-test"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"region: {region} (nearest AWS region to the cluster's host")


def test_private_subnets_add_the_network_interface_permissions():
    env = {**deploy_environment(None), **NO_AWS}
    done = run_deploy(
        ["--dry-run", "--subnet-ids", "subnet-0a1b,subnet-2c3d", "--security-group-ids", "sg-0f"], env
    )
    assert done.returncode == 0, done.stderr
    assert "--vpc-config SubnetIds=subnet-0a1b\\,subnet-2c3d\\,SecurityGroupIds=sg-0f" in done.stdout
    assert "ec2:CreateNetworkInterface" in done.stdout

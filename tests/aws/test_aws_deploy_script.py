"""aws/deploy.sh with the real AWS CLI against moto's server, every call recorded:
what a deployment creates and with which settings, that a second run changes
nothing it need not, that --delete removes it all (twice safely), and the checks
and --dry-run that make no call at all."""

from __future__ import annotations

import json
import shlex
import urllib.parse

import pytest
from deploy_scenarios import ACCOUNT, DEPLOY_SCENARIOS, DSN, PASSWORD, REGION, deploy_environment, run_deploy
from function_harness import capture, known_secrets

from devtools.function_server import ROOT

known_secrets.add(PASSWORD, DSN)

FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:events"
ALIAS_ARN = f"{FUNCTION_ARN}:live"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:events-failed-runs"
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


def first_password(result) -> str:
    """The scenario database's password, as the DSN stored in the secret carries it."""
    created = one(result.calls, "secretsmanager:CreateSecret").json()
    return urllib.parse.urlsplit(created["SecretString"]).password or ""


def test_a_first_deployment_creates_each_resource_once_in_the_clusters_region_and_answers_200():
    first = run("first")
    assert changes(first.calls) == [
        "secretsmanager:CreateSecret",
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "sqs:CreateQueue",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "lambda:POST /2015-03-31/functions",
        "lambda:PUT /2017-10-31/functions/events/concurrency",
        "lambda:POST /2015-03-31/functions/events/versions",
        "lambda:POST /2015-03-31/functions/events/aliases",
        "lambda:PUT /2019-09-25/functions/events/event-invoke-config",
        "lambda:POST /2021-10-31/functions/events/url",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "scheduler:POST /schedules/events-schedule",
        "lambda:POST /2015-03-31/functions/events/invocations",
    ]
    assert {call.region for call in first.calls if call.service != "iam"} == {REGION}
    assert "smoke test: 200" in first.stdout


def test_the_smoke_test_runs_the_real_handler_through_the_alias_with_syntax_both_cli_versions_accept():
    first = run("first")
    (invoke,) = [call for call in first.calls if call.operation.endswith("/invocations")]
    assert invoke.path.endswith("/functions/events/invocations") and "Qualifier=live" in invoke.query
    assert json.loads(invoke.body)["rawPath"] == "/"  # fileb:// sends the bytes as they are
    (line,) = [json.loads(line) for line in first.function_logs if '"GET / 200"' in line]
    assert line["httpRequest"]["userAgent"] == "aws/deploy.sh"
    script = (ROOT / "aws" / "deploy.sh").read_text()
    assert "--cli-binary-format" not in script and "logs tail" not in script


def test_the_function_runs_python313_without_snapstart_by_default_and_finds_the_secret_by_arn():
    calls = run("first").calls
    created = one(calls, "lambda:POST /2015-03-31/functions").json()
    assert (created["Runtime"], created["Handler"]) == ("python3.13", "aws.lambda_function.lambda_handler")
    assert created["MemorySize"] == 1024 and created["SnapStart"] == {"ApplyOn": "None"}
    assert created["Architectures"] == ["x86_64"]
    variables = created["Environment"]["Variables"]
    assert variables["DATABASE_URL_SECRET_ARN"].startswith(
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:events-dsn-"
    )
    assert variables["DB_POOL_SIZE"] == "1" and "DATABASE_URL" not in variables
    assert created["Role"] == f"arn:aws:iam::{ACCOUNT}:role/events-function"
    # Half the budget of 50: the previous version's environments keep their connection.
    assert one(calls, "lambda:PUT /2017-10-31/functions/events/concurrency").json() == {
        "ReservedConcurrentExecutions": 25
    }


def test_the_function_role_may_write_its_own_logs_read_that_one_secret_and_send_to_its_queue():
    calls = run("first").calls
    roles = [call.form() for call in calls if call.name == "iam:CreateRole"]
    policies = [call.form() for call in calls if call.name == "iam:PutRolePolicy"]
    assert [role["RoleName"] for role in roles] == ["events-function", "events-scheduler"]
    trust = json.loads(roles[0]["AssumeRolePolicyDocument"])["Statement"]
    assert [statement["Principal"] for statement in trust] == [{"Service": "lambda.amazonaws.com"}]
    statements = json.loads(policies[0]["PolicyDocument"])["Statement"]
    secret_arn = one(calls, "lambda:POST /2015-03-31/functions").json()["Environment"]["Variables"][
        "DATABASE_URL_SECRET_ARN"
    ]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/events:*",
        },
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE_ARN},
    ]


def test_failed_scheduled_runs_are_retried_twice_by_lambda_then_sent_to_the_queue():
    calls = run("first").calls
    config = one(calls, "lambda:PUT /2019-09-25/functions/events/event-invoke-config")
    assert "Qualifier=live" in config.query
    assert config.json() == {
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": QUEUE_ARN}},
    }
    queue = one(calls, "sqs:CreateQueue").json()
    assert queue == {"QueueName": "events-failed-runs", "Attributes": {"MessageRetentionPeriod": "1209600"}}


def test_the_url_is_private_and_the_alias_points_at_the_published_version():
    calls = run("first").calls
    url = one(calls, "lambda:POST /2021-10-31/functions/events/url")
    assert url.json() == {"AuthType": "AWS_IAM"} and url.path.endswith("/url")
    alias = one(calls, "lambda:POST /2015-03-31/functions/events/aliases").json()
    assert alias == {"Name": "live", "FunctionVersion": "1"}


def test_the_schedule_invokes_the_alias_with_the_event_contract_and_its_own_role():
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
    password = first_password(first)
    carrying = [call.name for call in first.calls if password.encode() in call.body]
    assert carrying == ["secretsmanager:CreateSecret"]
    assert password not in first.stdout + first.stderr


def test_an_unchanged_deploy_updates_no_code_and_publishes_no_version():
    again = run("again")
    made = changes(again.calls)
    assert [name for name in made if "Create" in name or name.endswith(("/versions", "/code"))] == []
    assert "secretsmanager:PutSecretValue" not in made
    assert "lambda:PUT /2015-03-31/functions/events/configuration" not in made
    assert "unchanged: version 1 stays live, nothing published" in again.stdout
    assert "smoke test: 200" in again.stdout


def test_a_changed_deploy_publishes_and_keeps_only_the_live_version_and_one_for_rollback():
    changed = run("changed")
    assert "lambda:POST /2015-03-31/functions/events/versions" in changes(changed.calls)
    assert "live 2, rollback 1" in changed.stdout
    assert "--function-version 1" in changed.stdout  # the summary's rollback command
    # The next change publishes version 3 (its smoke test then fails: the schema is missing).
    changed_again = DEPLOY_SCENARIOS.run("changed-schema-missing")
    assert "lambda:DELETE /2015-03-31/functions/events" in changes(changed_again.calls)
    (deleted,) = [call for call in changed_again.calls if call.method == "DELETE"]
    assert "Qualifier=1" in deleted.query
    assert "live 3, rollback 2" in changed_again.stdout


def test_a_schema_never_applied_fails_the_smoke_test_and_the_deploy():
    missing = DEPLOY_SCENARIOS.run("changed-schema-missing")
    capture.add(missing.stdout)
    capture.add(missing.stderr)
    assert missing.returncode == 2
    assert "smoke test: 503" in missing.stdout
    assert "the function answered 503" in missing.stderr and "python -m db migrate" in missing.stderr


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
        "sqs:DeleteQueue",
        "secretsmanager:DeleteSecret",
    ]
    again = run("delete-again")
    assert again.stdout.count("not there (nothing to do)") == 8
    assert "removed" not in again.stdout


def test_a_deploy_within_the_deleted_secrets_recovery_window_restores_it():
    redeployed = run("quota-raised-within-recovery-window")
    names = [call.name for call in redeployed.calls]
    # Restored first; then the DSN differs from the last one stored (the schema-less database's).
    assert names.index("secretsmanager:RestoreSecret") < names.index("secretsmanager:PutSecretValue")
    assert "secretsmanager:CreateSecret" not in names
    assert "restored secret events-dsn" in redeployed.stdout


def test_a_new_account_deploys_without_reserving_and_says_what_that_means():
    new = run("new-account")
    names = [call.name for call in new.calls]
    assert "lambda:GET /2016-08-19/account-settings" in names
    assert names.index("lambda:GET /2016-08-19/account-settings") < names.index("secretsmanager:CreateSecret")
    assert not [name for name in changes(new.calls) if name.endswith("/concurrency")]
    assert "none reserved (the account has 10 unreserved executions and AWS keeps 100)" in new.stdout
    assert "--connection-budget 50 is not enforced" in new.stdout
    assert "smoke test: 200" in new.stdout


def test_once_the_quota_is_raised_a_deploy_reserves_what_fits_beside_the_100_aws_keeps():
    raised = run("quota-raised-within-recovery-window")
    assert one(raised.calls, "lambda:PUT /2017-10-31/functions/events/concurrency").json() == {
        "ReservedConcurrentExecutions": 20
    }
    assert "reserving 20, not 25: the account has 120 unreserved and AWS keeps 100" in raised.stdout


# ---------------------------------------------------------------- no AWS call at all

NO_AWS = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "none",
    "AWS_SECRET_ACCESS_KEY": "none",
}


def dry_run(args: list[str], dsn: str | None = DSN):
    done = run_deploy(["--dry-run", *args], {**deploy_environment(None, dsn), **NO_AWS})
    capture.add(done.stdout)
    capture.add(done.stderr)
    return done


def test_a_concurrency_over_half_the_connection_budget_is_refused():
    done = dry_run(["--reserved-concurrency", "30", "--connection-budget", "50"])
    assert done.returncode == 2
    assert (
        "--reserved-concurrency 30 x pool size 1 x 2 versions = 60 connections, over the --connection-budget of 50"
        in (done.stderr)
    )


def test_dry_run_prints_the_commands_that_would_run_and_calls_nothing():
    done = dry_run(["--schedule-body", '{"kind": "tick"}'])
    assert done.returncode == 0, done.stderr
    assert "+ aws lambda create-function --function-name events" in done.stdout
    assert "--snap-start ApplyOn=None" in done.stdout
    (line,) = [
        line for line in done.stdout.splitlines() if line.startswith("+ aws scheduler create-schedule")
    ]
    words = shlex.split(line)
    target = json.loads(words[words.index("--target") + 1])
    assert json.loads(target["Input"])["body"] == {"kind": "tick"}
    (invoke,) = [line for line in done.stdout.splitlines() if line.startswith("+ aws lambda invoke")]
    words = shlex.split(invoke)
    assert words[words.index("--payload") + 1].startswith("fileb://")
    assert words[-4:] == ["--region", REGION, "--output", "json"]  # as it runs, options included
    (secret,) = [line for line in done.stdout.splitlines() if "secretsmanager create-secret" in line]
    assert "--secret-string file:///dev/stdin" in secret and "--query ARN --output text" in secret
    assert PASSWORD not in done.stdout + done.stderr


def test_an_option_skips_reserving_and_says_the_budget_is_then_not_enforced():
    done = dry_run(["--no-reserved-concurrency"])
    assert done.returncode == 0, done.stderr
    assert "concurrency: none reserved (--no-reserved-concurrency)" in done.stdout
    assert "--connection-budget 50 is not enforced" in done.stdout
    assert "put-function-concurrency" not in done.stdout


def test_one_flag_turns_snapstart_on():
    done = dry_run(["--snap-start"])
    assert done.returncode == 0, done.stderr
    assert "--snap-start ApplyOn=PublishedVersions" in done.stdout


def test_the_region_comes_from_the_clusters_host():
    done = dry_run([])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"region: {REGION} (the cluster's region, from its host)")


@pytest.mark.parametrize(
    "host",
    [
        "events-1.gcp-us-east1.cockroachlabs.cloud",
        "c.azure-westeurope.cockroachlabs.cloud",
        "free-tier.cockroachlabs.cloud",
    ],
)
def test_a_host_that_names_no_aws_region_stops_before_anything_and_asks_for_region(host):
    done = dry_run([], DSN.replace(f"events-1.aws-{REGION}.cockroachlabs.cloud", host))
    assert done.returncode == 2
    assert "names no AWS region" in done.stderr and "give --region" in done.stderr
    assert "+ aws" not in done.stdout


def test_a_region_without_function_urls_is_refused_before_anything():
    done = dry_run(["--region", "eu-central-2"])
    assert done.returncode == 2
    assert "eu-central-2 has no Lambda function URLs" in done.stderr
    assert "+ aws" not in done.stdout


def test_private_subnets_add_the_network_interface_permissions():
    done = dry_run(["--subnet-ids", "subnet-0a1b,subnet-2c3d", "--security-group-ids", "sg-0f"])
    assert done.returncode == 0, done.stderr
    assert "--vpc-config SubnetIds=subnet-0a1b\\,subnet-2c3d\\,SecurityGroupIds=sg-0f" in done.stdout
    assert "ec2:CreateNetworkInterface" in done.stdout

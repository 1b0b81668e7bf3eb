#!/usr/bin/env bash
# Deploy the events function to AWS Lambda in its CockroachDB cluster's region: private, on a schedule.
#
# usage: DATABASE_URL='postgresql://...' aws/deploy.sh [options]    deploy, or update in place
#        aws/deploy.sh --dsn-stdin [options] < dsn.txt              the same, the DSN on standard input
#        aws/deploy.sh --region R [options]                         update, with the DSN already stored
#        aws/deploy.sh --region R --delete [--delete-secret]        remove what deploy.sh made
#
# Apply the schema first (python -m db migrate, docs/aws-lambda.md): the smoke test fails without it.
#
# Every setting is a flag or an environment variable (flag wins):
#   --region R               REGION               AWS region; default: the cluster's, from aws-REGION in
#                                                 its host; otherwise deploy.sh stops and asks for it
#   --name N                 FUNCTION_NAME        function name, 1 to 54 letters, digits, - or _: it also
#                                                 names the roles and the failed-runs queue (default events)
#   --secret S               SECRET               Secrets Manager secret holding the DSN (default events-dsn)
#   --dsn-stdin                                   read the DSN from standard input (or set DATABASE_URL;
#                                                 never a flag, so it stays out of shell history and `ps`)
#   --memory MB              MEMORY               128 to 10240 (default 1024)
#   --timeout S              TIMEOUT              1 to 900 seconds (default 30)
#   --connection-budget N    CONNECTION_BUDGET    connections the function may hold on the cluster (default 50)
#   --reserved-concurrency N RESERVED_CONCURRENCY requests in flight at once (default: half the budget, as
#                                                 environments of the previous version keep theirs)
#   --no-reserved-concurrency                     reserve none (the account's unreserved pool bounds it)
#   --schedule EXPR          SCHEDULE             EventBridge Scheduler expression (default "rate(5 minutes)")
#   --time-zone TZ           TIME_ZONE            the schedule's time zone (default Etc/UTC)
#   --schedule-name J        SCHEDULE_NAME        the schedule, and the events' default kind
#                                                 (default <name>-schedule)
#   --schedule-body JSON     SCHEDULE_BODY        the body each run posts, as JSON (default: none, one event)
#   --alias A                ALIAS                the alias the URL and the schedule call (default live)
#   --snap-start                                  publish versions with SnapStart (off by default: its
#                                                 charges, docs/aws-lambda.md "SnapStart")
#   --subnet-ids S1,S2       SUBNET_IDS           run in these private subnets (with --security-group-ids):
#   --security-group-ids G   SECURITY_GROUP_IDS   egress through their NAT gateway's Elastic IP, or to a
#                                                 PrivateLink endpoint (CockroachDB Standard and Advanced)
#   --log-retention-days D   LOG_RETENTION_DAYS   CloudWatch Logs retention (default 30)
#   --zip FILE               PACKAGE_ZIP          deploy this package (default: build it with aws.package)
#   --no-smoke-test                               skip invoking the alias after deploying
#   --delete                                      remove the schedule, the function, its URL, the queue
#                                                 and the roles (each step safe to repeat)
#   --delete-secret                               with --delete: also delete the secret (7-day recovery window)
#   --dry-run                                     print every AWS command that would change something, run none
#   -h, --help                                    this text
#
# Environment only:
#   PYTHON                     a Python with requirements-dev.txt installed (default .venv/bin/python)
#   DEPLOY_BACKOFF_MS          first wait between retries in ms, doubled up to 16x (default 2000)
#   DEPLOY_IAM_RETRY_SECONDS   how long to retry while IAM propagates a new role (default 120)
#   The AWS CLI's own (v1 or v2): credentials, AWS_PROFILE, AWS_ENDPOINT_URL.
#
# Deploy steps, each safe to repeat:
#   1. the secret (restored if scheduled for deletion; a new version only if the DSN changed);
#   2. the log group;  3. the failed-runs queue;  4. the function's role: its logs, that secret, that queue;
#   5. the package;  6. the function, updated only if its code or configuration changed;
#   7. reserved concurrency, what the account leaves;  8. a version behind the alias, only if changed;
#   9. old versions removed (the live one and one for rollback stay);  10. retries and the queue for
#   failed runs;  11. the alias's private function URL;  12. the schedule's role;  13. the schedule;
#   14. a smoke test: GET / through the alias must answer 200.
set -euo pipefail

# ---------------------------------------------------------------- defaults, in one place
RUNTIME="python3.13"  # the Python the tests run on (scripts/bootstrap.sh)
HANDLER="aws.lambda_function.lambda_handler"
ARCHITECTURE="x86_64"  # the platform aws/package.py installs wheels for
# Lambda's CPU grows with memory and a cold start is CPU-bound (docs/aws-lambda.md, "Memory").
DEFAULT_MEMORY=1024
# One connection per environment: Lambda gives an environment one request at a time.
POOL_SIZE=1
# AWS refuses a reservation that leaves the account fewer unreserved executions than this.
UNRESERVED_MINIMUM=100
# Lambda's asynchronous invocations (the schedule's): retries after a failed run, and how long an
# event may wait; a run that fails them all goes to the failed-runs queue.
ASYNC_RETRY_ATTEMPTS=2
ASYNC_MAX_EVENT_AGE=3600
FAILED_RUNS_RETENTION=1209600  # 14 days, SQS's longest
# Regions without function URLs (https://docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html).
NO_FUNCTION_URL_REGIONS=" ap-south-2 ap-southeast-4 ap-southeast-5 ap-southeast-6 ap-southeast-7 ap-east-2 ca-west-1 eu-south-2 eu-central-2 il-central-1 me-central-1 "
# Trust policies: only Lambda, or only Scheduler from this account, may assume each role.
LAMBDA_PRINCIPAL="lambda.amazonaws.com"
SCHEDULER_PRINCIPAL="scheduler.amazonaws.com"

# The project's root, found with bash alone: the checks below run before any other tool is known.
ROOT="${BASH_SOURCE[0]%/*}"
[ "${ROOT}" != "${BASH_SOURCE[0]}" ] || ROOT=.
ROOT="$(cd "${ROOT}/.." && pwd)"
# shellcheck source=deploy/common.sh
source "${ROOT}/deploy/common.sh"

REGION="${REGION:-}"
FUNCTION_NAME="${FUNCTION_NAME:-events}"
SECRET="${SECRET:-events-dsn}"
MEMORY="${MEMORY:-${DEFAULT_MEMORY}}"
TIMEOUT="${TIMEOUT:-30}"
CONNECTION_BUDGET="${CONNECTION_BUDGET:-50}"
RESERVED_CONCURRENCY="${RESERVED_CONCURRENCY:-}"
SCHEDULE="${SCHEDULE:-rate(5 minutes)}"
TIME_ZONE="${TIME_ZONE:-Etc/UTC}"
SCHEDULE_NAME="${SCHEDULE_NAME:-}"
SCHEDULE_BODY="${SCHEDULE_BODY:-}"
ALIAS="${ALIAS:-live}"
SUBNET_IDS="${SUBNET_IDS:-}"
SECURITY_GROUP_IDS="${SECURITY_GROUP_IDS:-}"
LOG_RETENTION_DAYS="${LOG_RETENTION_DAYS:-30}"
PACKAGE_ZIP="${PACKAGE_ZIP:-}"
DEPLOY_BACKOFF_MS="${DEPLOY_BACKOFF_MS:-2000}"
DEPLOY_IAM_RETRY_SECONDS="${DEPLOY_IAM_RETRY_SECONDS:-120}"
SNAP_START=false
RESERVE=true
SMOKE_TEST=true
MODE=deploy
DELETE_SECRET=false
DRY_RUN=false
DSN_FROM_STDIN=false

parse_args() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --region) REGION="${2:?--region needs a value}"; shift 2 ;;
      --name) FUNCTION_NAME="${2:?--name needs a value}"; shift 2 ;;
      --secret) SECRET="${2:?--secret needs a value}"; shift 2 ;;
      --dsn-stdin) DSN_FROM_STDIN=true; shift ;;
      --memory) MEMORY="${2:?--memory needs a value}"; shift 2 ;;
      --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
      --connection-budget) CONNECTION_BUDGET="${2:?--connection-budget needs a value}"; shift 2 ;;
      --reserved-concurrency) RESERVED_CONCURRENCY="${2:?--reserved-concurrency needs a value}"; shift 2 ;;
      --no-reserved-concurrency) RESERVE=false; shift ;;
      --schedule) SCHEDULE="${2:?--schedule needs a value}"; shift 2 ;;
      --time-zone) TIME_ZONE="${2:?--time-zone needs a value}"; shift 2 ;;
      --schedule-name) SCHEDULE_NAME="${2:?--schedule-name needs a value}"; shift 2 ;;
      --schedule-body) SCHEDULE_BODY="${2:?--schedule-body needs a value}"; shift 2 ;;
      --alias) ALIAS="${2:?--alias needs a value}"; shift 2 ;;
      --snap-start) SNAP_START=true; shift ;;
      --subnet-ids) SUBNET_IDS="${2:?--subnet-ids needs a value}"; shift 2 ;;
      --security-group-ids) SECURITY_GROUP_IDS="${2:?--security-group-ids needs a value}"; shift 2 ;;
      --log-retention-days) LOG_RETENTION_DAYS="${2:?--log-retention-days needs a value}"; shift 2 ;;
      --zip) PACKAGE_ZIP="${2:?--zip needs a value}"; shift 2 ;;
      --no-smoke-test) SMOKE_TEST=false; shift ;;
      --delete) MODE=delete; shift ;;
      --delete-secret) DELETE_SECRET=true; shift ;;
      --dry-run) DRY_RUN=true; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
}

# ---------------------------------------------------------------- checks, before anything runs

check_names() {
  # Role names are at most 64 characters, queue names 80: <name>-scheduler and <name>-failed-runs must fit.
  [[ "${FUNCTION_NAME}" =~ ^[A-Za-z0-9_-]{1,54}$ ]] \
    || die "--name must be 1 to 54 letters, digits, - or _ (it also names the roles), got '${FUNCTION_NAME}'"
  [[ "${SECRET}" =~ ^[A-Za-z0-9/_+=.@-]{1,512}$ ]] || die "--secret must be a Secrets Manager name, got '${SECRET}'"
  SCHEDULE_NAME="${SCHEDULE_NAME:-${FUNCTION_NAME}-schedule}"
  # The schedule's name becomes the events' kind: letters, digits, - _ . as both allow.
  [[ "${SCHEDULE_NAME}" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] \
    || die "--schedule-name must be 1 to 64 letters, digits, - _ or ., got '${SCHEDULE_NAME}'"
  [[ "${ALIAS}" =~ ^[A-Za-z_-][A-Za-z0-9_-]{0,127}$ ]] || die "--alias must be letters, digits, - or _, got '${ALIAS}'"
  [[ "${SCHEDULE}" =~ ^(rate|cron|at)\(.+\)$ ]] \
    || die "--schedule must be an EventBridge Scheduler expression such as 'rate(5 minutes)' or 'cron(0 * * * ? *)', got '${SCHEDULE}'"
  [[ "${TIME_ZONE}" =~ ^[A-Za-z0-9_+/-]{1,50}$ ]] || die "--time-zone must be an IANA time zone, got '${TIME_ZONE}'"
}

check_numbers() {
  decimal MEMORY --memory 128 10240
  decimal TIMEOUT --timeout 1 900
  decimal CONNECTION_BUDGET --connection-budget 2 100000
  # Half the budget: after a deploy, the previous version's environments keep their pooled
  # connection until Lambda ends them, beside the new version's.
  RESERVED_CONCURRENCY="${RESERVED_CONCURRENCY:-$((CONNECTION_BUDGET / POOL_SIZE / 2))}"
  decimal RESERVED_CONCURRENCY --reserved-concurrency 1 100000
  [ "$((RESERVED_CONCURRENCY * POOL_SIZE * 2))" -le "${CONNECTION_BUDGET}" ] \
    || die "--reserved-concurrency ${RESERVED_CONCURRENCY} x pool size ${POOL_SIZE} x 2 versions = $((RESERVED_CONCURRENCY * POOL_SIZE * 2)) connections, over the --connection-budget of ${CONNECTION_BUDGET}"
  decimal LOG_RETENTION_DAYS --log-retention-days 1 3653
  decimal DEPLOY_BACKOFF_MS DEPLOY_BACKOFF_MS 1 60000
  decimal DEPLOY_IAM_RETRY_SECONDS DEPLOY_IAM_RETRY_SECONDS 0 3600
}

check_network() {
  if [ -z "${SUBNET_IDS}${SECURITY_GROUP_IDS}" ]; then return 0; fi
  [[ "${SUBNET_IDS}" =~ ^subnet-[0-9a-f]+(,subnet-[0-9a-f]+)*$ ]] \
    || die "--subnet-ids must be subnet ids separated by commas (and goes with --security-group-ids), got '${SUBNET_IDS}'"
  [[ "${SECURITY_GROUP_IDS}" =~ ^sg-[0-9a-f]+(,sg-[0-9a-f]+)*$ ]] \
    || die "--security-group-ids must be security group ids separated by commas (and goes with --subnet-ids), got '${SECURITY_GROUP_IDS}'"
}

check_modes() {
  if [ "${DELETE_SECRET}" = true ] && [ "${MODE}" != delete ]; then die "--delete-secret goes with --delete"; fi
  if [ "${MODE}" != deploy ] && [ "${DSN_FROM_STDIN}" = true ]; then die "--dsn-stdin is for deploying"; fi
  if [ -n "${SCHEDULE_BODY}" ]; then
    printf '%s' "${SCHEDULE_BODY}" | "${PYTHON}" -c 'import json, sys; json.load(sys.stdin)' 2>/dev/null \
      || die "--schedule-body must be JSON, got '${SCHEDULE_BODY}'"
  fi
  if [ -n "${PACKAGE_ZIP}" ] && [ ! -f "${PACKAGE_ZIP}" ]; then die "--zip ${PACKAGE_ZIP}: no such file"; fi
}

check_tools() {
  command -v aws >/dev/null || die "the AWS CLI is not installed: pip install awscli (requirements-dev.txt), or AWS's installer"
  find_python "${ROOT}"
}

# ---------------------------------------------------------------- the DSN, the region, the account

# The DSN stays in the variable DSN: never a command argument, never printed.
# The function's own DSN translation, with the package as the files the function will have.
check_dsn() {
  printf '%s' "$1" | (cd "${ROOT}" && "${PYTHON}" -m aws.package --check-dsn) || exit 2
}

# The cluster's region from its host (CockroachDB Cloud names AWS clusters NAME.aws-REGION.…),
# or --region; anything else stops here, before any change.
choose_region() {
  local authority host="" named=""
  if [ -n "${DSN}" ]; then
    authority="${DSN#*://}"
    authority="${authority%%[/?]*}"
    host="${authority##*@}"
    host="${host%%:*}"
    if [[ "${host}" =~ \.aws-([a-z]{2}(-[a-z]+)+-[0-9])\. ]]; then named="${BASH_REMATCH[1]}"; fi
  fi
  if [ -n "${REGION}" ]; then
    REGION_WHY="--region"
    [ -z "${named}" ] || [ "${named}" = "${REGION}" ] || REGION_WHY="--region; the cluster is in ${named}"
  elif [ -n "${named}" ]; then
    REGION="${named}"
    REGION_WHY="the cluster's region, from its host"
  else
    die "the cluster's host${host:+ ${host}} names no AWS region (a cluster on GCP or Azure, a Basic or multi-region host, or no DSN given): give --region, the AWS region nearest the cluster"
  fi
  [[ "${REGION}" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || die "--region must be an AWS region such as eu-west-1, got '${REGION}'"
  if [ "${MODE}" = deploy ] && [[ "${NO_FUNCTION_URL_REGIONS}" == *" ${REGION} "* ]]; then
    die "${REGION} has no Lambda function URLs: give --region, a nearby region that has them"
  fi
  printf 'region: %s (%s)\n' "${REGION}" "${REGION_WHY}"
}

find_account() {
  if [ "${DRY_RUN}" = true ]; then ACCOUNT="123456789012"; return 0; fi
  ACCOUNT="$(aws sts get-caller-identity --region "${REGION}" --query Account --output text 2>/dev/null)" \
    || die "the AWS CLI has no working credentials: run 'aws configure' (or set AWS_PROFILE)"
  printf 'account: %s\n' "${ACCOUNT}"
}

set_names() {
  FUNCTION_ROLE="${FUNCTION_NAME}-function"
  SCHEDULER_ROLE="${FUNCTION_NAME}-scheduler"
  QUEUE="${FUNCTION_NAME}-failed-runs"
  QUEUE_ARN="arn:aws:sqs:${REGION}:${ACCOUNT}:${QUEUE}"
  LOG_GROUP="/aws/lambda/${FUNCTION_NAME}"
  FUNCTION_ARN="arn:aws:lambda:${REGION}:${ACCOUNT}:function:${FUNCTION_NAME}"
  ALIAS_ARN="${FUNCTION_ARN}:${ALIAS}"
  # The package, the smoke test's event and its answer; removed on exit.
  WORK="$(mktemp -d)"
  trap 'rm -rf "${WORK}"' EXIT
}

# How many executions this function may reserve: the account's unreserved pool (with what the
# function already holds) minus the 100 AWS keeps unreserved. Read before anything changes.
plan_concurrency() {
  local unreserved="unknown" held=0 fits
  if [ "${DRY_RUN}" = false ]; then
    unreserved="$(aws lambda get-account-settings --region "${REGION}" \
      --query AccountLimit.UnreservedConcurrentExecutions --output text)" \
      || die "could not read the account's concurrency settings (lambda:GetAccountSettings)"
    held="$(query lambda get-function-concurrency --function-name "${FUNCTION_NAME}" \
      --query ReservedConcurrentExecutions)" || held=0
    [[ "${held}" =~ ^[0-9]+$ ]] || held=0
    unreserved=$((unreserved + held))
  fi
  HELD_CONCURRENCY="${held}"
  RESERVE_WHY="--no-reserved-concurrency"
  if [ "${RESERVE}" = false ] || [ "${DRY_RUN}" = true ]; then
    : # as asked; a dry run reads no settings
  elif [ "$((unreserved - UNRESERVED_MINIMUM))" -ge "${RESERVED_CONCURRENCY}" ]; then
    :
  elif [ "$((unreserved - UNRESERVED_MINIMUM))" -ge 1 ]; then
    fits=$((unreserved - UNRESERVED_MINIMUM))
    printf 'concurrency: reserving %s, not %s: the account has %s unreserved and AWS keeps %s\n' \
      "${fits}" "${RESERVED_CONCURRENCY}" "${unreserved}" "${UNRESERVED_MINIMUM}"
    RESERVED_CONCURRENCY="${fits}"
  else
    RESERVE=false
    RESERVE_WHY="the account has ${unreserved} unreserved executions and AWS keeps ${UNRESERVED_MINIMUM}"
  fi
  if [ "${RESERVE}" = true ] && [ "${DRY_RUN}" = true ]; then
    printf 'concurrency: reserving %s (a dry run reads no account settings)\n' "${RESERVED_CONCURRENCY}"
  elif [ "${RESERVE}" = true ]; then
    printf 'concurrency: reserving %s (account unreserved: %s)\n' "${RESERVED_CONCURRENCY}" "${unreserved}"
  else
    printf 'concurrency: none reserved (%s): requests in flight are then bounded only by the account'"'"'s unreserved pool (%s), each holding up to %s connection: --connection-budget %s is not enforced. Ask AWS for a higher concurrency quota, then deploy again.\n' \
      "${RESERVE_WHY}" "${unreserved}" "${POOL_SIZE}" "${CONNECTION_BUDGET}"
  fi
}
# ---------------------------------------------------------------- running the AWS CLI

# An AWS command that changes something, or its printout in --dry-run. Arguments never hold secrets.
run() {
  if [ "${DRY_RUN}" = true ]; then
    printf '+'; printf ' %q' aws "$@" --region "${REGION}" --output json; printf '\n'
    return 0
  fi
  aws "$@" --region "${REGION}" --output json >/dev/null
}

# An AWS command that creates something, its answer's field $1 as text; in --dry-run its
# printout, on file descriptor 3 (the script's standard output: the caller captures fd 1).
create() {
  local field="$1"
  shift
  if [ "${DRY_RUN}" = true ]; then
    { printf '+'; printf ' %q' aws "$@" --region "${REGION}" --query "${field}" --output text; printf '\n'; } >&3
    return 0
  fi
  aws "$@" --region "${REGION}" --query "${field}" --output text
}

# An AWS query's answer as text (in --dry-run: nothing, as if the resource did not exist).
query() {
  [ "${DRY_RUN}" = false ] || return 1
  aws "$@" --region "${REGION}" --output text 2>/dev/null
}

exists() { query "$@" >/dev/null; }


# Run an AWS command ($1 describes it) that names a role created moments ago. IAM takes seconds
# to propagate a new role or policy; until then Lambda says it "cannot be assumed" (or that the
# role "does not have permissions" for a destination) and Scheduler that it must allow the
# service to assume it. Those errors, and only those, are retried with doubling waits for
# DEPLOY_IAM_RETRY_SECONDS.
run_naming_new_role() {
  local what="$1" error started="${SECONDS}"
  shift
  if [ "${DRY_RUN}" = true ]; then run "$@"; return 0; fi
  BACKOFF_MS="${DEPLOY_BACKOFF_MS}"
  while ! error="$(aws "$@" --region "${REGION}" --output json 2>&1 >/dev/null)"; do
    if ! [[ "${error}" == *"cannot be assumed"* || "${error}" == *"must allow"*"to assume"* \
      || "${error}" == *"does not have permissions"* ]]; then
      printf '%s\n' "${error}" >&2
      die "could not ${what}"
    fi
    if [ "$((SECONDS - started))" -ge "${DEPLOY_IAM_RETRY_SECONDS}" ]; then
      die "IAM has not propagated the new role after ${DEPLOY_IAM_RETRY_SECONDS}s; run aws/deploy.sh again (every step is safe to repeat)"
    fi
    printf '  the new role has not propagated yet; retrying in %sms\n' "${BACKOFF_MS}"
    sleep_ms "${BACKOFF_MS}"
    next_backoff
  done
}

# Delete something ($1 describes it) if it is there: "not found" means done already.
remove() {
  local what="$1" error
  shift
  if [ "${DRY_RUN}" = true ]; then run "$@"; return 0; fi
  if error="$(aws "$@" --region "${REGION}" --output json 2>&1 >/dev/null)"; then
    printf '  removed %s\n' "${what}"
  elif [[ "${error}" =~ ResourceNotFound|NoSuchEntity|[Nn]ot\ found|does\ not\ exist ]]; then
    printf '  %s: not there (nothing to do)\n' "${what}"
  else
    printf '%s\n' "${error}" >&2
    die "could not remove ${what}"
  fi
}

# ---------------------------------------------------------------- deploy steps

store_secret() {
  step "1. secret ${SECRET}"
  local current="" found deleted
  if found="$(query secretsmanager describe-secret --secret-id "${SECRET}" --query '[ARN, DeletedDate]')"; then
    IFS=$'\t' read -r SECRET_ARN deleted <<<"${found}"
    if [ "${deleted}" != None ]; then
      # A --delete --delete-secret within the last 7 days: the secret waits out its recovery window.
      run secretsmanager restore-secret --secret-id "${SECRET}"
      printf 'restored secret %s (it was scheduled for deletion)\n' "${SECRET}"
    else
      printf 'secret %s exists\n' "${SECRET}"
    fi
    if [ -n "${DSN}" ]; then
      current="$(query secretsmanager get-secret-value --secret-id "${SECRET}" --query SecretString)" || current=""
      if [ "${current}" = "${DSN}" ]; then
        printf 'the DSN equals the current version: no new version\n'
      else
        printf '%s' "${DSN}" | aws secretsmanager put-secret-value --secret-id "${SECRET}" \
          --secret-string file:///dev/stdin --region "${REGION}" --output json >/dev/null
        printf 'stored the DSN as a new current version\n'
      fi
    fi
  else
    [ -n "${DSN}" ] || [ "${DRY_RUN}" = true ] \
      || die "secret ${SECRET} does not exist in ${REGION}: give the DSN (DATABASE_URL or --dsn-stdin)"
    # The DSN on standard input, never an argument.
    local args=(secretsmanager create-secret --name "${SECRET}" --secret-string file:///dev/stdin
      --description "CockroachDB connection string of the ${FUNCTION_NAME} function")
    if [ "${DRY_RUN}" = true ]; then
      create ARN "${args[@]}"
      SECRET_ARN="arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${SECRET}-??????"
    else
      SECRET_ARN="$(printf '%s' "${DSN}" | create ARN "${args[@]}")"
      printf 'created secret %s\n' "${SECRET}"
    fi
  fi
  unset DSN current
}

create_log_group() {
  step "2. log group ${LOG_GROUP}"
  # Made here, with a retention, so the function's role needs no logs:CreateLogGroup.
  if [ -n "$(query logs describe-log-groups --log-group-name-prefix "${LOG_GROUP}" \
    --query "logGroups[?logGroupName=='${LOG_GROUP}'].logGroupName")" ]; then
    printf 'log group exists\n'
  else
    run logs create-log-group --log-group-name "${LOG_GROUP}"
  fi
  run logs put-retention-policy --log-group-name "${LOG_GROUP}" --retention-in-days "${LOG_RETENTION_DAYS}"
}

create_queue() {
  step "3. queue ${QUEUE}: scheduled runs that failed every attempt"
  if exists sqs get-queue-url --queue-name "${QUEUE}"; then
    printf 'queue exists\n'
  else
    run sqs create-queue --queue-name "${QUEUE}" --attributes "MessageRetentionPeriod=${FAILED_RUNS_RETENTION}"
  fi
}

trust_policy() {
  local condition=""
  [ "$1" != "${SCHEDULER_PRINCIPAL}" ] || condition=',"Condition":{"StringEquals":{"aws:SourceAccount":"'"${ACCOUNT}"'"}}'
  printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"%s"},"Action":"sts:AssumeRole"%s}]}' \
    "$1" "${condition}"
}

function_policy() {
  local log_arn="arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${LOG_GROUP}"
  local statements='{"Effect":"Allow","Action":["logs:CreateLogStream","logs:PutLogEvents"],"Resource":"'"${log_arn}:*"'"}'
  statements+=',{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"'"${SECRET_ARN}"'"}'
  # Lambda sends a failed asynchronous run to its on-failure destination with the function's role.
  statements+=',{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"'"${QUEUE_ARN}"'"}'
  if [ -n "${SUBNET_IDS}" ]; then
    # What Lambda needs to place the function's network interfaces in the subnets (the
    # actions of AWSLambdaVPCAccessExecutionRole); EC2 grants them only on "*".
    statements+=',{"Effect":"Allow","Action":["ec2:CreateNetworkInterface","ec2:DescribeNetworkInterfaces","ec2:DescribeSubnets","ec2:DeleteNetworkInterface","ec2:AssignPrivateIpAddresses","ec2:UnassignPrivateIpAddresses"],"Resource":"*"}'
  fi
  printf '{"Version":"2012-10-17","Statement":[%s]}' "${statements}"
}

# A role ($1) for a service ($2) with one inline policy ($3), both rewritten on every run.
ensure_role() {
  if ROLE_ARN="$(query iam get-role --role-name "$1" --query Role.Arn)"; then
    printf 'role %s exists\n' "$1"
    run iam update-assume-role-policy --role-name "$1" --policy-document "$(trust_policy "$2")"
  else
    ROLE_ARN="$(create Role.Arn iam create-role --role-name "$1" --assume-role-policy-document "$(trust_policy "$2")")"
    if [ "${DRY_RUN}" = true ]; then ROLE_ARN="arn:aws:iam::${ACCOUNT}:role/$1"; else printf 'created role %s\n' "$1"; fi
  fi
  run iam put-role-policy --role-name "$1" --policy-name "$1-least-privilege" --policy-document "$3"
}

function_role() {
  step "4. role ${FUNCTION_ROLE}: its own logs, secret ${SECRET}, queue ${QUEUE}"
  ensure_role "${FUNCTION_ROLE}" "${LAMBDA_PRINCIPAL}" "$(function_policy)"
  FUNCTION_ROLE_ARN="${ROLE_ARN}"
}

build_package() {
  step "5. package"
  if [ -n "${PACKAGE_ZIP}" ]; then
    printf 'using %s\n' "${PACKAGE_ZIP}"
  else
    PACKAGE_ZIP="${WORK}/${FUNCTION_NAME}.zip"
    if [ "${DRY_RUN}" = true ]; then
      printf '+ %q -m aws.package --build %q\n' "${PYTHON}" "${PACKAGE_ZIP}"
      CODE_SHA="<the package's SHA-256>"
      return 0
    fi
    (cd "${ROOT}" && "${PYTHON}" -m aws.package --build "${PACKAGE_ZIP}") || die "could not build the package"
  fi
  # As Lambda reports it (CodeSha256): the package's SHA-256, base64.
  CODE_SHA="$("${PYTHON}" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1], "rb").read()).digest()).decode())' "${PACKAGE_ZIP}")"
  printf 'package %s, CodeSha256 %s\n' "${PACKAGE_ZIP}" "${CODE_SHA}"
}

# The function's configuration as arguments, and a fingerprint of it that each published
# version carries as its description, so an unchanged deploy can be recognised.
function_config() {
  local environment
  environment="{\"Variables\":{\"DATABASE_URL_SECRET_ARN\":\"${SECRET_ARN}\",\"DB_POOL_SIZE\":\"${POOL_SIZE}\"}}"
  CONFIG=(--runtime "${RUNTIME}" --handler "${HANDLER}" --role "${FUNCTION_ROLE_ARN}"
    --memory-size "${MEMORY}" --timeout "${TIMEOUT}" --environment "${environment}")
  if [ "${SNAP_START}" = true ]; then
    CONFIG+=(--snap-start ApplyOn=PublishedVersions)
  else
    CONFIG+=(--snap-start ApplyOn=None)
  fi
  if [ -n "${SUBNET_IDS}" ]; then
    CONFIG+=(--vpc-config "SubnetIds=${SUBNET_IDS},SecurityGroupIds=${SECURITY_GROUP_IDS}")
  else
    CONFIG+=(--vpc-config "SubnetIds=[],SecurityGroupIds=[]")
  fi
  DESCRIPTION="aws/deploy.sh configuration $(printf '%s\n' "${ARCHITECTURE}" "${CONFIG[@]}" \
    | "${PYTHON}" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')"
}

# The live version (the one the alias points to), and whether it already runs this package with
# this configuration: one call, the alias as the qualifier.
find_live_version() {
  local found sha description
  LIVE_VERSION=""
  UNCHANGED=false
  found="$(query lambda get-function-configuration --function-name "${FUNCTION_NAME}" \
    --qualifier "${ALIAS}" --query '[Version, CodeSha256, Description]')" || return 0
  IFS=$'\t' read -r LIVE_VERSION sha description <<<"${found}"
  [ "${sha}"$'\t'"${description}" != "${CODE_SHA}"$'\t'"${DESCRIPTION}" ] || UNCHANGED=true
}

deploy_function() {
  step "6. function ${FUNCTION_NAME} in ${REGION}"
  function_config
  find_live_version
  if [ "${UNCHANGED}" = true ]; then
    printf 'version %s already runs this package and configuration: nothing to update\n' "${LIVE_VERSION}"
  elif [ -n "${LIVE_VERSION}" ] || exists lambda get-function --function-name "${FUNCTION_NAME}"; then
    run lambda update-function-code --function-name "${FUNCTION_NAME}" --zip-file "fileb://${PACKAGE_ZIP}"
    run lambda wait function-updated-v2 --function-name "${FUNCTION_NAME}"
    run_naming_new_role "update ${FUNCTION_NAME}'s configuration" \
      lambda update-function-configuration --function-name "${FUNCTION_NAME}" "${CONFIG[@]}"
    run lambda wait function-updated-v2 --function-name "${FUNCTION_NAME}"
    [ "${DRY_RUN}" = true ] || printf 'updated %s\n' "${FUNCTION_NAME}"
  else
    run_naming_new_role "create ${FUNCTION_NAME}" lambda create-function --function-name "${FUNCTION_NAME}" \
      --architectures "${ARCHITECTURE}" --zip-file "fileb://${PACKAGE_ZIP}" "${CONFIG[@]}"
    run lambda wait function-active-v2 --function-name "${FUNCTION_NAME}"
    [ "${DRY_RUN}" = true ] || printf 'created %s\n' "${FUNCTION_NAME}"
  fi
}

limit_concurrency() {
  if [ "${RESERVE}" = true ]; then
    step "7. reserved concurrency ${RESERVED_CONCURRENCY} (x pool size ${POOL_SIZE} x 2 versions <= budget ${CONNECTION_BUDGET})"
    run lambda put-function-concurrency --function-name "${FUNCTION_NAME}" \
      --reserved-concurrent-executions "${RESERVED_CONCURRENCY}"
  else
    step "7. no reserved concurrency (${RESERVE_WHY})"
    if [ "${HELD_CONCURRENCY}" -gt 0 ] || [ "${DRY_RUN}" = true ]; then
      remove "${FUNCTION_NAME}'s reserved concurrency" lambda delete-function-concurrency --function-name "${FUNCTION_NAME}"
    fi
  fi
}

publish() {
  step "8. version behind alias ${ALIAS}"
  if [ "${UNCHANGED}" = true ]; then
    VERSION="${LIVE_VERSION}"
    printf 'unchanged: version %s stays live, nothing published\n' "${VERSION}"
    return 0
  fi
  VERSION="$(create Version lambda publish-version --function-name "${FUNCTION_NAME}" --code-sha256 "${CODE_SHA}" \
    --description "${DESCRIPTION}")"
  if [ "${DRY_RUN}" = true ]; then
    VERSION='<the published version>'
  else
    run lambda wait published-version-active --function-name "${FUNCTION_NAME}:${VERSION}"
    printf 'published version %s%s\n' "${VERSION}" "$([ "${SNAP_START}" = false ] || printf ' (SnapStart took its snapshot)')"
  fi
  if [ -n "${LIVE_VERSION}" ]; then
    run lambda update-alias --function-name "${FUNCTION_NAME}" --name "${ALIAS}" --function-version "${VERSION}"
  else
    run lambda create-alias --function-name "${FUNCTION_NAME}" --name "${ALIAS}" --function-version "${VERSION}"
  fi
}

# Every published version but the live one and the one before it (for rollback): each version
# keeps a code copy, and with SnapStart a cached snapshot billed while it exists.
prune_versions() {
  step "9. old versions (keep ${VERSION} and one for rollback)"
  local versions version keep_previous=""
  [ "${DRY_RUN}" = false ] || { printf '(a dry run lists no versions)\n'; return 0; }
  versions="$(query lambda list-versions-by-function --function-name "${FUNCTION_NAME}" --query 'Versions[].Version')" || versions=""
  for version in ${versions}; do
    if [[ "${version}" =~ ^[0-9]+$ ]] && [ "${version}" -lt "${VERSION}" ] && [ "${version}" -gt "${keep_previous:-0}" ]; then
      keep_previous="${version}"
    fi
  done
  ROLLBACK_VERSION="${keep_previous:-<none yet>}"
  for version in ${versions}; do
    [[ "${version}" =~ ^[0-9]+$ ]] || continue
    [ "${version}" != "${VERSION}" ] && [ "${version}" != "${keep_previous}" ] || continue
    remove "version ${version}" lambda delete-function --function-name "${FUNCTION_NAME}" --qualifier "${version}"
  done
  printf 'live %s, rollback %s\n' "${VERSION}" "${keep_previous:-none yet}"
}

async_invoke_config() {
  step "10. scheduled runs: ${ASYNC_RETRY_ATTEMPTS} retries within ${ASYNC_MAX_EVENT_AGE}s, then queue ${QUEUE}"
  # Lambda checks that the role may send to the queue: a policy put moments ago may not have propagated.
  run_naming_new_role "set ${FUNCTION_NAME}:${ALIAS}'s retries and failure queue" \
    lambda put-function-event-invoke-config --function-name "${FUNCTION_NAME}" --qualifier "${ALIAS}" \
    --maximum-retry-attempts "${ASYNC_RETRY_ATTEMPTS}" --maximum-event-age-in-seconds "${ASYNC_MAX_EVENT_AGE}" \
    --destination-config "{\"OnFailure\":{\"Destination\":\"${QUEUE_ARN}\"}}"
}

function_url() {
  step "11. private function URL (AWS_IAM) on ${ALIAS}"
  # AWS_IAM: only principals whose policies allow lambda:InvokeFunctionUrl and lambda:InvokeFunction
  # on it may call it; no resource policy is added, so nothing outside the account can.
  if URL="$(query lambda get-function-url-config --function-name "${FUNCTION_NAME}" --qualifier "${ALIAS}" --query FunctionUrl)"; then
    run lambda update-function-url-config --function-name "${FUNCTION_NAME}" --qualifier "${ALIAS}" --auth-type AWS_IAM
  else
    URL="$(create FunctionUrl lambda create-function-url-config --function-name "${FUNCTION_NAME}" \
      --qualifier "${ALIAS}" --auth-type AWS_IAM)"
    [ "${DRY_RUN}" = false ] || URL='<the function URL>'
  fi
  printf 'url: %s\n' "${URL}"
}

scheduler_role() {
  step "12. role ${SCHEDULER_ROLE}: invoke ${FUNCTION_NAME}:${ALIAS} only"
  ensure_role "${SCHEDULER_ROLE}" "${SCHEDULER_PRINCIPAL}" \
    "$(printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"%s"}]}' "${ALIAS_ARN}")"
  SCHEDULER_ROLE_ARN="${ROLE_ARN}"
}

# The target as JSON: the schedule's Input is the event contract of docs/aws-lambda.md, the
# placeholders filled in by Scheduler on every run, retries included.
schedule_target() {
  "${PYTHON}" - "${ALIAS_ARN}" "${SCHEDULER_ROLE_ARN}" "${SCHEDULE_BODY}" <<'PY'
import json, sys
alias_arn, role_arn, body = sys.argv[1:4]
event = {"schedule_arn": "<aws.scheduler.schedule-arn>", "scheduled_time": "<aws.scheduler.scheduled-time>"}
if body:
    event["body"] = json.loads(body)
# Scheduler retries only a delivery Lambda refused (throttled); a run that fails is retried by
# Lambda (the invoke configuration). A retried run carries the same scheduled time, hence the same ids.
retry = {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
print(json.dumps({"Arn": alias_arn, "RoleArn": role_arn, "Input": json.dumps(event), "RetryPolicy": retry}))
PY
}

schedule() {
  step "13. schedule ${SCHEDULE_NAME}: ${SCHEDULE} ${TIME_ZONE}"
  local args verb=create-schedule
  args=(--name "${SCHEDULE_NAME}" --schedule-expression "${SCHEDULE}"
    --schedule-expression-timezone "${TIME_ZONE}" --flexible-time-window Mode=OFF
    --target "$(schedule_target)" --state ENABLED)
  if exists scheduler get-schedule --name "${SCHEDULE_NAME}"; then verb=update-schedule; fi
  run_naming_new_role "${verb%-schedule} schedule ${SCHEDULE_NAME}" scheduler "${verb}" "${args[@]}"
  [ "${DRY_RUN}" = true ] || printf '%sd schedule %s\n' "${verb%-schedule}" "${SCHEDULE_NAME}"
}

# GET / through the alias, as a function URL would deliver it: 200 is done. GET / prepares the
# INSERT, so a schema never applied answers 503. Only what AWS CLI v1 and v2 both accept.
smoke_test() {
  step "14. smoke test: GET / through ${FUNCTION_NAME}:${ALIAS}"
  local event="${WORK}/smoke-event.json" answer="${WORK}/smoke-answer.json" status
  printf '%s' '{"version":"2.0","rawPath":"/","rawQueryString":"","headers":{"user-agent":"aws/deploy.sh"},"requestContext":{"http":{"method":"GET","path":"/","sourceIp":"127.0.0.1"}}}' >"${event}"
  local invoke=(lambda invoke --function-name "${FUNCTION_NAME}" --qualifier "${ALIAS}" --payload "fileb://${event}" "${answer}")
  run "${invoke[@]}" || die "could not invoke ${FUNCTION_NAME}:${ALIAS}"
  [ "${DRY_RUN}" = false ] || return 0
  status="$("${PYTHON}" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("statusCode", "an error"))' "${answer}" 2>/dev/null)" \
    || status="unreadable"
  printf 'smoke test: %s\n' "${status}"
  [ "${status}" = 200 ] || die "the function answered ${status}: a 503 names its cause in the log (aws logs filter-log-events --log-group-name ${LOG_GROUP} --region ${REGION}): a schema not applied (python -m db migrate), or the cluster's allowlist (see the egress line below)"
}

summary() {
  step "done"
  local egress="Lambda's shared addresses (no VPC): fine for CockroachDB Basic; Standard and Advanced accept only allowlisted addresses or private connectivity: redeploy with --subnet-ids and --security-group-ids of private subnets whose NAT gateway's Elastic IP is on the cluster's allowlist, or reach the cluster through AWS PrivateLink"
  [ -z "${SUBNET_IDS}" ] || egress="subnets ${SUBNET_IDS} (security groups ${SECURITY_GROUP_IDS}): allowlist their NAT gateway's Elastic IP on the cluster, or use a PrivateLink endpoint"
  local concurrency="${RESERVED_CONCURRENCY} reserved x pool size ${POOL_SIZE} x 2 versions <= budget ${CONNECTION_BUDGET}"
  [ "${RESERVE}" = true ] || concurrency="none reserved: the budget of ${CONNECTION_BUDGET} is not enforced"
  cat <<SUMMARY
region:            ${REGION} (${REGION_WHY})
function:          ${FUNCTION_NAME} (${RUNTIME}, ${ARCHITECTURE}, ${MEMORY} MB, ${TIMEOUT}s), alias ${ALIAS} -> version ${VERSION}
rollback:          aws lambda update-alias --function-name ${FUNCTION_NAME} --name ${ALIAS} --function-version ${ROLLBACK_VERSION:-<the previous version>} --region ${REGION}
snapstart:         $([ "${SNAP_START}" = true ] && printf 'on published versions' || printf 'off (--snap-start turns it on)')
url:               ${URL} (AWS_IAM: callers need lambda:InvokeFunctionUrl and lambda:InvokeFunction)
secret:            ${SECRET} (DATABASE_URL_SECRET_ARN)
function role:     ${FUNCTION_ROLE} (its log group, GetSecretValue on ${SECRET}, SendMessage to ${QUEUE})
schedule:          ${SCHEDULE_NAME} "${SCHEDULE}" ${TIME_ZONE}, as ${SCHEDULER_ROLE}
failed runs:       ${ASYNC_RETRY_ATTEMPTS} retries by Lambda, then queue ${QUEUE}
concurrency:       ${concurrency}
egress:            ${egress}
SUMMARY
}

# ---------------------------------------------------------------- teardown

delete_role() {
  remove "${1}'s policy" iam delete-role-policy --role-name "$1" --policy-name "$1-least-privilege"
  remove "role $1" iam delete-role --role-name "$1"
}

delete_queue() {
  local queue_url
  if [ "${DRY_RUN}" = true ]; then
    queue_url="https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${QUEUE}"
  elif ! queue_url="$(query sqs get-queue-url --queue-name "${QUEUE}" --query QueueUrl)"; then
    printf '  queue %s: not there (nothing to do)\n' "${QUEUE}"
    return 0
  fi
  remove "queue ${QUEUE}" sqs delete-queue --queue-url "${queue_url}"
}

teardown() {
  step "delete the schedule ${SCHEDULE_NAME}"
  remove "schedule ${SCHEDULE_NAME}" scheduler delete-schedule --name "${SCHEDULE_NAME}"
  delete_role "${SCHEDULER_ROLE}"
  step "delete the function ${FUNCTION_NAME} (its versions, alias and invoke configuration with it)"
  remove "${FUNCTION_NAME}'s URL" lambda delete-function-url-config --function-name "${FUNCTION_NAME}" --qualifier "${ALIAS}"
  remove "function ${FUNCTION_NAME}" lambda delete-function --function-name "${FUNCTION_NAME}"
  delete_role "${FUNCTION_ROLE}"
  delete_queue
  step "the secret ${SECRET}"
  if [ "${DELETE_SECRET}" = true ]; then
    remove "secret ${SECRET} (recoverable for 7 days; deploying again within them restores it)" \
      secretsmanager delete-secret --secret-id "${SECRET}" --recovery-window-in-days 7
  else
    printf 'kept (it holds the DSN; add --delete-secret to delete it)\n'
  fi
  printf '\nLeft in place: the log group %s (delete it with aws logs delete-log-group).\n' "${LOG_GROUP}"
}

# ---------------------------------------------------------------- main

main() {
  exec 3>&1
  parse_args "$@"
  check_tools
  check_names
  check_numbers
  check_network
  check_modes
  read_dsn
  if [ -n "${DSN}" ]; then check_dsn "${DSN}"; fi
  choose_region
  find_account
  set_names
  if [ "${MODE}" = delete ]; then teardown; return 0; fi
  plan_concurrency
  store_secret
  create_log_group
  create_queue
  function_role
  build_package
  deploy_function
  limit_concurrency
  publish
  prune_versions
  async_invoke_config
  function_url
  scheduler_role
  schedule
  if [ "${SMOKE_TEST}" = true ]; then smoke_test; fi
  summary
}

main "$@"

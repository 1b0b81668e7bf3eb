#!/usr/bin/env bash
# Deploy the events function next to its CockroachDB cluster, private, on a schedule.
#
# usage: ./deploy.sh --project PROJECT [options]             deploy, or update in place
#        DATABASE_URL='postgresql://...' ./deploy.sh --project PROJECT   (stores the DSN first)
#        ./deploy.sh --project PROJECT --delete [--delete-secret]   remove what deploy.sh made
#        ./deploy.sh --project PROJECT --smoke-test-only            call the deployed function once
#
# Every setting is a flag or an environment variable (flag wins):
#   --project P              PROJECT            GCP project (required)
#   --secret S               SECRET             Secret Manager secret holding the DSN (default events-dsn)
#   --dsn-stdin                                 read the DSN from standard input (or set DATABASE_URL;
#                                               never a flag, so it stays out of shell history and `ps`);
#                                               it is checked by the function's own parser, then stored
#                                               as a new secret version if it differs from the latest
#   --region R               REGION             GCP region; default: the cluster's region if it offers
#                                               Cloud Functions, else the nearest region that does
#                                               (asked of Google: gcloud functions regions list --gen2)
#   --cluster-region C       CLUSTER_REGION     the cluster's (primary) region, e.g. gcp-us-east1 or
#                                               aws-eu-west-1, when the host does not name it
#                                               (CockroachDB Basic and multi-region hosts never do)
#   --name N                 FUNCTION_NAME      function name, at most 22 characters: it also names the
#                                               N-runtime, N-invoker and N-build service accounts
#                                               (default events)
#   --schedule CRON          SCHEDULE           Cloud Scheduler cron (default "*/5 * * * *")
#   --time-zone TZ           TIME_ZONE          schedule time zone (default Etc/UTC)
#   --job J                  JOB_NAME           Scheduler job name (default <name>-schedule)
#   --pool-size N            POOL_SIZE          connections per instance = requests per instance
#                                               (--concurrency), 1 to 1000 (default 1)
#   --connection-budget N    CONNECTION_BUDGET  most connections the function may hold on the cluster
#                                               (default 50)
#   --max-instances N        MAX_INSTANCES      default: connection budget / pool size; max instances
#                                               x pool size may not exceed the budget
#   --timeout SECONDS        TIMEOUT            function timeout, 1 to 3600 (default 60)
#   --attempt-deadline S     ATTEMPT_DEADLINE   how long Scheduler waits for an answer, 15 to 1800 and
#                                               longer than the timeout (default timeout + 30)
#   --ingress I              INGRESS            all | internal-only | internal-and-gclb (default all;
#                                               the function is private either way: IAM decides).
#                                               Cloud Scheduler in the project still reaches an
#                                               internal function on its run.app URL; this machine
#                                               does not, so the smoke test is skipped
#   --runtime R              RUNTIME            Python runtime (default python313, the tested Python)
#   --memory M               MEMORY             memory per instance, 128Mi to 32Gi (default 256Mi)
#   --cpu C                  CPU                vCPUs per instance: 0.08 to 0.999, or 1, 2, 4, 6, 8
#                                               (default 0.333 up to 512Mi; above that the platform's
#                                               share for the memory; 1 when the pool size is above 1);
#                                               always passed, so an update never keeps an old value
#   --secret-delivery MODE   SECRET_DELIVERY    file: Cloud Run mounts the secret's latest version at
#                                               /etc/secrets/dsn (DATABASE_URL_FILE); client: the
#                                               function reads it with the Secret Manager client
#                                               (DATABASE_URL_SECRET) (default file)
#   --secret-locations L,..  SECRET_LOCATIONS   create the secret with user-managed replication in
#                                               these regions (default: automatic, which organisations
#                                               restricting resource locations refuse)
#   --vpc-connector C        VPC_CONNECTOR      Serverless VPC Access connector for egress (name in the
#                                               function's region, or its full resource name)
#   --egress-settings E      EGRESS_SETTINGS    all | private-ranges-only: traffic sent through the
#                                               connector (default all when a connector is given)
#   --no-smoke-test                             skip calling the function after deploying it
#   --smoke-test-only                           only call the deployed function once and report
#   --delete                                    remove the job, the function, the bindings and the
#                                               service accounts (each step safe to repeat); it says
#                                               what it leaves (APIs, images, connector, NAT, IP)
#   --delete-secret                             with --delete: also delete the secret and its versions
#   --dry-run                                   print every gcloud command that would change something,
#                                               run none
#   -h, --help                                  this text
#
# Environment only:
#   PYTHON                      a Python with requirements.txt installed, for the DSN check
#                               (default .venv/bin/python next to this script, else python3)
#   DEPLOY_BACKOFF_MS           first wait between retries in ms, doubled up to 16x (default 2000)
#   DEPLOY_IAM_RETRY_SECONDS    how long to retry a binding IAM refuses because a new service account
#                               has not propagated yet (default 120)
#   DEPLOY_SMOKE_RETRY_SECONDS  how long the smoke test retries a 401/403 while the function's IAM
#                               propagates (default 120)
#
# Deploy steps, each safe to repeat; every check that needs no change comes first:
#   1. enable the APIs;  2. read what the project offers (the regions offering Cloud Functions,
#   Cloud Scheduler's locations, the VPC connector);  3. the secret, labelled, with a new
#   version only if the DSN changed;  4. service accounts: runtime, invoker, build;  5. roles:
#   the build account may build, the runtime account may read that one secret;  6. the
#   function (2nd gen, private, labelled, CPU and memory stated, all traffic to the new
#   revision);  7. the invoker account may call it;  8. the Scheduler job (OIDC, retries), in
#   the function's region or the nearest offered one;  9. a smoke test: GET / as the deployer.
# Labels function=<name>, cluster=<cluster>, managed-by=deploy-sh go on the function and the
# secret, and into the job's description (Cloud Scheduler jobs take no labels). docs/deploy.md
# has the rest: rollback, reaching the cluster, costs.
set -euo pipefail

# ---------------------------------------------------------------- defaults, in one place
# Memory, CPU and secret delivery follow the benchmark's cold-start and cost tables
# (docs/benchmark.md); the runtime is the Python the tests run on (scripts/bootstrap.sh).
DEFAULT_RUNTIME="python313"
DEFAULT_MEMORY="256Mi"
# 0.333 vCPU with 256 MiB, not the platform's 0.167: a cold start is CPU-bound and
# costs the same CPU-seconds at any share, so it finishes in half the time for about
# the same price per cold start (docs/deploy.md). Used when neither --cpu nor a --memory
# above 512Mi is given and the instance serves one request at a time.
DEFAULT_CPU="0.333"
DEFAULT_SECRET_DELIVERY="file"
# Where the secret file is mounted. Google recommends /etc/secrets and reserves /cloudsql,
# /dev/log, /pod, /proc and /var/log; the mount hides whatever the image has in that directory.
# (Cloud Functions API reference, SecretVolume.mount_path; gcloud functions deploy --help, 528.)
SECRET_MOUNT="/etc/secrets/dsn"
# The build service account's role: Cloud Run Builder (log writing, Artifact Registry upload,
# reading the uploaded source) is what Google documents for function builds
# (https://cloud.google.com/run/docs/configuring/services/build-service-account, read 2026-11-27).
BUILD_ROLE="roles/run.builder"
# Every API the steps below call, Cloud Resource Manager included: `gcloud functions deploy`
# looks the project number up through it, and new projects do not have it enabled.
APIS=(cloudresourcemanager.googleapis.com iam.googleapis.com secretmanager.googleapis.com
  cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com cloudscheduler.googleapis.com logging.googleapis.com)

# Found beside this script with bash alone: the checks below run before any other tool is known.
HERE="${BASH_SOURCE[0]%/*}"
[ "${HERE}" != "${BASH_SOURCE[0]}" ] || HERE=.
HERE="$(cd "${HERE}" && pwd)"
# shellcheck source=deploy/common.sh
source "${HERE}/deploy/common.sh"

PROJECT="${PROJECT:-}"
SECRET="${SECRET:-events-dsn}"
REGION="${REGION:-}"
CLUSTER_REGION="${CLUSTER_REGION:-}"
FUNCTION_NAME="${FUNCTION_NAME:-events}"
SCHEDULE="${SCHEDULE:-*/5 * * * *}"
TIME_ZONE="${TIME_ZONE:-Etc/UTC}"
JOB_NAME="${JOB_NAME:-}"
POOL_SIZE="${POOL_SIZE:-1}"
CONNECTION_BUDGET="${CONNECTION_BUDGET:-50}"
MAX_INSTANCES="${MAX_INSTANCES:-}"
TIMEOUT="${TIMEOUT:-60}"
ATTEMPT_DEADLINE="${ATTEMPT_DEADLINE:-}"
INGRESS="${INGRESS:-all}"
RUNTIME="${RUNTIME:-${DEFAULT_RUNTIME}}"
MEMORY="${MEMORY:-${DEFAULT_MEMORY}}"
CPU="${CPU:-}"  # empty: DEFAULT_CPU or the platform share, decided in check_resources
SECRET_DELIVERY="${SECRET_DELIVERY:-${DEFAULT_SECRET_DELIVERY}}"
SECRET_LOCATIONS="${SECRET_LOCATIONS:-}"
VPC_CONNECTOR="${VPC_CONNECTOR:-}"
EGRESS_SETTINGS="${EGRESS_SETTINGS:-}"
DEPLOY_BACKOFF_MS="${DEPLOY_BACKOFF_MS:-2000}"
DEPLOY_IAM_RETRY_SECONDS="${DEPLOY_IAM_RETRY_SECONDS:-120}"
DEPLOY_SMOKE_RETRY_SECONDS="${DEPLOY_SMOKE_RETRY_SECONDS:-120}"
SMOKE_TEST=true
CPU_WHY=""
MODE=deploy
DELETE_SECRET=false
DRY_RUN=false
DSN_FROM_STDIN=false

parse_args() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --project) PROJECT="${2:?--project needs a value}"; shift 2 ;;
      --secret) SECRET="${2:?--secret needs a value}"; shift 2 ;;
      --dsn-stdin) DSN_FROM_STDIN=true; shift ;;
      --region) REGION="${2:?--region needs a value}"; shift 2 ;;
      --cluster-region) CLUSTER_REGION="${2:?--cluster-region needs a value}"; shift 2 ;;
      --name) FUNCTION_NAME="${2:?--name needs a value}"; shift 2 ;;
      --schedule) SCHEDULE="${2:?--schedule needs a value}"; shift 2 ;;
      --time-zone) TIME_ZONE="${2:?--time-zone needs a value}"; shift 2 ;;
      --job) JOB_NAME="${2:?--job needs a value}"; shift 2 ;;
      --pool-size) POOL_SIZE="${2:?--pool-size needs a value}"; shift 2 ;;
      --connection-budget) CONNECTION_BUDGET="${2:?--connection-budget needs a value}"; shift 2 ;;
      --max-instances) MAX_INSTANCES="${2:?--max-instances needs a value}"; shift 2 ;;
      --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
      --attempt-deadline) ATTEMPT_DEADLINE="${2:?--attempt-deadline needs a value}"; shift 2 ;;
      --ingress) INGRESS="${2:?--ingress needs a value}"; shift 2 ;;
      --runtime) RUNTIME="${2:?--runtime needs a value}"; shift 2 ;;
      --memory) MEMORY="${2:?--memory needs a value}"; shift 2 ;;
      --cpu) CPU="${2:?--cpu needs a value}"; shift 2 ;;
      --secret-delivery) SECRET_DELIVERY="${2:?--secret-delivery needs a value}"; shift 2 ;;
      --secret-locations) SECRET_LOCATIONS="${2:?--secret-locations needs a value}"; shift 2 ;;
      --vpc-connector) VPC_CONNECTOR="${2:?--vpc-connector needs a value}"; shift 2 ;;
      --egress-settings) EGRESS_SETTINGS="${2:?--egress-settings needs a value}"; shift 2 ;;
      --no-smoke-test) SMOKE_TEST=false; shift ;;
      --smoke-test-only) MODE=smoke; shift ;;
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
  [ -n "${PROJECT}" ] || die "set --project (or PROJECT)"
  [[ "${PROJECT}" =~ ^[a-z][-a-z0-9.:]{4,61}[a-z0-9]$ ]] || die "--project '${PROJECT}' is not a project id"
  # Service account ids are 6 to 30 characters: <name>-invoker must fit.
  [[ "${FUNCTION_NAME}" =~ ^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$ ]] \
    || die "--name must be 1 to 22 lowercase letters, digits or hyphens, starting with a letter (it also names the service accounts), got '${FUNCTION_NAME}'"
  [[ "${SECRET}" =~ ^[A-Za-z0-9_-]{1,255}$ ]] || die "--secret must be letters, digits, - or _, got '${SECRET}'"
  JOB_NAME="${JOB_NAME:-${FUNCTION_NAME}-schedule}"
  [[ "${JOB_NAME}" =~ ^[A-Za-z0-9_-]{1,500}$ ]] || die "--job must be letters, digits, - or _, got '${JOB_NAME}'"
  [[ "${RUNTIME}" =~ ^python3[0-9]{1,2}$ ]] || die "--runtime must be a Python runtime such as python313, got '${RUNTIME}'"
  case "${INGRESS}" in all|internal-only|internal-and-gclb) ;; *) die "--ingress must be all, internal-only or internal-and-gclb" ;; esac
  case "${SECRET_DELIVERY}" in file|client) ;; *) die "--secret-delivery must be file or client, got '${SECRET_DELIVERY}'" ;; esac
  if [ -n "${SECRET_LOCATIONS}" ] && ! [[ "${SECRET_LOCATIONS}" =~ ^[a-z]+-[a-z]+[0-9]+(,[a-z]+-[a-z]+[0-9]+)*$ ]]; then
    die "--secret-locations must be regions separated by commas, e.g. us-east1,us-central1, got '${SECRET_LOCATIONS}'"
  fi
}

check_numbers() {
  decimal POOL_SIZE --pool-size 1 1000  # Cloud Run's concurrency limit
  decimal CONNECTION_BUDGET --connection-budget 1 100000
  if [ -z "${MAX_INSTANCES}" ]; then
    MAX_INSTANCES=$((CONNECTION_BUDGET / POOL_SIZE))
    [ "${MAX_INSTANCES}" -ge 1 ] \
      || die "--connection-budget (${CONNECTION_BUDGET}) is smaller than --pool-size (${POOL_SIZE}): not one instance fits"
    if [ "${MAX_INSTANCES}" -gt 1000 ]; then MAX_INSTANCES=1000; fi
  fi
  decimal MAX_INSTANCES --max-instances 1 1000
  [ "$((MAX_INSTANCES * POOL_SIZE))" -le "${CONNECTION_BUDGET}" ] \
    || die "--max-instances ${MAX_INSTANCES} x --pool-size ${POOL_SIZE} = $((MAX_INSTANCES * POOL_SIZE)) connections, over the --connection-budget of ${CONNECTION_BUDGET}"
  decimal TIMEOUT --timeout 1 3600  # 2nd gen HTTP functions: at most 60 minutes
  ATTEMPT_DEADLINE="${ATTEMPT_DEADLINE:-$((TIMEOUT + 30))}"
  decimal ATTEMPT_DEADLINE "--attempt-deadline (default --timeout + 30)" 15 1800  # Scheduler, HTTP targets
  # Scheduler must give up after the function does, or a slow attempt is retried while it runs.
  [ "${ATTEMPT_DEADLINE}" -gt "${TIMEOUT}" ] \
    || die "--attempt-deadline (${ATTEMPT_DEADLINE}s) must be longer than --timeout (${TIMEOUT}s); Scheduler waits at most 1800s, so --timeout may be at most 1799"
  decimal DEPLOY_BACKOFF_MS DEPLOY_BACKOFF_MS 1 60000
  decimal DEPLOY_IAM_RETRY_SECONDS DEPLOY_IAM_RETRY_SECONDS 0 3600
  decimal DEPLOY_SMOKE_RETRY_SECONDS DEPLOY_SMOKE_RETRY_SECONDS 0 3600
}

# Memory and CPU as Cloud Run allows them (https://cloud.google.com/run/docs/configuring/services/cpu,
# read 2026-11-27): below 1 vCPU an instance serves one request at a time and may have at most
# 512 MiB (below 0.5 vCPU) or 1 GiB; above 1 vCPU only 2, 4, 6 or 8, each with its memory range.
check_resources() {
  [[ "${MEMORY}" =~ ^([0-9]{1,6})(Mi|Gi)$ ]] || die "--memory must be a size in Mi or Gi, e.g. 256Mi or 1Gi, got '${MEMORY}'"
  MEMORY_MIB=$((10#${BASH_REMATCH[1]}))
  if [ "${BASH_REMATCH[2]}" = Gi ]; then MEMORY_MIB=$((MEMORY_MIB * 1024)); fi
  [ "${MEMORY_MIB}" -ge 128 ] && [ "${MEMORY_MIB}" -le 32768 ] || die "--memory must be from 128Mi to 32Gi, got ${MEMORY}"
  if [ -z "${CPU}" ] && [ "${POOL_SIZE}" -gt 1 ]; then
    CPU=1
    CPU_WHY="--pool-size ${POOL_SIZE} serves requests concurrently, which needs a whole vCPU"
  elif [ -z "${CPU}" ] && [ "${MEMORY_MIB}" -le 512 ]; then
    CPU="${DEFAULT_CPU}"
    CPU_WHY="the default: half the platform share's cold start, at about the same cost per cold start"
  elif [ -z "${CPU}" ]; then
    CPU="$(platform_cpu "${MEMORY_MIB}")"
    CPU_WHY="the platform's share for ${MEMORY}"
  fi
  local millis
  if [[ "${CPU}" =~ ^0?\.([0-9]{1,3})$ ]]; then
    local digits="${BASH_REMATCH[1]}00"  # thousandths: .5 -> 500, .333 -> 333
    millis=$((10#${digits:0:3}))
  elif [[ "${CPU}" =~ ^[12468]$ ]]; then
    millis=$((CPU * 1000))
  else
    die "--cpu must be a fraction from 0.08 to 0.999, or 1, 2, 4, 6 or 8, got '${CPU}'"
  fi
  [ "${millis}" -ge 80 ] || die "--cpu must be at least 0.08, got ${CPU}"
  if [ "${millis}" -lt 1000 ]; then
    [ "${POOL_SIZE}" -eq 1 ] || die "--cpu ${CPU} serves one request at a time: --pool-size ${POOL_SIZE} needs --cpu 1 or more"
    [ "${MEMORY_MIB}" -le "$((millis < 500 ? 512 : 1024))" ] \
      || die "--cpu ${CPU} allows at most $((millis < 500 ? 512 : 1024))Mi of memory, got ${MEMORY}"
  else
    local low=128 high=4096
    case "${CPU}" in 2) high=8192 ;; 4) low=2048 high=16384 ;; 6) low=4096 high=24576 ;; 8) low=4096 high=32768 ;; esac
    [ "${MEMORY_MIB}" -ge "${low}" ] && [ "${MEMORY_MIB}" -le "${high}" ] \
      || die "--cpu ${CPU} needs from ${low}Mi to ${high}Mi of memory, got ${MEMORY}"
  fi
}

# The share Cloud Functions gives a memory size when no CPU is named, for the next size up
# (https://cloud.google.com/functions/docs/configuring/memory, read 2026-11-27): stated on
# every deploy, because an update without --cpu keeps the function's old value.
platform_cpu() {
  local tier share
  for tier in 1024:0.583 2048:1 8192:2 16384:4 32768:8; do
    share="${tier#*:}"
    if [ "$1" -le "${tier%%:*}" ]; then break; fi
  done
  printf '%s\n' "${share}"
}

check_network() {
  if [ -z "${VPC_CONNECTOR}" ]; then
    [ -z "${EGRESS_SETTINGS}" ] || die "--egress-settings needs --vpc-connector"
    return 0
  fi
  [[ "${VPC_CONNECTOR}" =~ ^([a-z][-a-z0-9]{0,23}[a-z0-9]|projects/[^/]+/locations/[^/]+/connectors/[a-z][-a-z0-9]{0,23}[a-z0-9])$ ]] \
    || die "--vpc-connector must be a connector name or projects/P/locations/R/connectors/NAME, got '${VPC_CONNECTOR}'"
  EGRESS_SETTINGS="${EGRESS_SETTINGS:-all}"
  case "${EGRESS_SETTINGS}" in all|private-ranges-only) ;; *) die "--egress-settings must be all or private-ranges-only" ;; esac
}

check_modes() {
  if [ "${DELETE_SECRET}" = true ] && [ "${MODE}" != delete ]; then die "--delete-secret goes with --delete"; fi
  if [ "${MODE}" != deploy ] && [ "${DSN_FROM_STDIN}" = true ]; then die "--dsn-stdin is for deploying"; fi
}

check_tools() {
  command -v gcloud >/dev/null || die "gcloud is not installed: https://cloud.google.com/sdk/docs/install"
  find_python "${HERE}"
}

check_logged_in() {
  [ "${DRY_RUN}" = false ] || return 0
  gcloud auth print-access-token --quiet >/dev/null 2>&1 \
    || die "gcloud is not logged in: run 'gcloud auth login' (or activate a service account)"
}

# ---------------------------------------------------------------- the DSN and the region

# The DSN stays in the variable DSN: never a command argument, never printed.
# The function's own DSN translation, on the DSN from standard input.
check_dsn() {
  printf '%s' "$1" | (cd "${HERE}" && "${PYTHON}" -m deploy.dsn_check) || exit 2
}

# Where the cluster is (CLUSTER_LOCATION, e.g. aws-us-east-1) and its name (CLUSTER_NAME, for
# the labels), before any change. The DSN the function will use is checked whether it comes now
# or is already stored: deploying without one reads the secret's latest version.
locate_cluster() {
  local dsn_for_region="${DSN}" located
  if [ -z "${DSN}" ] && { [ "${MODE}" = deploy ] || [ -z "${REGION}${CLUSTER_REGION}" ]; }; then
    if [ "${DRY_RUN}" = true ]; then
      [ -n "${REGION}${CLUSTER_REGION}" ] || die "--dry-run needs REGION, CLUSTER_REGION or a DSN to choose the region"
    else
      dsn_for_region="$(gcloud secrets versions access latest --secret "${SECRET}" --project "${PROJECT}" --quiet 2>/dev/null)" \
        || die "cannot read a DSN from secret ${SECRET}: give the DSN (DATABASE_URL or --dsn-stdin)$([ "${MODE}" = deploy ] || printf ', or set REGION or CLUSTER_REGION')"
      if [ "${MODE}" = deploy ]; then check_dsn "${dsn_for_region}"; fi
    fi
  fi
  located="$(printf '%s' "${dsn_for_region}" | (cd "${HERE}" && "${PYTHON}" -m deploy.region --locate --dsn-stdin \
    --region "${REGION}" --cluster-region "${CLUSTER_REGION}"))" || exit 2
  IFS=$'\t' read -r CLUSTER_LOCATION CLUSTER_NAME <<<"${located}"
  LABELS="function=${FUNCTION_NAME},managed-by=deploy-sh${CLUSTER_NAME:+,cluster=${CLUSTER_NAME}}"
}

# The function's region: REGION if offered, else the cluster's region if it offers Cloud Functions,
# else the nearest offered region. Google is asked which regions offer functions (the Cloud
# Functions API's locations), so a region Google opens or closes needs no change here.
choose_function_region() {
  local offered="" choice args=(--cluster-region "${CLUSTER_LOCATION}" --region "${REGION}")
  if [ "${MODE}" != deploy ] && [ -n "${REGION}" ]; then return 0; fi  # where it was deployed
  if [ "${DRY_RUN}" = true ]; then
    printf 'Cloud Functions regions: not asked in a dry run; a real run asks: gcloud functions regions list --gen2 --project %s (here: every region deploy/regions.py knows)\n' "${PROJECT}"
  else
    offered="$(gcloud functions regions list --gen2 --project "${PROJECT}" --quiet --format 'value(locationId)' | paste -sd, -)" \
      || die "cannot list the regions offering Cloud Functions (gcloud functions regions list --gen2)"
    [ -n "${offered}" ] || die "Cloud Functions (2nd gen) offers no region to project ${PROJECT}"
    args+=(--offered "${offered}")
  fi
  choice="$(cd "${HERE}" && "${PYTHON}" -m deploy.region "${args[@]}")" || exit 2
  IFS=$'\t' read -r REGION DISTANCE_KM REGION_WHY <<<"${choice}"
  printf 'region: %s (%s' "${REGION}" "${REGION_WHY}"
  [ "${DISTANCE_KM}" = "0" ] || printf '; %s km from the cluster' "${DISTANCE_KM}"
  printf ')\n'
}

set_names() {
  RUNTIME_SA="${FUNCTION_NAME}-runtime@${PROJECT}.iam.gserviceaccount.com"
  INVOKER_SA="${FUNCTION_NAME}-invoker@${PROJECT}.iam.gserviceaccount.com"
  BUILD_SA="${FUNCTION_NAME}-build@${PROJECT}.iam.gserviceaccount.com"
  SECRET_VERSION="projects/${PROJECT}/secrets/${SECRET}/versions/latest"
}

# ---------------------------------------------------------------- running gcloud

# A gcloud command that changes something, or its printout in --dry-run. Arguments never hold secrets.
run() {
  if [ "${DRY_RUN}" = true ]; then
    printf '+'; printf ' %q' gcloud "$@" --project "${PROJECT}"; printf '\n'
    return 0
  fi
  # --format none: gcloud reports each step on stderr; the resources' YAML is noise here.
  gcloud "$@" --project "${PROJECT}" --quiet --format none
}

# Ask gcloud whether something exists (in --dry-run: assume not, to show the creating path).
exists() {
  [ "${DRY_RUN}" = false ] && gcloud "$@" --project "${PROJECT}" --quiet --format none >/dev/null 2>&1
}


# Grant a role ($1 describes it). IAM learns of a new service account seconds to minutes after
# its creation; until then a binding naming it is refused with "Service account X does not
# exist." (400 INVALID_ARGUMENT). That error, and only that one, is retried with doubling waits
# for DEPLOY_IAM_RETRY_SECONDS (https://cloud.google.com/iam/docs/retry-strategy).
grant() {
  local what="$1" error started="${SECONDS}"
  shift
  if [ "${DRY_RUN}" = true ]; then run "$@"; return 0; fi
  BACKOFF_MS="${DEPLOY_BACKOFF_MS}"
  while ! error="$(gcloud "$@" --project "${PROJECT}" --quiet --format none 2>&1)"; do
    if ! [[ "${error}" =~ Service\ account\ ([^[:space:]]+)\ does\ not\ exist ]]; then
      printf '%s\n' "${error}" >&2
      die "could not grant ${what}"
    fi
    if [ "$((SECONDS - started))" -ge "${DEPLOY_IAM_RETRY_SECONDS}" ]; then
      die "IAM still says ${BASH_REMATCH[1]} does not exist after ${DEPLOY_IAM_RETRY_SECONDS}s of retries. A new service account usually propagates within minutes: run deploy.sh again (every step is safe to repeat); if it persists, check that the account exists: gcloud iam service-accounts describe ${BASH_REMATCH[1]} --project ${PROJECT}"
    fi
    printf '  IAM does not know %s yet (new service accounts take a while to propagate); retrying in %sms\n' \
      "${BASH_REMATCH[1]}" "${BACKOFF_MS}"
    sleep_ms "${BACKOFF_MS}"
    next_backoff
  done
  printf '  granted %s\n' "${what}"
}

# Delete something ($1 describes it) if it is there: "not found" means done already.
remove() {
  local what="$1" error
  shift
  if [ "${DRY_RUN}" = true ]; then run "$@"; return 0; fi
  if error="$(gcloud "$@" --project "${PROJECT}" --quiet --format none 2>&1)"; then
    printf '  removed %s\n' "${what}"
  elif [[ "${error}" =~ NOT_FOUND|[Nn]ot\ found|was\ not\ found|does\ not\ exist|SERVICE_DISABLED|has\ not\ been\ used\ in\ project ]]; then
    printf '  %s: not there (nothing to do)\n' "${what}"
  else
    printf '%s\n' "${error}" >&2
    die "could not remove ${what}"
  fi
}

# ---------------------------------------------------------------- what the project offers

# Cloud Scheduler runs in fewer regions than Cloud Functions, and a job may call a function in
# another region (https://cloud.google.com/scheduler/docs/locations, read 2026-11-27).
choose_scheduler_location() {
  local offered choice
  if [ "${DRY_RUN}" = true ]; then
    SCHEDULER_LOCATION="${REGION}"
    printf 'Cloud Scheduler: assuming %s (a real run lists the locations Scheduler offers)\n' "${REGION}"
    return 0
  fi
  offered="$(gcloud scheduler locations list --project "${PROJECT}" --quiet --format 'value(locationId)' | paste -sd, -)" \
    || die "cannot list Cloud Scheduler's locations"
  [ -n "${offered}" ] || die "Cloud Scheduler offers no location to this project"
  choice="$(cd "${HERE}" && "${PYTHON}" -m deploy.region --nearest-of "${offered}" --to "${REGION}")" || exit 2
  IFS=$'\t' read -r SCHEDULER_LOCATION SCHEDULER_KM <<<"${choice}"
  if [ "${SCHEDULER_LOCATION}" = "${REGION}" ]; then
    printf 'Cloud Scheduler: offered in %s\n' "${REGION}"
  else
    printf 'Cloud Scheduler: not offered in %s; the job goes to %s, the nearest offered location (%s km away)\n' \
      "${REGION}" "${SCHEDULER_LOCATION}" "${SCHEDULER_KM}"
  fi
}

check_vpc_connector() {
  [ -n "${VPC_CONNECTOR}" ] || return 0
  if [[ "${VPC_CONNECTOR}" == projects/* ]] && [[ "${VPC_CONNECTOR}" != */locations/${REGION}/* ]]; then
    die "--vpc-connector ${VPC_CONNECTOR} is not in the function's region ${REGION}"
  fi
  [ "${DRY_RUN}" = false ] || return 0
  local state
  state="$(gcloud compute networks vpc-access connectors describe "${VPC_CONNECTOR##*/}" --region "${REGION}" \
    --project "${PROJECT}" --quiet --format 'value(state)' 2>/dev/null)" \
    || die "no Serverless VPC Access connector '${VPC_CONNECTOR##*/}' in ${REGION}: create it first (docs/deploy.md, \"Reaching the cluster\")"
  [ "${state}" = READY ] || die "VPC connector ${VPC_CONNECTOR##*/} is ${state:-in an unknown state}, not READY"
  printf 'VPC connector: %s (READY), egress %s\n' "${VPC_CONNECTOR##*/}" "${EGRESS_SETTINGS}"
}

# ---------------------------------------------------------------- deploy steps

enable_apis() {
  step "1. enable the APIs"
  local apis=("${APIS[@]}")
  [ -z "${VPC_CONNECTOR}" ] || apis+=(vpcaccess.googleapis.com)
  run services enable "${apis[@]}"
  [ "${DRY_RUN}" = true ] || printf 'enabled: %s\n' "${apis[*]%%.googleapis.com}"
}

create_secret() {
  local replication=(--replication-policy automatic --labels "${LABELS}") error
  [ -z "${SECRET_LOCATIONS}" ] || replication=(--replication-policy user-managed --locations "${SECRET_LOCATIONS}" --labels "${LABELS}")
  if [ "${DRY_RUN}" = true ]; then run secrets create "${SECRET}" "${replication[@]}"; return 0; fi
  if ! error="$(gcloud secrets create "${SECRET}" "${replication[@]}" --project "${PROJECT}" --quiet --format none 2>&1)"; then
    printf '%s\n' "${error}" >&2
    if [[ "${error}" == *constraints/gcp.resourceLocations* ]]; then
      die "your organisation restricts where resources may live, and automatic replication is global: pass --secret-locations with allowed regions, e.g. --secret-locations ${REGION}"
    fi
    die "could not create secret ${SECRET}"
  fi
  printf 'created secret %s (%s replication)\n' "${SECRET}" "${SECRET_LOCATIONS:-automatic}"
}

# A secret made before labels, or for another cluster, gets this deployment's labels; $1 is what
# gcloud shows of its labels now (key=value;key=value).
label_secret() {
  local pairs pair
  IFS=, read -ra pairs <<<"${LABELS}"
  for pair in "${pairs[@]}"; do
    if [[ ";$1;" != *";${pair};"* ]]; then
      run secrets update "${SECRET}" --update-labels "${LABELS}"
      printf 'labelled secret %s: %s\n' "${SECRET}" "${LABELS}"
      return 0
    fi
  done
}

store_secret() {
  step "3. secret ${SECRET}"
  local existed=false current="" labels
  if [ "${DRY_RUN}" = false ] && labels="$(gcloud secrets describe "${SECRET}" --project "${PROJECT}" --quiet \
    --format 'value(labels)' 2>/dev/null)"; then
    existed=true
    label_secret "${labels}"
  else
    create_secret
  fi
  if [ -n "${DSN}" ]; then
    if [ "${DRY_RUN}" = true ]; then
      printf '+ gcloud secrets versions add %q --data-file - <<< (the DSN, if it differs from the latest version)\n' "${SECRET}"
    else
      if [ "${existed}" = true ]; then
        current="$(gcloud secrets versions access latest --secret "${SECRET}" --project "${PROJECT}" --quiet 2>/dev/null)" || current=""
      fi
      if [ "${existed}" = true ] && [ "${current}" = "${DSN}" ]; then
        printf 'the DSN equals the latest version: no new version\n'
      else
        printf '%s' "${DSN}" | gcloud secrets versions add "${SECRET}" --data-file - --project "${PROJECT}" --quiet --format none
      fi
    fi
  fi
  unset DSN current
}

create_service_accounts() {
  step "4. service accounts"
  local existing="" account name
  if [ "${DRY_RUN}" = false ]; then
    existing="$(gcloud iam service-accounts list --project "${PROJECT}" --quiet --format 'value(email)')"
  fi
  for account in "${RUNTIME_SA}:runtime identity of ${FUNCTION_NAME}" \
    "${INVOKER_SA}:Cloud Scheduler caller of ${FUNCTION_NAME}" "${BUILD_SA}:builds ${FUNCTION_NAME}"; do
    name="${account%%@*}"
    if grep -qxF "${account%%:*}" <<<"${existing}"; then
      printf '%s exists\n' "${name}"
    else
      run iam service-accounts create "${name}" --display-name "${account#*:}"
    fi
  done
}

# A build service account of its own, holding the one role a function build needs: since
# mid-2024 new projects build as the Compute Engine default account, which holds no role.
# The runtime account may read the one secret, not the project's others.
grant_roles() {
  step "5. roles"
  grant "${BUILD_ROLE} on the project to ${FUNCTION_NAME}-build" projects add-iam-policy-binding "${PROJECT}" \
    --member "serviceAccount:${BUILD_SA}" --role "${BUILD_ROLE}" --condition None
  grant "roles/secretmanager.secretAccessor on ${SECRET} to ${FUNCTION_NAME}-runtime" \
    secrets add-iam-policy-binding "${SECRET}" --member "serviceAccount:${RUNTIME_SA}" \
    --role roles/secretmanager.secretAccessor
}

deploy_function() {
  step "6. deploy ${FUNCTION_NAME} to ${REGION}"
  local env_vars="GOOGLE_CLOUD_PROJECT=${PROJECT},DB_POOL_SIZE=${POOL_SIZE}" args
  args=(functions deploy "${FUNCTION_NAME}" --gen2 --region "${REGION}" --runtime "${RUNTIME}"
    --source "${HERE}" --entry-point handler --trigger-http --no-allow-unauthenticated
    --service-account "${RUNTIME_SA}" --build-service-account "projects/${PROJECT}/serviceAccounts/${BUILD_SA}"
    --concurrency "${POOL_SIZE}" --max-instances "${MAX_INSTANCES}" --timeout "${TIMEOUT}s"
    --ingress-settings "${INGRESS}" --memory "${MEMORY}" --cpu "${CPU}" --serve-all-traffic-latest-revision
    --update-labels "${LABELS}")
  if [ "${SECRET_DELIVERY}" = file ]; then
    # Cloud Run reads a mounted secret from Secret Manager when the file is read, so
    # `latest` follows a rotation without a redeploy.
    env_vars+=",DATABASE_URL_FILE=${SECRET_MOUNT}"
    args+=(--set-secrets "${SECRET_MOUNT}=${SECRET}:latest")
  else
    env_vars+=",DATABASE_URL_SECRET=${SECRET_VERSION}"
    args+=(--clear-secrets)
  fi
  if [ -n "${VPC_CONNECTOR}" ]; then
    args+=(--vpc-connector "${VPC_CONNECTOR}" --egress-settings "${EGRESS_SETTINGS}")
  else
    args+=(--clear-vpc-connector)
  fi
  args+=(--set-env-vars "${env_vars}")
  if [ "${DRY_RUN}" = true ]; then
    run "${args[@]}"
    URL="https://${FUNCTION_NAME}-PROJECT_NUMBER.${REGION}.run.app"  # the run.app URL the job calls
  else
    URL="$(gcloud "${args[@]}" --project "${PROJECT}" --quiet --format 'value(serviceConfig.uri)')"
  fi
}

grant_invoker() {
  step "7. ${FUNCTION_NAME}-invoker may invoke ${FUNCTION_NAME}"
  grant "roles/run.invoker on ${FUNCTION_NAME} to ${FUNCTION_NAME}-invoker" \
    functions add-invoker-policy-binding "${FUNCTION_NAME}" --region "${REGION}" --member "serviceAccount:${INVOKER_SA}"
}

schedule_job() {
  step "8. Cloud Scheduler job ${JOB_NAME} in ${SCHEDULER_LOCATION}"
  # Retries are safe: a retried delivery has the same X-CloudScheduler-ScheduleTime,
  # hence the same event id, and inserts nothing new.
  local retry_policy=(--max-retry-attempts 3 --min-backoff 10s --max-backoff 300s --max-doublings 4
    --attempt-deadline "${ATTEMPT_DEADLINE}s")
  local target=(--location "${SCHEDULER_LOCATION}" --schedule "${SCHEDULE}" --time-zone "${TIME_ZONE}" --uri "${URL}"
    --http-method POST --oidc-service-account-email "${INVOKER_SA}" --oidc-token-audience "${URL}"
    --description "${LABELS//,/ } (Cloud Scheduler jobs take no labels)")
  if exists scheduler jobs describe "${JOB_NAME}" --location "${SCHEDULER_LOCATION}"; then
    # `update http` takes --update-headers where `create http` takes --headers.
    run scheduler jobs update http "${JOB_NAME}" "${target[@]}" \
      --update-headers Content-Type=application/json "${retry_policy[@]}"
    [ "${DRY_RUN}" = true ] || printf 'updated job %s\n' "${JOB_NAME}"
  else
    run scheduler jobs create http "${JOB_NAME}" "${target[@]}" \
      --headers Content-Type=application/json "${retry_policy[@]}"
    [ "${DRY_RUN}" = true ] || printf 'created job %s: POST %s as %s\n' "${JOB_NAME}" "${URL}" "${INVOKER_SA}"
  fi
}

# ---------------------------------------------------------------- smoke test

# An identity token for the deployer. A service account's must name the function's URL as its
# audience; a user account's (audience: gcloud itself) is accepted by Cloud Run as it is, and
# gcloud refuses --audiences for one (https://cloud.google.com/run/docs/authenticating/developers).
identity_token() {
  gcloud auth print-identity-token --audiences "${URL}" --quiet 2>/dev/null \
    || gcloud auth print-identity-token --quiet
}

# The deployed function's URL and ingress (--smoke-test-only tests what is there, not the flags).
function_url() {
  local described ingress
  described="$(gcloud functions describe "${FUNCTION_NAME}" --region "${REGION}" --project "${PROJECT}" --quiet \
    --format 'value(serviceConfig.uri,serviceConfig.ingressSettings)' 2>/dev/null)" \
    || die "no function ${FUNCTION_NAME} in ${REGION} to test"
  IFS=$'\t' read -r URL ingress <<<"${described}"
  case "${ingress}" in
    ALLOW_INTERNAL_ONLY) INGRESS=internal-only ;;
    ALLOW_INTERNAL_AND_GCLB) INGRESS=internal-and-gclb ;;
    *) INGRESS=all ;;
  esac
}

# Why the smoke test cannot reach the function from here, or nothing. Cloud Run counts Cloud
# Scheduler in the same project, calling the run.app URL, as internal; a deployer's machine is not
# (https://cloud.google.com/run/docs/securing/ingress, read 2026-12-07).
smoke_unreachable() {
  local job="gcloud scheduler jobs run ${JOB_NAME} --location ${SCHEDULER_LOCATION:-LOCATION} --project ${PROJECT}"
  case "${INGRESS}" in
    internal-only) printf 'skipped: --ingress internal-only admits only requests from inside project %s (its VPC networks, and Cloud Scheduler calling the run.app URL), not from this machine, so a call from here is refused whatever the function does; check the job instead: %s' "${PROJECT}" "${job}" ;;
    internal-and-gclb) printf 'skipped: --ingress internal-and-gclb admits requests from inside project %s and through a Cloud Load Balancer only, not from this machine; call it through your load balancer, or check the job: %s' "${PROJECT}" "${job}" ;;
  esac
}

# GET / once as the deployer: 200 is done; 401/403 while IAM propagates is retried for
# DEPLOY_SMOKE_RETRY_SECONDS; 503 shows the function's last ERROR log line and the likely causes.
smoke_test() {
  step "9. smoke test: GET / as the deployer"
  local token result status started="${SECONDS}" skipped
  skipped="$(smoke_unreachable)"
  if [ -n "${skipped}" ]; then printf 'smoke test %s\n' "${skipped}"; return 0; fi
  if [ "${DRY_RUN}" = true ]; then printf '+ GET %s with an identity token\n' "${URL}"; return 0; fi
  token="$(identity_token)" || die "no identity token for the smoke test (skip it with --no-smoke-test)"
  BACKOFF_MS="${DEPLOY_BACKOFF_MS}"
  while :; do
    result="$(printf '%s' "${token}" | (cd "${HERE}" && "${PYTHON}" -m deploy.smoke "${URL}"))"
    status="${result%%$'\t'*}"
    printf 'smoke test: %s %s\n' "${status}" "${result#*$'\t'}"
    case "${status}" in
      200) return 0 ;;
      401|403)
        if [ "$((SECONDS - started))" -ge "${DEPLOY_SMOKE_RETRY_SECONDS}" ]; then
          die "the function still refuses the deployer after ${DEPLOY_SMOKE_RETRY_SECONDS}s: you need run.routes.invoke on it (roles/run.invoker); run ./deploy.sh --smoke-test-only later"
        fi
        printf '  IAM still propagating for the new function; retrying in %sms\n' "${BACKOFF_MS}"
        sleep_ms "${BACKOFF_MS}"
        next_backoff ;;
      503) explain_503 ;;
      0) die "the smoke test could not reach the function: ${result#*$'\t'}" ;;
      *) die "the function answered ${status}: see gcloud functions logs read ${FUNCTION_NAME} --region ${REGION} --project ${PROJECT}" ;;
    esac
  done
}

# What the function logged when it answered 503, and what usually causes it.
explain_503() {
  local line causes
  line="$(gcloud logging read "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${FUNCTION_NAME}\" AND severity>=ERROR" \
    --project "${PROJECT}" --limit 1 --freshness 1h --quiet --format 'value(jsonPayload.message,textPayload)' 2>/dev/null)" || line=""
  line="$(printf '%s' "${line}" | tr '\t' ' ' | sed 's/^ *//;s/ *$//')"  # one of the two fields is empty
  printf "the function's last ERROR log line: %s\n" "${line:-(none yet; logs can lag a minute)}"
  local allowlist="the cluster refuses this function's address: CockroachDB Standard and Advanced accept only allowlisted addresses or private connectivity; egress through --vpc-connector with Cloud NAT on a static IP and allowlist that IP (docs/deploy.md, \"Reaching the cluster\")"
  local ca="the CA: sslrootcert must name a CA file shipped with the code (e.g. db/certs/ca.crt) or be sslrootcert=system"
  local secret="the secret: ${FUNCTION_NAME}-runtime must read ${SECRET}, and its latest version must hold the DSN"
  case "${line}" in
    *[Cc]ertificate*|*SSL*|*ssl*) causes=("${ca}" "${allowlist}" "${secret}") ;;
    *configuration*|*[Ss]ecret*|*DATABASE_URL*) causes=("${secret}" "${ca}" "${allowlist}") ;;
    *) causes=("${allowlist}" "${ca}" "${secret}") ;;
  esac
  printf 'likely causes, most likely first:\n'
  printf '  - %s\n' "${causes[@]}"
  printf 'after fixing, check again with: ./deploy.sh --project %s --region %s --smoke-test-only\n' "${PROJECT}" "${REGION}"
  exit 1
}

summary() {
  step "done"
  local mount="" cpu="${CPU:-the platform share of} vCPU${CPU_WHY:+ (${CPU_WHY})}"
  local egress="shared platform addresses (no VPC connector)"
  if [ "${SECRET_DELIVERY}" = file ]; then mount=" (${SECRET_MOUNT})"; fi
  if [ -n "${VPC_CONNECTOR}" ]; then egress="${VPC_CONNECTOR} (${EGRESS_SETTINGS})"; fi
  cat <<EOF
region:            ${REGION} (${REGION_WHY})
function:          ${FUNCTION_NAME}, private (--no-allow-unauthenticated), ingress ${INGRESS}, ${RUNTIME}
url:               ${URL}
resources:         ${MEMORY}, ${cpu}
secret:            ${SECRET}, delivered as ${SECRET_DELIVERY}${mount}
runtime account:   ${RUNTIME_SA} (reads secret ${SECRET} only)
build account:     ${BUILD_SA} (${BUILD_ROLE})
invoker account:   ${INVOKER_SA} (roles/run.invoker on ${FUNCTION_NAME})
schedule:          ${JOB_NAME} in ${SCHEDULER_LOCATION}: "${SCHEDULE}" ${TIME_ZONE}, OIDC, 3 retries, deadline ${ATTEMPT_DEADLINE}s
connection budget: ${CONNECTION_BUDGET} >= max ${MAX_INSTANCES} instances x pool size ${POOL_SIZE}
egress:            ${egress}
labels:            ${LABELS} (function, secret; job description)
EOF
}

# ---------------------------------------------------------------- teardown

# The job is where deploy.sh would put it now: in the function's region if Scheduler is offered
# there, else in the nearest offered location; an earlier run may have used that nearest other
# location before Scheduler came to the function's region, so it is looked for there too.
teardown_job() {
  step "delete the Cloud Scheduler job ${JOB_NAME}"
  local offered="" others locations=() location
  if [ "${DRY_RUN}" = true ]; then
    offered="${REGION}"
  else
    offered="$(gcloud scheduler locations list --project "${PROJECT}" --quiet --format 'value(locationId)' 2>/dev/null)" || offered=""
  fi
  if [ -z "${offered}" ]; then
    printf '  Cloud Scheduler is not enabled here: no job to delete\n'
    return 0
  fi
  if grep -qxF "${REGION}" <<<"${offered}"; then locations+=("${REGION}"); fi
  others="$(grep -vxF "${REGION}" <<<"${offered}" | paste -sd, -)" || others=""
  if [ -n "${others}" ]; then
    location="$(cd "${HERE}" && "${PYTHON}" -m deploy.region --nearest-of "${others}" --to "${REGION}" | cut -f1)" || exit 2
    locations+=("${location}")
  fi
  for location in "${locations[@]}"; do
    remove "job ${JOB_NAME} in ${location}" scheduler jobs delete "${JOB_NAME}" --location "${location}"
  done
}

teardown() {
  teardown_job
  step "delete the function ${FUNCTION_NAME} (and with it who may invoke it)"
  remove "function ${FUNCTION_NAME}" functions delete "${FUNCTION_NAME}" --region "${REGION}" --gen2
  step "remove the bindings"
  remove "${FUNCTION_NAME}-runtime's access to ${SECRET}" secrets remove-iam-policy-binding "${SECRET}" \
    --member "serviceAccount:${RUNTIME_SA}" --role roles/secretmanager.secretAccessor
  remove "${BUILD_ROLE} of ${FUNCTION_NAME}-build" projects remove-iam-policy-binding "${PROJECT}" \
    --member "serviceAccount:${BUILD_SA}" --role "${BUILD_ROLE}" --condition None
  step "delete the service accounts"
  local account
  for account in "${RUNTIME_SA}" "${INVOKER_SA}" "${BUILD_SA}"; do
    remove "${account%%@*}" iam service-accounts delete "${account}"
  done
  step "the secret ${SECRET}"
  if [ "${DELETE_SECRET}" = true ]; then
    remove "secret ${SECRET} and its versions" secrets delete "${SECRET}"
  else
    printf 'kept (it holds the DSN; add --delete-secret to delete it)\n'
  fi
  left_in_place
}

# What --delete does not remove: deploy.sh did not make it, or other workloads may share it.
left_in_place() {
  cat <<EOF

Left in place (deploy.sh did not create these, or they may serve other workloads; docs/deploy.md,
"Removing everything", has the commands):
  - the enabled APIs
  - the build images in Artifact Registry: repository gcf-artifacts in ${REGION}
  - a Serverless VPC Access connector${VPC_CONNECTOR:+ (${VPC_CONNECTOR##*/})}, its Cloud Router and Cloud NAT, if you made them for egress
  - the reserved static IP address Cloud NAT used (billed while reserved)
EOF
}

# ---------------------------------------------------------------- main

main() {
  parse_args "$@"
  check_names
  check_numbers
  check_resources
  check_network
  check_modes
  check_tools
  read_dsn
  if [ -n "${DSN}" ]; then check_dsn "${DSN}"; fi
  check_logged_in
  locate_cluster
  set_names
  case "${MODE}" in
    delete) choose_function_region; teardown; return 0 ;;
    smoke) choose_function_region; function_url; smoke_test; return 0 ;;
  esac
  enable_apis
  step "2. what the project offers (read only)"
  choose_function_region
  choose_scheduler_location
  check_vpc_connector
  store_secret
  create_service_accounts
  grant_roles
  deploy_function
  grant_invoker
  schedule_job
  if [ "${SMOKE_TEST}" = true ]; then smoke_test; fi
  summary
}

main "$@"

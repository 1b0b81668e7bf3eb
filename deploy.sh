#!/usr/bin/env bash
# Deploy the events function next to its CockroachDB cluster, private, on a schedule.
#
# usage: ./deploy.sh --project PROJECT [options]             deploy, or update in place
#        DATABASE_URL='postgresql://...' ./deploy.sh --project PROJECT   (stores the DSN first)
#        ./deploy.sh --project PROJECT --delete [--delete-secret]   remove what deploy.sh made
#        ./deploy.sh --project PROJECT --smoke-test-only            call the deployed function once
#        ./deploy.sh --project PROJECT --rollback-secret            store the previous DSN again
#
# Before the first deploy, create the table: DATABASE_URL=... .venv/bin/python -m db migrate
# (the smoke test's GET / answers 503 until the schema is applied).
#
# Every setting is a flag or an environment variable (flag wins):
#   --project P              PROJECT            GCP project (required)
#   --secret S               SECRET             Secret Manager secret holding the DSN (default events-dsn)
#   --dsn-stdin                                 read the DSN from standard input (or set DATABASE_URL;
#                                               never a flag, so it stays out of shell history and `ps`);
#                                               it is checked by the function's own parser, then stored
#                                               as a new secret version if it differs from the latest
#   --region R               REGION             GCP region; default: the cluster's, read from its host
#                                               (…gcp-us-east1.cockroachlabs.cloud). Checked against
#                                               `gcloud functions regions list`; a cluster on another
#                                               cloud, or a host naming no region, needs --region
#                                               (deploy.sh stops before any change, listing them)
#   --scheduler-location L   SCHEDULER_LOCATION Cloud Scheduler location (default: the function's region)
#   --name N                 FUNCTION_NAME      function name, at most 22 characters: it also names the
#                                               N-runtime, N-invoker and N-build service accounts
#                                               (default events)
#   --schedule CRON          SCHEDULE           Cloud Scheduler cron (default "*/5 * * * *")
#   --time-zone TZ           TIME_ZONE          schedule time zone (default Etc/UTC)
#   --job J                  JOB_NAME           Scheduler job name (default <name>-schedule)
#   --pool-size N            POOL_SIZE          connections per instance = requests per instance
#                                               (--concurrency) = gunicorn threads (THREADS),
#                                               1 to 1000 (default 1)
#   --connection-budget N    CONNECTION_BUDGET  connections the function may hold on the cluster
#                                               (default 50)
#   --max-instances N        MAX_INSTANCES      default: half the budget / pool size (50 / 2 / 1 = 25).
#                                               Set per revision and, with gcloud's beta component, as
#                                               the service-level maximum across all revisions serving
#                                               traffic. Not a hard cap: Cloud Run may exceed it
#                                               briefly, and without beta each revision of a traffic
#                                               split or rollback may run this many. The half left
#                                               over absorbs that; max x pool size <= budget is required
#   --min-instances N        MIN_INSTANCES      instances kept warm (billed while idle), 0 to max (default 0)
#   --timeout SECONDS        TIMEOUT            function timeout, 1 to 1799 (default 60): Cloud Scheduler
#                                               waits at most 1800s and must wait longer than the function
#   --attempt-deadline S     ATTEMPT_DEADLINE   how long Scheduler waits for an answer, 15 to 1800 and
#                                               longer than the timeout (default timeout + 30, at most 1800)
#   --env KEY=VALUE          (repeatable)       an environment variable for the function, e.g.
#                                               LOG_LEVEL=DEBUG; added with --update-env-vars, so variables
#                                               set earlier (by hand or by --env) are kept across deploys
#   --runtime-update-policy P RUNTIME_UPDATE_POLICY  automatic (security patches of the language runtime
#                                               applied by Google without a deploy) or on-deploy (only
#                                               when you deploy) (default automatic)
#   --image-cleanup-days N   IMAGE_CLEANUP_DAYS set a cleanup policy on the gcf-artifacts repository:
#                                               delete images older than N days, keeping the newest 5
#                                               (default: no policy; every deploy adds an image)
#   --no-alerts                                 skip the log-based metrics and alert policies
#   --notification-channel C NOTIFICATION_CHANNEL  alert policies notify this channel
#                                               (projects/P/notificationChannels/ID)
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
#   --delete                                    remove the job, the function, the metrics and alert
#                                               policies, the bindings and the service accounts, found by
#                                               their labels in every region (each step safe to repeat);
#                                               exits 1 while a function it made still serves; it says
#                                               what it leaves (APIs, images, source buckets, connector,
#                                               NAT, IP, secret)
#   --delete-secret                             with --delete: also delete the secret and its versions
#   --rollback-secret                           add the version before the latest as a new version (a bad
#                                               DSN rolled back); the function reads `latest`
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
#   1. enable the APIs;  2. check what the project offers (the function's region among those
#   offering Cloud Functions, Cloud Scheduler's location, the VPC connector);  3. the secret,
#   labelled, with a new version only if the DSN changed;  4. service accounts: runtime,
#   invoker, build;  5. roles: the build account may build, the runtime account may read that
#   one secret;  6. the function (2nd gen, private, labelled, CPU and memory stated, all traffic
#   to the new revision);  7. the invoker account may call it;  8. the Scheduler job (OIDC,
#   retries);  9. log-based metrics and alert policies;  10. the image cleanup policy, if asked;
#   11. a smoke test: GET / as the deployer.
# Labels function=<name>, cluster=<cluster>, managed-by=deploy-sh go on the function and the
# secret, and into the descriptions of the job and the service accounts (they take no labels).
# docs/deploy.md has the rest: rollback, alerts, reaching the cluster, costs.
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
  artifactregistry.googleapis.com cloudscheduler.googleapis.com logging.googleapis.com monitoring.googleapis.com)

# Found beside this script with bash alone: the checks below run before any other tool is known.
HERE="${BASH_SOURCE[0]%/*}"
[ "${HERE}" != "${BASH_SOURCE[0]}" ] || HERE=.
HERE="$(cd "${HERE}" && pwd)"
# shellcheck source=deploy/common.sh
source "${HERE}/deploy/common.sh"

PROJECT="${PROJECT:-}"
SECRET="${SECRET:-events-dsn}"
REGION="${REGION:-}"
SCHEDULER_LOCATION="${SCHEDULER_LOCATION:-}"
FUNCTION_NAME="${FUNCTION_NAME:-events}"
SCHEDULE="${SCHEDULE:-*/5 * * * *}"
TIME_ZONE="${TIME_ZONE:-Etc/UTC}"
JOB_NAME="${JOB_NAME:-}"
POOL_SIZE="${POOL_SIZE:-1}"
CONNECTION_BUDGET="${CONNECTION_BUDGET:-50}"
MAX_INSTANCES="${MAX_INSTANCES:-}"
MIN_INSTANCES="${MIN_INSTANCES:-0}"
RUNTIME_UPDATE_POLICY="${RUNTIME_UPDATE_POLICY:-automatic}"
IMAGE_CLEANUP_DAYS="${IMAGE_CLEANUP_DAYS:-}"
NOTIFICATION_CHANNEL="${NOTIFICATION_CHANNEL:-}"
ALERTS=true
EXTRA_ENV=()
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
SDK_ROOT=""  # gcloud's installation directory, found once (has_component)
SERVICE_CAP="per revision"  # where MAX_INSTANCES holds (cap_service)
OFFER_CHECKED=false
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
      --scheduler-location) SCHEDULER_LOCATION="${2:?--scheduler-location needs a value}"; shift 2 ;;
      --name) FUNCTION_NAME="${2:?--name needs a value}"; shift 2 ;;
      --schedule) SCHEDULE="${2:?--schedule needs a value}"; shift 2 ;;
      --time-zone) TIME_ZONE="${2:?--time-zone needs a value}"; shift 2 ;;
      --job) JOB_NAME="${2:?--job needs a value}"; shift 2 ;;
      --pool-size) POOL_SIZE="${2:?--pool-size needs a value}"; shift 2 ;;
      --connection-budget) CONNECTION_BUDGET="${2:?--connection-budget needs a value}"; shift 2 ;;
      --max-instances) MAX_INSTANCES="${2:?--max-instances needs a value}"; shift 2 ;;
      --min-instances) MIN_INSTANCES="${2:?--min-instances needs a value}"; shift 2 ;;
      --env) EXTRA_ENV+=("${2:?--env needs KEY=VALUE}"); shift 2 ;;
      --runtime-update-policy) RUNTIME_UPDATE_POLICY="${2:?--runtime-update-policy needs a value}"; shift 2 ;;
      --image-cleanup-days) IMAGE_CLEANUP_DAYS="${2:?--image-cleanup-days needs a value}"; shift 2 ;;
      --no-alerts) ALERTS=false; shift ;;
      --notification-channel) NOTIFICATION_CHANNEL="${2:?--notification-channel needs a value}"; shift 2 ;;
      --rollback-secret) MODE=rollback-secret; shift ;;
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
  case "${RUNTIME_UPDATE_POLICY}" in automatic|on-deploy) ;; *) die "--runtime-update-policy must be automatic or on-deploy, got '${RUNTIME_UPDATE_POLICY}'" ;; esac
  [ -z "${REGION}" ] || [[ "${REGION}" =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "--region must be a GCP region such as us-east1, got '${REGION}'"
  [ -z "${SCHEDULER_LOCATION}" ] || [[ "${SCHEDULER_LOCATION}" =~ ^[a-z]+-[a-z]+[0-9]+$ ]] \
    || die "--scheduler-location must be a GCP region such as us-east1, got '${SCHEDULER_LOCATION}'"
  [ -z "${NOTIFICATION_CHANNEL}" ] || [[ "${NOTIFICATION_CHANNEL}" =~ ^projects/[^/]+/notificationChannels/[0-9]+$ ]] \
    || die "--notification-channel must be projects/PROJECT/notificationChannels/ID (gcloud beta monitoring channels list), got '${NOTIFICATION_CHANNEL}'"
  check_env
  if [ -n "${SECRET_LOCATIONS}" ] && ! [[ "${SECRET_LOCATIONS}" =~ ^[a-z]+-[a-z]+[0-9]+(,[a-z]+-[a-z]+[0-9]+)*$ ]]; then
    die "--secret-locations must be regions separated by commas, e.g. us-east1,us-central1, got '${SECRET_LOCATIONS}'"
  fi
}

# Extra variables (--env KEY=VALUE): names the platform accepts, none deploy.sh sets itself, no
# DSN in plain text, no comma (gcloud's list separator).
check_env() {
  local pair
  for pair in "${EXTRA_ENV[@]}"; do
    [[ "${pair}" =~ ^([A-Za-z_][A-Za-z0-9_]*)=([^,]*)$ ]] || die "--env must be KEY=VALUE without a comma, got '${pair%%=*}=...'"
    case "${BASH_REMATCH[1]}" in
      DATABASE_URL*|GOOGLE_CLOUD_PROJECT|DB_POOL_SIZE|THREADS|K_*|PORT) die "--env ${BASH_REMATCH[1]} is set by deploy.sh or the platform (the DSN belongs in the secret)" ;;
    esac
  done
}

# The budget: max instances x pool size connections, with headroom. Cloud Run may run more
# instances than the maximum for a short while, and the maximum holds per revision
# (https://cloud.google.com/run/docs/configuring/max-instances), so the default keeps half.
check_numbers() {
  decimal POOL_SIZE --pool-size 1 1000  # Cloud Run's concurrency limit
  decimal CONNECTION_BUDGET --connection-budget 1 100000
  if [ -z "${MAX_INSTANCES}" ]; then
    MAX_INSTANCES=$((CONNECTION_BUDGET / 2 / POOL_SIZE))
    [ "${MAX_INSTANCES}" -ge 1 ] \
      || die "--connection-budget (${CONNECTION_BUDGET}) is smaller than twice --pool-size (${POOL_SIZE}): no instance fits with headroom (or set --max-instances)"
    if [ "${MAX_INSTANCES}" -gt 1000 ]; then MAX_INSTANCES=1000; fi
  fi
  decimal MAX_INSTANCES --max-instances 1 1000
  [ "$((MAX_INSTANCES * POOL_SIZE))" -le "${CONNECTION_BUDGET}" ] \
    || die "--max-instances ${MAX_INSTANCES} x --pool-size ${POOL_SIZE} = $((MAX_INSTANCES * POOL_SIZE)) connections, over the --connection-budget of ${CONNECTION_BUDGET}"
  decimal MIN_INSTANCES --min-instances 0 "${MAX_INSTANCES}"
  [ -z "${IMAGE_CLEANUP_DAYS}" ] || decimal IMAGE_CLEANUP_DAYS --image-cleanup-days 1 3650
  # Functions take up to 3600s, but Scheduler waits at most 1800s and must outwait the function.
  decimal TIMEOUT --timeout 1 1799
  ATTEMPT_DEADLINE="${ATTEMPT_DEADLINE:-$((TIMEOUT + 30 > 1800 ? 1800 : TIMEOUT + 30))}"
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
  # Alert policies are created with gcloud's alpha track, the only one that has them (gcloud 528).
  if [ "${MODE}" = deploy ] && [ "${ALERTS}" = true ] && [ "${DRY_RUN}" = false ]; then
    has_component alpha \
      || die "alert policies need gcloud's alpha component: gcloud components install alpha (or pass --no-alerts)"
  fi
}

# Whether gcloud's component $1 (alpha, beta) is installed. Asked of the installation, not of
# `gcloud $1`, which offers to install it and would wait. The installation is the folder above
# the bin/ that gcloud's real path is in, as gcloud's own launcher finds it; where that is not
# an installation (a wrapper such as snap's), gcloud says where it is.
has_component() {
  if [ -z "${SDK_ROOT}" ]; then
    SDK_ROOT="$(dirname "$(dirname "$(readlink -f "$(command -v gcloud)")")")"
    [ -d "${SDK_ROOT}/lib/surface" ] \
      || SDK_ROOT="$(gcloud info --format 'value(installation.sdk_root)' 2>/dev/null)" || SDK_ROOT=""
  fi
  [ -f "${SDK_ROOT}/lib/surface/$1/__init__.py" ]
}

# --smoke-test-only without --region: the region of the function deploy.sh made, by its labels.
find_region() {
  [ -z "${REGION}" ] || return 0
  local found
  found="$(deployed_functions)"
  [ -n "${found}" ] || die "no function labelled function=${FUNCTION_NAME}, managed-by=deploy-sh in project ${PROJECT}"
  [ "$(wc -l <<<"${found}")" -eq 1 ] || die "${FUNCTION_NAME} runs in several regions ($(cut -d' ' -f1 <<<"${found}" | paste -sd' ' -)): pass --region"
  REGION="${found%% *}"
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

# Where the cluster is (CLUSTER_LOCATION, e.g. gcp-us-east1, or empty when the host names
# none) and its name (CLUSTER_NAME, for the labels), before any change. The DSN the function will
# use is checked whether it comes now or is already stored.
locate_cluster() {
  local dsn="${DSN}" located
  if [ -z "${dsn}" ] && [ "${DRY_RUN}" = false ]; then
    dsn="$(gcloud secrets versions access latest --secret "${SECRET}" --project "${PROJECT}" --quiet 2>/dev/null)" \
      || die "cannot read a DSN from secret ${SECRET}: give the DSN (DATABASE_URL or --dsn-stdin)"
    check_dsn "${dsn}"
  fi
  located="$(printf '%s' "${dsn}" | (cd "${HERE}" && "${PYTHON}" -m deploy.dsn_check --locate))" || exit 2
  IFS=$'\t' read -r CLUSTER_LOCATION CLUSTER_NAME <<<"${located}"
  LABELS="${LABELS}${CLUSTER_NAME:+,cluster=${CLUSTER_NAME}}"
}

# The function's region: --region, else the cluster's own GCP region. For a cluster elsewhere the
# nearest region is the user's call: deploy.sh stops, before any change, and lists the offer.
choose_function_region() {
  local offered=""
  if [ -n "${REGION}" ]; then
    REGION_WHY="--region"
  elif [[ "${CLUSTER_LOCATION}" == gcp-* ]]; then
    REGION="${CLUSTER_LOCATION#gcp-}"
    REGION_WHY="the cluster's region, ${CLUSTER_LOCATION}"
  else
    [ "${DRY_RUN}" = true ] || offered="$(function_regions 2>/dev/null)" || offered=""
    die "the cluster is in ${CLUSTER_LOCATION:-a region its host does not name}, not in a Google Cloud region deploy.sh can read: pass --region with the Cloud Functions region nearest to it. ${offered:+Offered to project ${PROJECT}: ${offered}}${offered:-List them with: gcloud functions regions list --gen2 --project ${PROJECT} (https://cloud.google.com/functions/docs/locations)}"
  fi
  printf 'region: %s (%s)\n' "${REGION}" "${REGION_WHY}"
}

# Where Cloud Functions is offered, asked of Google, so a region it opens needs no change here.
function_regions() {
  gcloud functions regions list --gen2 --project "${PROJECT}" --quiet --format 'value(locationId)' | paste -sd' ' -
}

# Where Cloud Scheduler is offered; a job may call a function in another region
# (https://cloud.google.com/scheduler/docs/locations).
scheduler_locations() {
  gcloud scheduler locations list --project "${PROJECT}" --quiet --format 'value(locationId)' | paste -sd' ' -
}

# REGION must offer Cloud Functions and SCHEDULER_LOCATION Cloud Scheduler. Checked before step 1
# when both APIs answer ($1 = early), else right after step 1 turns them on: before anything is
# created either way.
check_offer() {
  local functions scheduler
  SCHEDULER_LOCATION="${SCHEDULER_LOCATION:-${REGION}}"
  [ "${DRY_RUN}" = false ] && [ "${OFFER_CHECKED}" = false ] || return 0
  if [ "$1" = early ]; then
    functions="$(function_regions 2>/dev/null)" && scheduler="$(scheduler_locations 2>/dev/null)" || return 0
  else
    functions="$(function_regions)" || die "cannot list the regions offering Cloud Functions (gcloud functions regions list --gen2)"
    scheduler="$(scheduler_locations)" || die "cannot list Cloud Scheduler's locations"
  fi
  OFFER_CHECKED=true
  [[ " ${functions} " == *" ${REGION} "* ]] \
    || die "Cloud Functions (2nd gen) is not offered in ${REGION} to project ${PROJECT}: pass --region with one of: ${functions}"
  printf 'Cloud Functions: offered in %s\n' "${REGION}"
  [[ " ${scheduler} " == *" ${SCHEDULER_LOCATION} "* ]] \
    || die "Cloud Scheduler is not offered in ${SCHEDULER_LOCATION} to project ${PROJECT}: pass --scheduler-location with one of: ${scheduler} (the job may call a function in another region)"
  printf 'Cloud Scheduler: offered in %s\n' "${SCHEDULER_LOCATION}"
}

set_names() {
  LABELS="function=${FUNCTION_NAME},managed-by=deploy-sh"
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
      run iam service-accounts create "${name}" --display-name "${account#*:}" --description "${LABELS//,/ }"
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
  # functions-framework's gunicorn runs one thread per request served at once, and threads =
  # concurrency = pool size keeps "one connection per request in flight".
  local env_vars="GOOGLE_CLOUD_PROJECT=${PROJECT},DB_POOL_SIZE=${POOL_SIZE},THREADS=${POOL_SIZE}" args pair
  for pair in "${EXTRA_ENV[@]}"; do env_vars+=",${pair}"; done
  args=(functions deploy "${FUNCTION_NAME}" --gen2 --region "${REGION}" --runtime "${RUNTIME}"
    --source "${HERE}" --entry-point handler --trigger-http --no-allow-unauthenticated
    --service-account "${RUNTIME_SA}" --build-service-account "projects/${PROJECT}/serviceAccounts/${BUILD_SA}"
    --concurrency "${POOL_SIZE}" --max-instances "${MAX_INSTANCES}" --min-instances "${MIN_INSTANCES}"
    --timeout "${TIMEOUT}s" --runtime-update-policy "${RUNTIME_UPDATE_POLICY}"
    --ingress-settings "${INGRESS}" --memory "${MEMORY}" --cpu "${CPU}" --serve-all-traffic-latest-revision
    --update-labels "${LABELS},scheduler-location=${SCHEDULER_LOCATION}")
  # Variables are updated, not replaced: what a user set by hand or with --env stays. Only the
  # other secret mode's variable goes.
  if [ "${SECRET_DELIVERY}" = file ]; then
    # The function reads `latest`, so a new version (a rotation, or --rollback-secret) takes
    # effect without a deploy.
    env_vars+=",DATABASE_URL_FILE=${SECRET_MOUNT}"
    args+=(--set-secrets "${SECRET_MOUNT}=${SECRET}:latest" --remove-env-vars DATABASE_URL_SECRET)
  else
    env_vars+=",DATABASE_URL_SECRET=${SECRET_VERSION}"
    args+=(--clear-secrets --remove-env-vars DATABASE_URL_FILE)
  fi
  if [ -n "${VPC_CONNECTOR}" ]; then
    args+=(--vpc-connector "${VPC_CONNECTOR}" --egress-settings "${EGRESS_SETTINGS}")
  else
    args+=(--clear-vpc-connector)
  fi
  args+=(--update-env-vars "${env_vars}")
  if [ "${DRY_RUN}" = true ]; then
    run "${args[@]}"
    URL="https://${FUNCTION_NAME}-PROJECT_NUMBER.${REGION}.run.app"  # the run.app URL the job calls
  else
    URL="$(gcloud "${args[@]}" --project "${PROJECT}" --quiet --format 'value(serviceConfig.uri)')"
  fi
}

# The service-level maximum caps the function's Cloud Run service across every revision that
# serves traffic; --max-instances caps each revision. gcloud 528 sets it only in its beta track.
cap_service() {
  if [ "${DRY_RUN}" = true ] || has_component beta; then
    run beta run services update "${FUNCTION_NAME}" --region "${REGION}" --max "${MAX_INSTANCES}"
    SERVICE_CAP="per revision and for the service"
  else
    printf 'no gcloud beta component: only the per-revision max of %s instances is set, so a traffic split or rollback may run more and exceed the connection budget (gcloud components install beta)\n' "${MAX_INSTANCES}"
    SERVICE_CAP="per revision only (no gcloud beta component)"
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
  step "11. smoke test: GET / as the deployer"
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
  local schema="the schema: apply it before the first deploy with DATABASE_URL=... .venv/bin/python -m db migrate"
  case "${line}" in
    *migrat*|*table*|*column*) causes=("${schema}" "${secret}") ;;
    *[Cc]ertificate*|*SSL*|*ssl*) causes=("${ca}" "${allowlist}" "${secret}") ;;
    *configuration*|*[Ss]ecret*|*DATABASE_URL*) causes=("${secret}" "${ca}" "${allowlist}") ;;
    *) causes=("${allowlist}" "${ca}" "${secret}" "${schema}") ;;
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
connection budget: ${CONNECTION_BUDGET} >= max ${MAX_INSTANCES} instances x pool size ${POOL_SIZE} (min ${MIN_INSTANCES}); the
                   maximum holds ${SERVICE_CAP} and can be exceeded briefly: keep headroom
runtime updates:   ${RUNTIME_UPDATE_POLICY}
alerts:            $([ "${ALERTS}" = true ] && printf 'metrics %s-*, 2 alert policies%s' "${FUNCTION_NAME}" "${NOTIFICATION_CHANNEL:+ -> ${NOTIFICATION_CHANNEL}}" || printf 'none (--no-alerts)')
egress:            ${egress}
schema:            apply it before the first deploy and after upgrades: python -m db migrate
labels:            ${LABELS} (function, secret; job description)
EOF
}

# ---------------------------------------------------------------- alerts

# Log-based metrics on the function's request line (core/service.py) and on the job's failed
# runs: NAME, filter, description (each counts the entries its filter matches).
metric_filters() {
  local function_logs="resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${FUNCTION_NAME}\""
  printf '%s\t%s\t%s\n' \
    "${FUNCTION_NAME}-status-503" "${function_logs} AND jsonPayload.status=503" "requests ${FUNCTION_NAME} answered 503" \
    "${FUNCTION_NAME}-outcome-unknown" "${function_logs} AND jsonPayload.message:\"outcome of the insert is unknown\"" "inserts whose commit is unknown (the connection ended first)" \
    "${FUNCTION_NAME}-new-connections" "${function_logs} AND jsonPayload.new_connection=true" "requests that opened a database connection" \
    "${FUNCTION_NAME}-scheduler-failures" "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${JOB_NAME}\" AND severity>=ERROR" "failed runs of the Cloud Scheduler job ${JOB_NAME}"
}

# The checkout time as a distribution (milliseconds a request waited for a pooled connection).
checkout_metric_file() {
  local filter="resource.type=\\\"cloud_run_revision\\\" AND resource.labels.service_name=\\\"${FUNCTION_NAME}\\\" AND jsonPayload.checkout_ms>=0"
  cat >"$1" <<JSON
{"description": "milliseconds ${FUNCTION_NAME}'s requests waited for a pooled connection",
 "filter": "${filter}",
 "valueExtractor": "EXTRACT(jsonPayload.checkout_ms)",
 "metricDescriptor": {"metricKind": "DELTA", "valueType": "DISTRIBUTION", "unit": "ms"},
 "bucketOptions": {"exponentialBuckets": {"numFiniteBuckets": 20, "growthFactor": 2, "scale": 0.1}}}
JSON
}

# One alert policy: $1 display name, $2 metric, $3 resource type, $4 aligner, $5 the file.
# Any matching entry in 5 minutes opens an incident: a job every few minutes has no noise to average.
policy_file() {
  local channels=""
  [ -z "${NOTIFICATION_CHANNEL}" ] || channels="\"${NOTIFICATION_CHANNEL}\""
  cat >"$5" <<JSON
{"displayName": "$1",
 "userLabels": {"function": "${FUNCTION_NAME}", "managed-by": "deploy-sh"},
 "combiner": "OR",
 "notificationChannels": [${channels}],
 "conditions": [{"displayName": "$1",
   "conditionThreshold": {
     "filter": "metric.type=\"logging.googleapis.com/user/$2\" AND resource.type=\"$3\"",
     "aggregations": [{"alignmentPeriod": "300s", "perSeriesAligner": "$4"}],
     "comparison": "COMPARISON_GT", "thresholdValue": 0, "duration": "0s"}}]}
JSON
}

# Alert policies deploy.sh made for this function: lines of "NAME<TAB>DISPLAY NAME".
deployed_policies() {
  gcloud alpha monitoring policies list --project "${PROJECT}" --quiet --verbosity error \
    --filter "userLabels.function=${FUNCTION_NAME} AND userLabels.managed-by=deploy-sh" \
    --format 'value(name,displayName)'
}

# A log-based metric, created or updated: $1 its name, then its settings. METRICS holds the
# names that exist (one listing for all five).
upsert_metric() {
  local name="$1"
  shift
  if [[ " ${METRICS} " == *" ${name} "* ]]; then
    run logging metrics update "${name}" "$@"
  else
    run logging metrics create "${name}" "$@"
  fi
}

# Step 9: the metrics, then a policy on failed job runs and one on 503 answers.
create_alerts() {
  step "9. log-based metrics and alert policies"
  local dir name filter description existing="" policy display file
  dir="$(mktemp -d)"
  METRICS=""
  if [ "${DRY_RUN}" = false ]; then
    METRICS="$(gcloud logging metrics list --project "${PROJECT}" --quiet --format 'value(name.basename())' | paste -sd' ' -)" \
      || die "cannot list the log-based metrics"
  fi
  while IFS=$'\t' read -r name filter description; do
    upsert_metric "${name}" --log-filter "${filter}" --description "${description}"
  done < <(metric_filters)
  checkout_metric_file "${dir}/checkout.json"
  upsert_metric "${FUNCTION_NAME}-checkout-ms" --config-from-file "${dir}/checkout.json"
  printf 'metrics: %s-{status-503,outcome-unknown,new-connections,scheduler-failures,checkout-ms}\n' "${FUNCTION_NAME}"
  [ "${DRY_RUN}" = true ] || existing="$(deployed_policies)"
  for policy in "scheduler-failures:cloud_scheduler_job:ALIGN_DELTA:failed Cloud Scheduler runs" \
    "status-503:cloud_run_revision:ALIGN_RATE:503 answers"; do
    IFS=: read -r name filter description display <<<"${policy}"
    display="${FUNCTION_NAME}: ${display}"
    file="${dir}/${name}.json"
    policy_file "${display}" "${FUNCTION_NAME}-${name}" "${filter}" "${description}" "${file}"
    name="$(awk -F'\t' -v d="${display}" '$2 == d {print $1; exit}' <<<"${existing}")"
    if [ -n "${name}" ]; then
      run alpha monitoring policies update "${name}" --policy-from-file "${file}"
    else
      run alpha monitoring policies create --policy-from-file "${file}"
    fi
    printf 'alert policy: %s%s\n' "${display}" "${NOTIFICATION_CHANNEL:+, notifying ${NOTIFICATION_CHANNEL}}"
  done
  rm -rf "${dir}"
}

teardown_alerts() {
  step "delete the alert policies and log-based metrics"
  local policies="" name display
  # Without the alpha component (or the Monitoring API) there are no policies to find.
  [ "${DRY_RUN}" = true ] || policies="$(deployed_policies 2>/dev/null)" || policies=""
  while IFS=$'\t' read -r name display; do
    [ -z "${name}" ] || remove "alert policy ${display}" alpha monitoring policies delete "${name}"
  done <<<"${policies}"
  for name in status-503 outcome-unknown new-connections scheduler-failures checkout-ms; do
    remove "metric ${FUNCTION_NAME}-${name}" logging metrics delete "${FUNCTION_NAME}-${name}"
  done
}

# Step 10: every deploy adds an image to gcf-artifacts; this deletes those older than N days
# and keeps the newest 5 whatever their age (the serving revision's among them).
image_cleanup() {
  [ -n "${IMAGE_CLEANUP_DAYS}" ] || return 0
  step "10. cleanup policy on Artifact Registry repository gcf-artifacts in ${REGION}"
  local file
  file="$(mktemp)"
  cat >"${file}" <<JSON
[{"name": "delete-old", "action": {"type": "Delete"}, "condition": {"olderThan": "$((IMAGE_CLEANUP_DAYS * 86400))s"}},
 {"name": "keep-newest", "action": {"type": "Keep"}, "mostRecentVersions": {"keepCount": 5}}]
JSON
  run artifacts repositories set-cleanup-policies gcf-artifacts --location "${REGION}" --policy "${file}" --no-dry-run
  rm -f "${file}"
  printf 'images older than %s days are deleted, the newest 5 kept\n' "${IMAGE_CLEANUP_DAYS}"
}

# ---------------------------------------------------------------- secret rollback

# The version before the latest, added again as the newest: the function reads `latest`, so it
# takes effect without a deploy (an instance re-reads the DSN when the one it holds fails).
# Disabling the bad version instead would leave `latest` pointing at it, unreadable.
rollback_secret() {
  step "roll back secret ${SECRET}: the version before the latest becomes the latest"
  local versions previous dsn
  versions="$(gcloud secrets versions list "${SECRET}" --project "${PROJECT}" --quiet --filter 'state=ENABLED' \
    --format 'value(name.basename())' | sort -rn)" || die "cannot list the versions of secret ${SECRET}"
  previous="$(sed -n 2p <<<"${versions}")"
  [ -n "${previous}" ] || die "secret ${SECRET} has no enabled version before the latest: nothing to roll back to"
  [ "${DRY_RUN}" = false ] || { printf '+ gcloud secrets versions add %q --data-file - <<< (version %s)\n' "${SECRET}" "${previous}"; return 0; }
  dsn="$(gcloud secrets versions access "${previous}" --secret "${SECRET}" --project "${PROJECT}" --quiet)" \
    || die "cannot read version ${previous} of secret ${SECRET}"
  check_dsn "${dsn}"
  printf '%s' "${dsn}" | gcloud secrets versions add "${SECRET}" --data-file - --project "${PROJECT}" --quiet --format none
  unset dsn
  printf 'the DSN of version %s is the latest of %s again; version %s stays: disable or destroy it once you are sure\n' \
    "${previous}" "${SECRET}" "$(head -1 <<<"${versions}")"
}

# ---------------------------------------------------------------- teardown

# Every function deploy.sh made under this name, in any region, by its labels: lines of
# "REGION SCHEDULER_LOCATION". A project whose Cloud Functions API is off has none.
deployed_functions() {
  local found
  if ! found="$(gcloud functions list --project "${PROJECT}" --quiet --verbosity error \
    --filter "labels.function=${FUNCTION_NAME} AND labels.managed-by=deploy-sh" \
    --format 'value(name.segment(3),labels.scheduler-location)' 2>&1)"; then
    [[ "${found}" =~ SERVICE_DISABLED|has\ not\ been\ used\ in\ project ]] && return 0
    printf '%s\n' "${found}" >&2
    die "cannot list the functions to find ${FUNCTION_NAME}'s"
  fi
  printf '%s\n' "${found}"
}

# Jobs whose description carries this deployment's labels (jobs take no labels), in $@.
teardown_jobs() {
  local location jobs name description
  for location in "$@"; do
    if [ "${DRY_RUN}" = true ]; then
      run scheduler jobs delete "${JOB_NAME}" --location "${location}"
      continue
    fi
    jobs="$(gcloud scheduler jobs list --location "${location}" --project "${PROJECT}" --quiet \
      --format 'value(name.basename(),description)' 2>/dev/null)" || continue  # Scheduler off, or not there
    while IFS=$'\t' read -r name description; do
      if [ -z "${name}" ] || ! ours "${description}"; then continue; fi
      remove "job ${name} in ${location}" scheduler jobs delete "${name}" --location "${location}"
    done <<<"${jobs}"
  done
}

# Whether a description holds this deployment's labels as words (function=NAME managed-by=deploy-sh).
ours() {
  [[ " $1 " == *" function=${FUNCTION_NAME} "* && " $1 " == *" managed-by=deploy-sh "* ]]
}

# The service accounts: those described with the labels, and the three names (older deploys
# wrote no description).
teardown_accounts() {
  local listed email description accounts=("${RUNTIME_SA}" "${INVOKER_SA}" "${BUILD_SA}")
  if [ "${DRY_RUN}" = false ]; then
    listed="$(gcloud iam service-accounts list --project "${PROJECT}" --quiet --format 'value(email,description)' 2>/dev/null)" || listed=""
    while IFS=$'\t' read -r email description; do
      if [ -n "${email}" ] && ours "${description}" && [[ " ${accounts[*]} " != *" ${email} "* ]]; then accounts+=("${email}"); fi
    done <<<"${listed}"
  fi
  for email in "${accounts[@]}"; do
    remove "${email%%@*}" iam service-accounts delete "${email}"
  done
}

teardown() {
  step "find what deploy.sh made for ${FUNCTION_NAME} (labels function=${FUNCTION_NAME}, managed-by=deploy-sh)"
  local found regions=() locations=() region location
  if [ "${DRY_RUN}" = true ]; then
    found="${REGION:-REGION} ${SCHEDULER_LOCATION:-${REGION:-REGION}}"
  else
    found="$(deployed_functions)"
  fi
  while read -r region location; do
    [ -z "${region}" ] || regions+=("${region}")
    [ -z "${location:-${region}}" ] || locations+=("${location:-${region}}")
  done <<<"${found}"
  # A function deleted by an earlier --delete leaves no labels to find its job by.
  for location in "${SCHEDULER_LOCATION}" "${REGION}"; do
    [ -z "${location}" ] || [[ " ${locations[*]} " == *" ${location} "* ]] || locations+=("${location}")
  done
  printf 'functions in: %s; jobs looked for in: %s\n' "${regions[*]:-none}" "${locations[*]:-none}"
  step "delete the Cloud Scheduler jobs"
  teardown_jobs "${locations[@]}"
  step "delete the functions (and with them who may invoke them)"
  for region in "${regions[@]}"; do
    remove "function ${FUNCTION_NAME} in ${region}" functions delete "${FUNCTION_NAME}" --region "${region}" --gen2
  done
  teardown_alerts
  step "remove the bindings"
  remove "${FUNCTION_NAME}-runtime's access to ${SECRET}" secrets remove-iam-policy-binding "${SECRET}" \
    --member "serviceAccount:${RUNTIME_SA}" --role roles/secretmanager.secretAccessor
  remove "${BUILD_ROLE} of ${FUNCTION_NAME}-build" projects remove-iam-policy-binding "${PROJECT}" \
    --member "serviceAccount:${BUILD_SA}" --role "${BUILD_ROLE}" --condition None
  step "delete the service accounts"
  teardown_accounts
  step "the secret ${SECRET}"
  if [ "${DELETE_SECRET}" = true ]; then
    remove "secret ${SECRET} and its versions" secrets delete "${SECRET}"
  else
    printf 'kept (it holds the DSN; add --delete-secret to delete it)\n'
  fi
  check_gone
  left_in_place
}

# --delete never ends well while a function it made still serves.
check_gone() {
  [ "${DRY_RUN}" = false ] || return 0
  local left
  left="$(deployed_functions)"
  if [ -n "${left}" ]; then
    printf '%s: %s still serves in: %s\n' "${0##*/}" "${FUNCTION_NAME}" "$(cut -d' ' -f1 <<<"${left}" | paste -sd' ' -)" >&2
    exit 1
  fi
  printf '\nno function labelled function=%s, managed-by=deploy-sh is left\n' "${FUNCTION_NAME}"
}

# What --delete does not remove: deploy.sh did not make it, or other workloads may share it.
left_in_place() {
  cat <<EOF

Left in place (deploy.sh did not create these, or they may serve other workloads; docs/deploy.md,
"Removing everything", has the commands):
  - the enabled APIs
  - the build images in Artifact Registry: repository gcf-artifacts in each region the function ran in
    (and its cleanup policy, if --image-cleanup-days set one)
  - the source uploads: Cloud Storage buckets gcf-v2-sources-PROJECT_NUMBER-REGION and
    gcf-v2-uploads-PROJECT_NUMBER-REGION
  - the logs the function and the job wrote (kept for the log bucket's retention)
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
  set_names
  case "${MODE}" in
    delete) teardown; return 0 ;;
    smoke) find_region; function_url; smoke_test; return 0 ;;
    rollback-secret) rollback_secret; return 0 ;;
  esac
  locate_cluster
  choose_function_region
  check_offer early
  enable_apis
  step "2. what the project offers (read only)"
  check_offer late
  check_vpc_connector
  store_secret
  create_service_accounts
  grant_roles
  deploy_function
  cap_service
  grant_invoker
  schedule_job
  if [ "${ALERTS}" = true ]; then create_alerts; fi
  image_cleanup
  if [ "${SMOKE_TEST}" = true ]; then smoke_test; fi
  summary
}

main "$@"

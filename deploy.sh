#!/usr/bin/env bash
# Deploy the events function next to its CockroachDB cluster, private, on a schedule.
#
# usage: ./deploy.sh --project PROJECT --secret SECRET [options]
#        DATABASE_URL='postgresql://...' ./deploy.sh --project PROJECT --secret SECRET
#
# Every setting is a flag or an environment variable (flag wins):
#   --project P           PROJECT           GCP project (required)
#   --secret S            SECRET            Secret Manager secret holding the DSN (default events-dsn)
#   --dsn-stdin                             read a DSN from standard input and store it as a new
#                                           secret version (or set DATABASE_URL; never a flag, so
#                                           the DSN stays out of shell history and `ps`)
#   --region R            REGION            GCP region; default: derived from the cluster's host
#   --cluster-region C    CLUSTER_REGION    the cluster's (primary) region, e.g. gcp-us-east1 or
#                                           aws-eu-west-1, when the host does not name it
#   --name N              FUNCTION_NAME     function name (default events)
#   --schedule CRON       SCHEDULE          Cloud Scheduler cron (default "*/5 * * * *")
#   --time-zone TZ        TIME_ZONE         schedule time zone (default Etc/UTC)
#   --job J               JOB_NAME          Scheduler job name (default <name>-schedule)
#   --pool-size N         POOL_SIZE         connections per instance = requests per instance
#                                           (--concurrency) (default 1)
#   --connection-budget N CONNECTION_BUDGET most connections the function may hold on the
#                                           cluster: max instances = budget / pool size (default 50)
#   --timeout SECONDS     TIMEOUT           function timeout (default 60)
#   --ingress I           INGRESS           all | internal-only | internal-and-gclb (default all;
#                                           the function is private either way: IAM decides)
#   --runtime R           RUNTIME           Python runtime (default python312)
#   --dry-run                               print every gcloud command, run none
#   -h, --help                              this text
#
# Steps, each safe to repeat: enable APIs; create the runtime and invoker service
# accounts; store the DSN (if given); let the runtime account read that one secret;
# deploy (2nd gen, private, DATABASE_URL_SECRET names the secret); let the invoker
# account invoke it; create or update the Scheduler job (OIDC, retries).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 2; }

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
TIMEOUT="${TIMEOUT:-60}"
INGRESS="${INGRESS:-all}"
RUNTIME="${RUNTIME:-python312}"
DRY_RUN=false
DSN_FROM_STDIN=false

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
    --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
    --ingress) INGRESS="${2:?--ingress needs a value}"; shift 2 ;;
    --runtime) RUNTIME="${2:?--runtime needs a value}"; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JOB_NAME="${JOB_NAME:-${FUNCTION_NAME}-schedule}"

# ---------------------------------------------------------------- checks, before any change
[ -n "${PROJECT}" ] || die "set --project (or PROJECT)"
command -v gcloud >/dev/null || die "gcloud is not installed: https://cloud.google.com/sdk/docs/install"
command -v python3 >/dev/null || die "python3 is needed to choose the region"
case "${POOL_SIZE}" in ''|*[!0-9]*|0) die "--pool-size must be a whole number of at least 1" ;; esac
case "${CONNECTION_BUDGET}" in ''|*[!0-9]*|0) die "--connection-budget must be a whole number of at least 1" ;; esac
case "${TIMEOUT}" in ''|*[!0-9]*|0) die "--timeout must be a whole number of seconds" ;; esac
case "${INGRESS}" in all|internal-only|internal-and-gclb) ;; *) die "--ingress must be all, internal-only or internal-and-gclb" ;; esac
MAX_INSTANCES=$(( CONNECTION_BUDGET / POOL_SIZE ))
[ "${MAX_INSTANCES}" -ge 1 ] || die "--connection-budget (${CONNECTION_BUDGET}) is smaller than --pool-size (${POOL_SIZE})"
if [ "${DRY_RUN}" = false ]; then
  gcloud auth print-access-token --quiet >/dev/null 2>&1 \
    || die "gcloud is not logged in: run 'gcloud auth login' (or set auth/access_token_file)"
fi

# The DSN, if one is given, stays in this variable: never a command argument, never printed.
DSN="${DATABASE_URL:-}"
if [ "${DSN_FROM_STDIN}" = true ]; then
  IFS= read -r DSN || [ -n "${DSN}" ] || die "--dsn-stdin: nothing on standard input"
fi

# Run a gcloud command, or print it in --dry-run. Arguments never contain secrets.
run() {
  if [ "${DRY_RUN}" = true ]; then
    printf '+'; printf ' %q' gcloud "$@" --project "${PROJECT}"; printf '\n'
  else
    # --format none: gcloud reports each step on stderr; the resources' YAML is noise here.
    gcloud "$@" --project "${PROJECT}" --quiet --format none
  fi
}
# Ask gcloud whether something exists (in --dry-run: assume not, to show the creating path).
exists() {
  [ "${DRY_RUN}" = false ] && gcloud "$@" --project "${PROJECT}" --quiet >/dev/null 2>&1
}
step() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- region
if [ -z "${REGION}" ] && [ -z "${CLUSTER_REGION}" ] && [ -z "${DSN}" ]; then
  if [ "${DRY_RUN}" = true ]; then
    die "--dry-run needs REGION, CLUSTER_REGION or a DSN to choose the region"
  fi
  # The host is in the DSN already stored in the secret.
  DSN_FOR_REGION="$(gcloud secrets versions access latest --secret "${SECRET}" --project "${PROJECT}" --quiet)" \
    || die "cannot read secret ${SECRET} to find the cluster's region: set REGION or CLUSTER_REGION"
else
  DSN_FOR_REGION="${DSN}"
fi
CHOICE="$(printf '%s' "${DSN_FOR_REGION}" | (cd "${HERE}" && python3 -m deploy.region --dsn-stdin \
  --region "${REGION}" --cluster-region "${CLUSTER_REGION}"))" || exit 2
unset DSN_FOR_REGION
IFS=$'\t' read -r REGION DISTANCE_KM REGION_WHY <<<"${CHOICE}"
printf 'region: %s (%s' "${REGION}" "${REGION_WHY}"
[ "${DISTANCE_KM}" = "0" ] || printf '; %s km from the cluster' "${DISTANCE_KM}"
printf ')\n'

RUNTIME_SA_NAME="${FUNCTION_NAME}-runtime"
INVOKER_SA_NAME="${FUNCTION_NAME}-invoker"
RUNTIME_SA="${RUNTIME_SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
INVOKER_SA="${INVOKER_SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
SECRET_VERSION="projects/${PROJECT}/secrets/${SECRET}/versions/latest"
# Cloud Scheduler must give up after the function does, or a slow attempt is retried while running.
ATTEMPT_DEADLINE=$(( TIMEOUT + 30 ))

# ---------------------------------------------------------------- 1. APIs
step "1. enable the APIs"
run services enable cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com \
  artifactregistry.googleapis.com cloudscheduler.googleapis.com secretmanager.googleapis.com iam.googleapis.com

# ---------------------------------------------------------------- 2. service accounts
step "2. service accounts"
for account in "${RUNTIME_SA_NAME}:runtime identity of ${FUNCTION_NAME}" "${INVOKER_SA_NAME}:Cloud Scheduler caller of ${FUNCTION_NAME}"; do
  name="${account%%:*}"
  if exists iam service-accounts describe "${name}@${PROJECT}.iam.gserviceaccount.com"; then
    printf '%s exists\n' "${name}"
  else
    run iam service-accounts create "${name}" --display-name "${account#*:}"
  fi
done

# ---------------------------------------------------------------- 3. the secret and who may read it
step "3. secret ${SECRET}"
if [ -n "${DSN}" ]; then
  if ! exists secrets describe "${SECRET}"; then
    run secrets create "${SECRET}" --replication-policy automatic
  fi
  if [ "${DRY_RUN}" = true ]; then
    printf '+ gcloud secrets versions add %q --data-file - <<< (the DSN, from the environment or stdin)\n' "${SECRET}"
  else
    printf '%s' "${DSN}" | gcloud secrets versions add "${SECRET}" --data-file - --project "${PROJECT}" --quiet
  fi
fi
unset DSN
# On this one secret only, not the project: the function can read nothing else.
run secrets add-iam-policy-binding "${SECRET}" \
  --member "serviceAccount:${RUNTIME_SA}" --role roles/secretmanager.secretAccessor

# ---------------------------------------------------------------- 4. the function
step "4. deploy ${FUNCTION_NAME} to ${REGION}"
resources=()
if [ "${POOL_SIZE}" -gt 1 ]; then
  resources=(--cpu 1 --memory 512Mi)  # concurrency above 1 needs a whole vCPU
fi
run functions deploy "${FUNCTION_NAME}" --gen2 --region "${REGION}" --runtime "${RUNTIME}" \
  --source "${HERE}" --entry-point handler --trigger-http --no-allow-unauthenticated \
  --service-account "${RUNTIME_SA}" \
  --set-env-vars "DATABASE_URL_SECRET=${SECRET_VERSION},DB_POOL_SIZE=${POOL_SIZE}" \
  --concurrency "${POOL_SIZE}" --max-instances "${MAX_INSTANCES}" \
  --timeout "${TIMEOUT}s" --ingress-settings "${INGRESS}" "${resources[@]}"

# ---------------------------------------------------------------- 5. who may invoke it
step "5. let ${INVOKER_SA_NAME} invoke it"
run functions add-invoker-policy-binding "${FUNCTION_NAME}" --region "${REGION}" \
  --member "serviceAccount:${INVOKER_SA}"

if [ "${DRY_RUN}" = true ]; then
  URL="https://${REGION}-${PROJECT}.cloudfunctions.net/${FUNCTION_NAME}"
else
  URL="$(gcloud functions describe "${FUNCTION_NAME}" --region "${REGION}" --project "${PROJECT}" \
    --quiet --format 'value(serviceConfig.uri)')"
fi

# ---------------------------------------------------------------- 6. the schedule
step "6. Cloud Scheduler job ${JOB_NAME}"
# Retries are safe: a retried delivery has the same X-CloudScheduler-ScheduleTime,
# hence the same event id, and inserts nothing new.
retry_policy=(--max-retry-attempts 3 --min-backoff 10s --max-backoff 300s --max-doublings 4
  --attempt-deadline "${ATTEMPT_DEADLINE}s")
target=(--location "${REGION}" --schedule "${SCHEDULE}" --time-zone "${TIME_ZONE}" --uri "${URL}"
  --http-method POST --oidc-service-account-email "${INVOKER_SA}" --oidc-token-audience "${URL}")
if exists scheduler jobs describe "${JOB_NAME}" --location "${REGION}"; then
  # `update http` takes --update-headers where `create http` takes --headers.
  run scheduler jobs update http "${JOB_NAME}" "${target[@]}" \
    --update-headers Content-Type=application/json "${retry_policy[@]}"
else
  run scheduler jobs create http "${JOB_NAME}" "${target[@]}" \
    --headers Content-Type=application/json "${retry_policy[@]}"
fi

# ---------------------------------------------------------------- 7. what was done
step "done"
cat <<EOF
region:            ${REGION} (${REGION_WHY})
function:          ${FUNCTION_NAME}, private (--no-allow-unauthenticated), ingress ${INGRESS}
url:               ${URL}
runtime account:   ${RUNTIME_SA} (reads secret ${SECRET} only)
invoker account:   ${INVOKER_SA} (roles/run.invoker on ${FUNCTION_NAME})
schedule:          ${JOB_NAME}: "${SCHEDULE}" ${TIME_ZONE}, OIDC, 3 retries, deadline ${ATTEMPT_DEADLINE}s
connection budget: ${CONNECTION_BUDGET} = max ${MAX_INSTANCES} instances x pool size ${POOL_SIZE}
EOF

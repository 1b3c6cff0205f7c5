#!/usr/bin/env bash
# One-shot Kubernetes Jobs for the deploy pipeline (.github/workflows/deploy.yml), usable by hand
# with the same kubeconfig:
#
#   deploy/pipeline/job.sh run CRONJOB [TIMEOUT_S]
#       creates Job CRONJOB-<UTC time> from the applied CronJob CRONJOB (a suspended template
#       such as couponrush-smoke: `kubectl create job --from` copies CronJobs only, and a
#       suspended one never runs by itself), then waits for it like `wait`. Run it after
#       `kubectl apply -k OVERLAY`: the copy runs the image that apply gave the template.
#   deploy/pipeline/job.sh migrate OVERLAY [TIMEOUT_S]
#       the schema migration before any new code: deletes the last Job couponrush-migrate (a
#       Job is immutable), applies OVERLAY's configuration and migration objects only
#       (app.kubernetes.io/component config or migrate), then waits for the Job like `wait`.
#   deploy/pipeline/job.sh wait JOB [TIMEOUT_S]
#       waits until Job JOB is Complete or Failed (`kubectl wait` alone waits for one of the
#       two and would sit out the timeout on a failure), prints its pods' logs, exits 0 only
#       when it completed.
#
# NAMESPACE (default couponrush) is the namespace. Needs kubectl.
set -euo pipefail

NAMESPACE=${NAMESPACE:-couponrush}
kc() { kubectl --namespace "$NAMESPACE" "$@"; }
log() { printf '[job] %s\n' "$*" >&2; }

# The first condition of JOB that is True among Complete and Failed, or nothing yet.
finished() {
    kc get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{"\n"}{end}' \
        | grep -E -m1 '^(Complete|Failed)$' || true
}

wait_job() {
    local job=$1 timeout=${2:-600} state=''
    local deadline=$((SECONDS + timeout))
    log "waiting up to ${timeout}s for job/$job"
    while [[ -z $state ]] && ((SECONDS < deadline)); do
        state=$(finished "$job")
        [[ -n $state ]] || sleep 5
    done
    log "job/$job: ${state:-still running after ${timeout}s}; its logs:"
    kc logs --selector "batch.kubernetes.io/job-name=$job" --all-containers --prefix --tail=-1 || true
    if [[ $state != Complete ]]; then
        kc describe job "$job" >&2 || true
        log "job/$job did not complete"
        return 1
    fi
}

run_job() {
    local template=$1 timeout=${2:-600} name
    name="$template-$(date -u +%Y%m%d%H%M%S)"
    log "creating job/$name from cronjob/$template"
    kc create job "$name" --from="cronjob/$template"
    wait_job "$name" "$timeout"
}

migrate() {
    local overlay=$1 timeout=${2:-600}
    kc delete job couponrush-migrate --ignore-not-found --wait
    kubectl apply -k "$overlay" -l 'app.kubernetes.io/component in (config,migrate)'
    wait_job couponrush-migrate "$timeout"
}

usage="usage: $0 run CRONJOB [TIMEOUT_S] | migrate OVERLAY [TIMEOUT_S] | wait JOB [TIMEOUT_S]"
case ${1:-} in
    run) (($# >= 2)) || { log "$usage"; exit 2; }; run_job "${@:2}" ;;
    migrate) (($# >= 2)) || { log "$usage"; exit 2; }; migrate "${@:2}" ;;
    wait) (($# >= 2)) || { log "$usage"; exit 2; }; wait_job "${@:2}" ;;
    *) log "$usage"; exit 2 ;;
esac

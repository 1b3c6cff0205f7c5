#!/usr/bin/env bash
# Smoke test of a running couponrush (local or deployed). Read-only unless --issue is given.
# The chaos experiments' steady-state probe (deploy/chaos/): curl only, and a read-only mode to
# wait for recovery. The post-deploy check, with consumer lag and MySQL, is the
# `compensation-batch smoke` command (docs/smoke.md).
#
#   scripts/smoke-test.sh            API /health/live + /health/ready, each consumer's /health/ready
#   scripts/smoke-test.sh --issue    also: create a 1-coupon event (admin API), issue it to a fresh
#                                    user (expects 202), poll the status endpoint until ISSUED
#
#   SMOKE_API_URL=http://127.0.0.1:8080   SMOKE_OPS_URLS="http://127.0.0.1:9090" (space-separated
#   consumer ops URLs; empty: skip)   SMOKE_ADMIN_TOKEN= (needed by --issue)   SMOKE_TIMEOUT=20 (s
#   to reach ISSUED)   SMOKE_HTTP_TIMEOUT=5 (s per request)
# Exit 0 iff every check passed; one line per check on stdout.
set -euo pipefail

API=${SMOKE_API_URL:-http://127.0.0.1:8080}
OPS=${SMOKE_OPS_URLS-http://127.0.0.1:9090}
TOKEN=${SMOKE_ADMIN_TOKEN:-}
TIMEOUT=${SMOKE_TIMEOUT:-20}
HTTP_TIMEOUT=${SMOKE_HTTP_TIMEOUT:-5}
ISSUE=0
case ${1:-} in
    --issue) ISSUE=1 ;;
    "") ;;
    *) sed -n '2,14p' "$0" >&2 && exit 2 ;;
esac

FAILED=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; FAILED=1; }
# req METHOD URL [CURL ARGS...]: prints "<http status> <body>"; status 000 when nothing answered.
req() {
    local m=$1 u=$2
    shift 2
    curl -sS -o /dev/stdout -w ' %{http_code}' --max-time "$HTTP_TIMEOUT" -X "$m" "$@" "$u" 2>/dev/null \
        | awk '{ code = $NF; $NF = ""; sub(/ $/, ""); print code, $0 }' || true
}
expect() { # expect NAME WANT METHOD URL [CURL ARGS...]: sets OUT to the body
    local name=$1 want=$2 res code
    shift 2
    res=$(req "$@")
    code=${res%% *}
    OUT=${res#* }
    if [[ $code == "$want" ]]; then ok "$name: $code"; else bad "$name: ${code:-000} (want $want) $OUT"; fi
    [[ $code == "$want" ]]
}

expect "api live" 200 GET "$API/health/live" || true
expect "api ready" 200 GET "$API/health/ready" || true
for u in $OPS; do expect "consumer ready $u" 200 GET "$u/health/ready" || true; done

if ((ISSUE)) && ((FAILED == 0)); then
    [[ -n $TOKEN ]] || { bad "--issue needs SMOKE_ADMIN_TOKEN"; exit 1; }
    start=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
    end=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
    body=$(printf '{"name":"smoke %s","discount_amount":1,"total_quantity":1,"issue_starts_at":"%s","issue_ends_at":"%s","expiry_days":1}' "$start" "$start" "$end")
    auth=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
    if expect "create event" 201 POST "$API/admin/coupons" "${auth[@]}" -d "$body"; then
        coupon=$(jq -r .couponId <<<"$OUT")
        user=smoke-$(date +%s)-$RANDOM
        t0=$(date +%s%N)
        if expect "issue coupon $coupon to $user" 202 POST "$API/coupons/$coupon/issue" -H "userId: $user"; then
            status="" deadline=$((SECONDS + TIMEOUT))
            while ((SECONDS < deadline)); do
                status=$(req GET "$API/coupons/$coupon/issuances/$user" -H "userId: $user" | cut -d' ' -f2- | jq -r '.status // empty' 2>/dev/null || true)
                [[ $status == ISSUED ]] && break
                sleep 0.2
            done
            ms=$((($(date +%s%N) - t0) / 1000000))
            if [[ $status == ISSUED ]]; then ok "status ISSUED after $ms ms"; else bad "status ${status:-none} after $ms ms (want ISSUED)"; fi
        fi
    fi
fi
exit "$FAILED"

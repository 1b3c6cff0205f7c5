#!/usr/bin/env bash
# The test command (README): formatting, lints, crate boundaries, then every unit and
# integration test against the real stack (MariaDB, Redis, tansu), which it brings up first.
#
#   scripts/test.sh              run everything; stop stack services this run started
#   KEEP_STACK=1 scripts/test.sh leave the stack running afterwards (fast re-runs)
#
# Extra arguments go to the test runner, e.g. `scripts/test.sh -E 'test(end_to_end)'` with
# nextest or `scripts/test.sh end_to_end` with cargo test.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOG_TAG="test"
# shellcheck source=scripts/lib/tools.sh
source scripts/lib/tools.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "toolchain and build dependencies"
ensure_cargo
ensure_build_deps

step "toolchain components"
for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" ||
        rustup component add "$component"
done

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "domain crate is free of infrastructure"
for dep in actix-web rdkafka diesel diesel-async deadpool-redis redis mysql_async tokio; do
    if out=$(cargo tree --locked -p couponrush-domain -e normal,build -i "$dep" 2>&1); then
        printf 'couponrush-domain depends on %s:\n%s\n' "$dep" "$out" >&2
        exit 1
    elif ! grep -q "did not match any packages" <<<"$out"; then
        printf 'cargo tree failed:\n%s\n' "$out" >&2
        exit 1
    fi
done
echo "ok: no actix, rdkafka, diesel, redis or tokio in couponrush-domain"

if command -v shellcheck >/dev/null 2>&1 || { command -v apt-get >/dev/null && apt_install shellcheck; }; then
    step "shellcheck scripts"
    mapfile -t shell_files < <(git ls-files 'scripts/*.sh' 'deploy/*.sh' '.ci/run')
    shellcheck -x "${shell_files[@]}"
fi

step "deploy manifests: kubectl kustomize of every overlay, kubernetes-validate, CRD schemas, KEDA trigger keys, the config loader (offline)"
cargo xtask check deploy

step "alert rules, their tests and runbooks, Alertmanager routing (promtool, amtool; offline)"
cargo xtask check alerts

step "image, compose settings, workflows, load script (hadolint, actionlint + shellcheck, k6; offline)"
cargo xtask check delivery

step "stack up"
stack_was_up=0
scripts/stack.sh status >/dev/null 2>&1 && stack_was_up=1
if [ "$stack_was_up" = 0 ] && [ "${KEEP_STACK:-0}" != 1 ]; then
    trap 'step "stack down"; scripts/stack.sh down' EXIT
fi
eval "$(scripts/stack.sh up)"

# Templates (crt_template_*) go too: the first test of this run builds the current one again
# (one migration run), and templates of other migration sets do not pile up.
step "drop test databases and templates left by earlier runs"
mysql_args=(-h "$COUPON__MYSQL__HOST" -P "$COUPON__MYSQL__PORT" -u "$COUPON__MYSQL__USER")
[ -n "${COUPON__MYSQL__PASSWORD:-}" ] && mysql_args+=("-p$COUPON__MYSQL__PASSWORD")
mysql "${mysql_args[@]}" -N -e "SHOW DATABASES LIKE 'crt\\_%'" | while read -r db; do
    mysql "${mysql_args[@]}" -e "DROP DATABASE \`$db\`"
done

step "tests (unit + integration against the real stack)"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi

step "OpenAPI document vs the running API (schemathesis)"
cargo xtask check openapi

step "one request's trace across the real binaries, through a real OTLP receiver"
cargo xtask check traces

# The real Prometheus and Alertmanager (Debian's, unpacked by stack.sh tool) on private ports,
# the real binaries on a private broker whose consumer side is cut: must page within 180 s.
# Also checks that every metric a rule or dashboard reads is exported (`check metrics` alone).
step "the incident replayed live must page (Prometheus, Alertmanager, the rules' metric names)"
cargo xtask check incident

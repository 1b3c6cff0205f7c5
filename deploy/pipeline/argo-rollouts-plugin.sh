#!/usr/bin/env bash
# Installs the Argo Rollouts kubectl plugin (kubectl-argo-rollouts) VERSION into DIR, checked
# against the checksums published with the release, and puts DIR on the PATH of the following
# GitHub Actions steps (when GITHUB_PATH is set):
#
#   deploy/pipeline/argo-rollouts-plugin.sh v1.8.3 "$RUNNER_TEMP/bin"
#
# Linux amd64 only (GitHub's ubuntu runners). Idempotent: a plugin of that version already in
# DIR is kept.
set -euo pipefail

version=${1:?usage: $0 VERSION DIR}
dir=${2:?usage: $0 VERSION DIR}
asset=kubectl-argo-rollouts-linux-amd64
base=https://github.com/argoproj/argo-rollouts/releases/download/$version

mkdir -p "$dir"
if ! "$dir/kubectl-argo-rollouts" version --short 2>/dev/null | grep -qF "$version"; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    curl -fsSL --retry 3 -o "$tmp/$asset" "$base/$asset"
    curl -fsSL --retry 3 -o "$tmp/checksums.txt" "$base/argo-rollouts-checksums.txt"
    (cd "$tmp" && grep " $asset\$" checksums.txt | sha256sum --check --strict -)
    install -m 755 "$tmp/$asset" "$dir/kubectl-argo-rollouts"
fi
[[ -z ${GITHUB_PATH:-} ]] || echo "$dir" >>"$GITHUB_PATH"
"$dir/kubectl-argo-rollouts" version --short

#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests in deploy/k8s: no cluster, no kubeconfig needed.
#
#   scripts/check-deploy.sh
#
# 1. Schema: every deploy/k8s/*.yaml except kustomization.yaml (secret.example.yaml included)
#    validates with `kubernetes-validate --strict` (unknown fields are errors) against each
#    Kubernetes version in DEPLOY_K8S_VERSIONS. Any ERROR, FATAL or WARN line fails: the tool
#    only warns, and exits 0, for a kind/apiVersion it has no schema for (a typo'd `apiVersion`).
# 2. Consistency the schemas cannot see: kustomization.yaml lists every manifest of the
#    directory except secret.example.yaml (and never that one); no YAML mapping repeats a key;
#    Deployment selectors match their pod labels and every Service/PodDisruptionBudget selects
#    some pod template; every envFrom names the ConfigMap or the example Secret defined here;
#    ConfigMap and Secret keys are COUPON__* and secrets are not in the ConfigMap; no loopback
#    host (the production profile refuses them); every image is covered by an `images:` entry.
# 3. When kubectl (or kustomize) is on PATH: the kustomization builds (`kubectl kustomize`,
#    offline) and its output passes step 1 too. Skipped, with a note, otherwise.
#
# Settings (environment):
#   DEPLOY_K8S_VERSIONS="1.30.0 1.34.0"   Kubernetes versions to validate against
#   DEPLOY_K8S_DIR=<repo>/deploy/k8s       directory checked
#   DEPLOY_VENV=<repo>/.stack/venv-deploy  virtualenv used when the system python refuses pip
#
# kubernetes-validate (PyPI) is installed with pip when missing or too old for the versions
# asked; it carries its schemas, so validation itself needs no network.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=check-deploy
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"

K8S_DIR=${DEPLOY_K8S_DIR:-$ROOT/deploy/k8s}
VENV=${DEPLOY_VENV:-$ROOT/.stack/venv-deploy}
read -r -a VERSIONS <<<"${DEPLOY_K8S_VERSIONS:-1.30.0 1.34.0}"
((${#VERSIONS[@]} > 0)) || die "DEPLOY_K8S_VERSIONS is empty"
[[ -d $K8S_DIR ]] || die "no directory $K8S_DIR"

# Whether python $1 imports kubernetes_validate and has schemas for every version asked.
validator_ok() {
    local py=$1
    [[ -x $py ]] || command -v "$py" >/dev/null 2>&1 || return 1
    "$py" - "${VERSIONS[@]}" >/dev/null 2>&1 <<'EOF'
import sys
from kubernetes_validate.utils import all_versions, major_minor
have = {major_minor(v) for v in all_versions()}
sys.exit(0 if all(major_minor(v.lstrip("v")) in have for v in sys.argv[1:]) else 1)
EOF
}

find_validator() {
    local py
    for py in "$VENV/bin/python" python3; do
        if validator_ok "$py"; then
            printf '%s\n' "$py"
            return 0
        fi
    done
    return 1
}

ensure_validator() { # stdout: the python to run kubernetes_validate with
    local pylog
    find_validator && return 0
    ensure_cmds python3:python3
    mkdir -p "$ROOT/.stack"
    pylog=$ROOT/.stack/check-deploy-pip.log
    log "pip install --upgrade kubernetes-validate (log: $pylog)"
    if ! python3 -m pip install -q --disable-pip-version-check --upgrade kubernetes-validate \
        >>"$pylog" 2>&1 || ! validator_ok python3; then
        # No pip, or an "externally managed" system python (Debian): a private virtualenv.
        log "pip into python3 failed; using a virtualenv in $VENV"
        [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" >>"$pylog" 2>&1 || {
            apt_install python3-venv python3-pip
            python3 -m venv "$VENV" >>"$pylog" 2>&1
        } || die "cannot create a virtualenv in $VENV (see $pylog)"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade \
            kubernetes-validate >>"$pylog" 2>&1 || die "pip install kubernetes-validate failed (see $pylog)"
    fi
    find_validator || die "kubernetes-validate installed but it does not support: ${VERSIONS[*]} (see $pylog)"
}

PY=$(ensure_validator)
KV_VERSION=$("$PY" -m kubernetes_validate --version)
FAILED=0

# kubernetes-validate --strict over files $2... of directory $1 (names shown relative to it).
# Fails on a non-zero exit or any line that is not INFO: WARN (no schema for that
# kind/apiVersion: a typo'd apiVersion or kind), ERROR, FATAL.
validate() {
    local dir=$1 out rc=0 bad k_args=() v
    shift
    for v in "${VERSIONS[@]}"; do k_args+=(-k "$v"); done
    out=$(cd "$dir" && "$PY" -m kubernetes_validate --strict "${k_args[@]}" "$@" 2>&1) || rc=$?
    [[ -z $out ]] || printf '%s\n' "$out"
    bad=$(grep -cv '^INFO ' <<<"$out" || true)
    if ((rc != 0 || bad > 0)); then
        log "FAIL: kubernetes-validate exit $rc, $bad line(s) other than INFO"
        return 1
    fi
}

shopt -s nullglob
manifests=()
for f in "$K8S_DIR"/*.yaml; do
    [[ $(basename "$f") == kustomization.yaml ]] || manifests+=("$f")
done
((${#manifests[@]} > 0)) || die "no manifests in $K8S_DIR"

log "1/3 kubernetes-validate $KV_VERSION --strict, Kubernetes ${VERSIONS[*]}: ${#manifests[@]} files"
validate "$K8S_DIR" "${manifests[@]##*/}" || FAILED=1

log "2/3 consistency: kustomization resources, duplicate keys, selectors, references, hosts, images"
if ! "$PY" - "$K8S_DIR" <<'EOF'; then
import base64
import glob
import ipaddress
import os
import sys
from urllib.parse import urlsplit

import yaml

directory = sys.argv[1]
problems = []
KUSTOMIZATION = "kustomization.yaml"
SECRET_EXAMPLE = "secret.example.yaml"
SECRET_KEYS = {"COUPON__MYSQL__PASSWORD", "COUPON__REDIS__URL", "COUPON__ADMIN__TOKEN"}


class Loader(yaml.SafeLoader):
    pass


def no_duplicate_keys(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            mark = key_node.start_mark
            problems.append(f"{os.path.basename(mark.name)}:{mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicate_keys)


def load(name):
    with open(os.path.join(directory, name)) as f:
        try:
            return [doc for doc in yaml.load_all(f, Loader=Loader) if doc]
        except yaml.YAMLError as e:
            problems.append(f"{name}: not valid YAML: {' '.join(str(e).split())}")
            return []


names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "*.yaml")))
for stray in sorted(glob.glob(os.path.join(directory, "*.yml"))):
    problems.append(f"{os.path.basename(stray)}: use the .yaml extension (this check reads *.yaml)")

# kustomization.yaml lists every manifest but the secret example.
if KUSTOMIZATION not in names:
    problems.append(f"{KUSTOMIZATION} is missing")
    kustomization = {}
else:
    docs = load(KUSTOMIZATION)
    kustomization = docs[0] if len(docs) == 1 and isinstance(docs[0], dict) else {}
    if kustomization.get("kind") != "Kustomization":
        problems.append(f"{KUSTOMIZATION}: expected one document of kind Kustomization")
listed = kustomization.get("resources") or []
expected = [n for n in names if n not in (KUSTOMIZATION, SECRET_EXAMPLE)]
for n in expected:
    if n not in listed:
        problems.append(f"{KUSTOMIZATION}: resources does not list {n}")
for n in listed:
    if n == SECRET_EXAMPLE:
        problems.append(f"{KUSTOMIZATION}: resources lists {SECRET_EXAMPLE}; it is an example only")
    elif n not in names:
        problems.append(f"{KUSTOMIZATION}: resources lists {n!r}, not a manifest of this directory")
if len(set(listed)) != len(listed):
    problems.append(f"{KUSTOMIZATION}: resources lists a file twice")
image_names = {i.get("name") for i in kustomization.get("images") or [] if isinstance(i, dict)}

objects = []  # (file, object)
for n in names:
    if n == KUSTOMIZATION:
        continue
    for doc in load(n):
        if isinstance(doc, dict):
            objects.append((n, doc))


def meta(obj, field):
    return (obj.get("metadata") or {}).get(field)


def namespace(obj):
    return meta(obj, "namespace") or kustomization.get("namespace") or "default"


config_maps = {(namespace(o), meta(o, "name")) for _, o in objects if o.get("kind") == "ConfigMap"}
secrets = {(namespace(o), meta(o, "name")) for f, o in objects if o.get("kind") == "Secret"}

# Pod templates, with the labels they carry.
templates = []  # (file, object, namespace, labels, pod spec)
for f, o in objects:
    spec = o.get("spec") or {}
    kind = o.get("kind")
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"):
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        templates.append((f, o, namespace(o), labels, template.get("spec") or {}))
        match = (spec.get("selector") or {}).get("matchLabels")
        if kind != "Job" and kind != "CronJob" and match is not None:
            if any(labels.get(k) != v for k, v in match.items()):
                problems.append(f"{f}: {kind} {meta(o, 'name')}: selector {match} does not match its pod labels {labels}")


def selects_a_template(ns, selector):
    return any(t_ns == ns and all(labels.get(k) == v for k, v in selector.items())
               for _, _, t_ns, labels, _ in templates)


for f, o in objects:
    kind, spec = o.get("kind"), o.get("spec") or {}
    selector = None
    if kind == "Service" and spec.get("type") != "ExternalName":
        selector = spec.get("selector")
    elif kind == "PodDisruptionBudget":
        selector = (spec.get("selector") or {}).get("matchLabels")
    if selector is not None and not selects_a_template(namespace(o), selector):
        problems.append(f"{f}: {kind} {meta(o, 'name')}: selector {selector} matches no pod template here")

for f, o, ns, _, pod in templates:
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        where = f"{f}: {o.get('kind')} {meta(o, 'name')}: container {c.get('name')}"
        for source in c.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref and (ns, ref.get("name")) not in config_maps:
                problems.append(f"{where}: envFrom names ConfigMap {ref.get('name')!r}, not defined here")
            ref = source.get("secretRef")
            if ref and (ns, ref.get("name")) not in secrets:
                problems.append(f"{where}: envFrom names Secret {ref.get('name')!r}, not in {SECRET_EXAMPLE}")
        image = c.get("image") or ""
        repo = image.split("@")[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        if repo not in image_names:
            problems.append(f"{where}: image {image!r} has no `images:` entry in {KUSTOMIZATION}")


def loopback(host):
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


for f, o in objects:
    if o.get("kind") not in ("ConfigMap", "Secret"):
        continue
    values = dict(o.get("data") or {})
    if o["kind"] == "Secret":  # a Secret's `data` is base64; `stringData` is plain
        values = {k: base64.b64decode(str(v)).decode(errors="replace") for k, v in values.items()}
        values.update(o.get("stringData") or {})
    for key, value in values.items():
        where = f"{f}: {o['kind']} {meta(o, 'name')}: {key}"
        if not key.startswith("COUPON__"):
            problems.append(f"{where}: not a COUPON__* setting")
        if o["kind"] == "ConfigMap" and key in SECRET_KEYS:
            problems.append(f"{where}: a secret; it belongs in the Secret ({SECRET_EXAMPLE})")
        value = str(value)
        if key == "COUPON__KAFKA__BOOTSTRAP_SERVERS":
            hosts = [e.strip().rsplit(":", 1)[0] for e in value.split(",") if e.strip()]
        elif key == "COUPON__MYSQL__HOST":
            hosts = [value]
        elif key == "COUPON__REDIS__URL":
            hosts = [urlsplit(value).hostname or ""]
        else:
            hosts = []
        for host in hosts:
            if loopback(host):
                problems.append(f"{where}: {host!r} is a loopback host, refused in the production profile")
    if o["kind"] == "ConfigMap" and values.get("COUPON__PROFILE") != "production":
        problems.append(f"{f}: ConfigMap {meta(o, 'name')}: COUPON__PROFILE must be production")
    if o["kind"] == "Secret":
        for key in sorted(SECRET_KEYS - values.keys()):
            problems.append(f"{f}: Secret {meta(o, 'name')}: does not document {key}")

for p in problems:
    print(f"  {p}")
print(f"  {len(objects)} objects in {len(names) - 1} manifests: "
      f"{'OK' if not problems else str(len(problems)) + ' problem(s)'}")
sys.exit(1 if problems else 0)
EOF
    log "FAIL: consistency"
    FAILED=1
fi

if command -v kubectl >/dev/null 2>&1; then
    build=(kubectl kustomize "$K8S_DIR")
elif command -v kustomize >/dev/null 2>&1; then
    build=(kustomize build "$K8S_DIR")
else
    build=()
fi
if ((${#build[@]} == 0)); then
    log "3/3 skipped: neither kubectl nor kustomize on PATH (steps 1-2 still cover every file)"
else
    log "3/3 ${build[*]} (offline) and kubernetes-validate of its output"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    if "${build[@]}" >"$tmp/kustomized.yaml" 2>"$tmp/build.err"; then
        validate "$tmp" kustomized.yaml || FAILED=1
    else
        cat "$tmp/build.err" >&2
        log "FAIL: ${build[*]}"
        FAILED=1
    fi
fi

if ((FAILED != 0)); then
    log "deploy manifests: FAILED"
    exit 1
fi
log "deploy manifests: OK"

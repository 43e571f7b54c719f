#!/usr/bin/env bash
# slb-ryu: prepare this machine (Debian 12, root) to run the demo and the tests.
#
#   1. Debian packages (Open vSwitch, Mininet, ping/ethtool/iperf3/tcpdump, venv)
#   2. Open vSwitch daemons running (userspace datapath; no kernel module needed)
#   3. <repo>/.venv from Debian's /usr/bin/python3 with --system-site-packages
#      (so Debian's mininet imports), Ryu 4.34 + pinned deps (constraints.txt),
#      scripts/patch_ryu.py, then `pip install -e .`
#   4. checks: ryu-manager --version; import mininet.net, ryu.app.wsgi
#
# Idempotent and fast when everything is already there (a stamp file in .venv
# records the hash of the inputs; change one and the pip steps run again).
# Environment: SLB_SKIP_APT=1 skips step 1, SLB_SKIP_OVS=1 skips step 2,
# SLB_FORCE_PIP=1 reruns the pip steps.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/scripts/setup.sh"
VENV="$REPO/.venv"
PY_BASE=/usr/bin/python3
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
APT_PACKAGES=(
    openvswitch-switch openvswitch-common mininet
    iproute2 iputils-ping ethtool net-tools iperf3 tcpdump procps
    prometheus
    python3 python3-venv ca-certificates make curl
)
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
t_start=$SECONDS

# --- 1. Debian packages -------------------------------------------------------
if [[ "${SLB_SKIP_APT:-0}" != 1 ]]; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]})); then
        [[ $(id -u) == 0 ]] || die "need root to apt-get install: ${missing[*]}"
        log "apt-get install ${missing[*]}"
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        log "Debian packages: all present"
    fi
fi

# --- 2. Open vSwitch ----------------------------------------------------------
if [[ "${SLB_SKIP_OVS:-0}" != 1 ]]; then
    if ovs-vsctl -t 2 show >/dev/null 2>&1; then
        log "Open vSwitch: running"
    else
        [[ $(id -u) == 0 ]] || die "need root to start Open vSwitch"
        log "starting Open vSwitch (ovs-ctl start --system-id=random)"
        # The 'ulimit: error setting limit' and 'no loadable module' messages are harmless.
        "$OVS_CTL" start --system-id=random || true
        for _ in $(seq 1 50); do
            ovs-vsctl -t 2 show >/dev/null 2>&1 && break
            sleep 0.2
        done
        ovs-vsctl -t 2 show >/dev/null 2>&1 || die "Open vSwitch did not start ($OVS_CTL status: $("$OVS_CTL" status 2>&1 | tr '\n' ' '))"
        log "Open vSwitch: started"
    fi
fi

# --- 3. venv ------------------------------------------------------------------
[[ -x "$PY_BASE" ]] || die "$PY_BASE not found (Debian's python3)"
if [[ -x "$VENV/bin/python" ]] && grep -qx 'include-system-site-packages = true' "$VENV/pyvenv.cfg" 2>/dev/null \
    && [[ "$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)' 2>/dev/null)" == "$PY_BASE"* ]]; then
    :
else
    log "creating $VENV from $PY_BASE ($("$PY_BASE" --version)) with --system-site-packages"
    rm -rf "$VENV"
    "$PY_BASE" -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip)

inputs_hash() {
    cat "$REPO/constraints.txt" "$REPO/requirements.txt" "$REPO/requirements-dev.txt" "$REPO/setup.cfg" "$REPO/setup.py" \
        "$REPO/scripts/patch_ryu.py" "$SELF" 2>/dev/null | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.slb-setup-stamp"
want="$(inputs_hash)"
if [[ "${SLB_FORCE_PIP:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    log "Python packages: up to date ($STAMP)"
else
    rm -f "$STAMP"
    c=(-c "$REPO/constraints.txt")
    log "pip: build tooling (setuptools<68, wheel, pbr)"
    "${PIP[@]}" install -q "${c[@]}" setuptools wheel pbr
    log "pip: ryu 4.34 + pinned dependencies + test tools"
    "${PIP[@]}" install -q --no-build-isolation "${c[@]}" -r "$REPO/requirements-dev.txt"
    "$PY" "$REPO/scripts/patch_ryu.py"
    log "pip: editable install of slb-ryu"
    "${PIP[@]}" install -q --no-build-isolation "${c[@]}" -e "$REPO"
fi
# Always (cheap, idempotent): the eventlet fix must be in place.
"$PY" "$REPO/scripts/patch_ryu.py" >/dev/null

# --- 4. checks ----------------------------------------------------------------
ryu_version="$("$VENV/bin/ryu-manager" --version 2>&1)" || die "ryu-manager --version failed: $(tail -3 <<<"$ryu_version")"
(cd / && "$PY" -c 'import mininet.net, ryu.app.wsgi, ryu.lib.ovs.bridge') \
    || die "import mininet.net / ryu.app.wsgi failed in $VENV"
echo "$want" >"$STAMP"
log "ok: $ryu_version, python $("$PY" -c 'import platform; print(platform.python_version())'), $((SECONDS - t_start))s"

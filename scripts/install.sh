#!/usr/bin/env bash
# slb-ryu: install the controller as a service on a hypervisor (Debian 12, root).
#
#   sudo scripts/install.sh            # then edit /etc/slb-ryu/slb-ryu.conf and
#                                      # systemctl enable --now slb-ryu
#
#   1. a production venv under PREFIX (default /opt/slb-ryu) from Debian's python3,
#      isolated (no --system-site-packages), with the runtime requirements only
#      (requirements.txt, versions pinned by constraints.txt) and slb-ryu itself
#      installed from a wheel built here (not editable: the clone can go away);
#   2. the systemd unit etc/systemd/slb-ryu.service into UNITDIR, with PREFIX substituted;
#   3. CONFDIR (/etc/slb-ryu) with the sample configuration, copied to slb-ryu.conf only
#      if there is none (an existing configuration is never overwritten);
#   4. slb-ctl and slb-ryu linked into BINDIR (/usr/local/bin), slb-ctl's bash completion
#      into COMPLETIONDIR (/usr/share/bash-completion/completions).
#
# Idempotent: run it again after `git pull` to upgrade (the service is restarted only if
# it is running and systemd is PID 1). Nothing outside PREFIX, UNITDIR, CONFDIR, BINDIR
# and COMPLETIONDIR is touched. The tests install into a temporary directory with
#   scripts/install.sh --prefix T/opt --confdir T/etc --unitdir T/unit --bindir T/bin \
#       --completiondir T/completions --no-systemctl
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/slb-ryu
CONFDIR=/etc/slb-ryu
UNITDIR=/etc/systemd/system
BINDIR=/usr/local/bin
COMPLETIONDIR=/usr/share/bash-completion/completions
PY_BASE=/usr/bin/python3
SYSTEMCTL=1

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    echo "options: --prefix DIR --confdir DIR --unitdir DIR --bindir DIR --completiondir DIR"
    echo "         --python PATH --no-systemctl"
}

while (($#)); do
    case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --confdir) CONFDIR="$2"; shift 2 ;;
    --unitdir) UNITDIR="$2"; shift 2 ;;
    --bindir) BINDIR="$2"; shift 2 ;;
    --completiondir) COMPLETIONDIR="$2"; shift 2 ;;
    --python) PY_BASE="$2"; shift 2 ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
t_start=$SECONDS

[[ -x "$PY_BASE" ]] || die "$PY_BASE not found (apt-get install python3 python3-venv)"
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path: $PREFIX" ;; esac
command -v ovs-vsctl >/dev/null || log "warning: ovs-vsctl not found (apt-get install openvswitch-switch)"

# --- 1. production venv --------------------------------------------------------------
if [[ ! -x "$PREFIX/bin/python" ]] || grep -qx 'include-system-site-packages = true' "$PREFIX/pyvenv.cfg"; then
    log "creating venv $PREFIX ($("$PY_BASE" --version))"
    rm -rf "$PREFIX"
    "$PY_BASE" -m venv "$PREFIX"
fi
PIP=("$PREFIX/bin/python" -m pip)
c=(-c "$REPO/constraints.txt")
# ryu 4.34 builds with pbr and breaks with setuptools>=68: build tools first, then
# everything without build isolation so that setuptools is the one used.
log "pip: build tools"
"${PIP[@]}" install -q "${c[@]}" setuptools wheel pbr
log "pip: runtime requirements (requirements.txt + constraints.txt)"
"${PIP[@]}" install -q --no-build-isolation "${c[@]}" -r "$REPO/requirements.txt"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
# Build from a copy of what the wheel holds: building in the clone leaves build/ and
# *.egg-info behind.
mkdir -p "$build/src"
cp -r "$REPO/setup.cfg" "$REPO/setup.py" "$REPO/README.md" "$REPO/slb_ryu" "$build/src/"
log "pip: slb-ryu wheel"
"${PIP[@]}" wheel -q --no-deps --no-build-isolation -w "$build/dist" "$build/src"
"${PIP[@]}" install -q --no-build-isolation --no-deps --force-reinstall "$build"/dist/slb_ryu-*.whl
"${PIP[@]}" check >/dev/null || die "pip check failed in $PREFIX: $("${PIP[@]}" check 2>&1 | head -5)"

# --- 2. systemd unit -----------------------------------------------------------------
mkdir -p "$UNITDIR"
sed "s#/opt/slb-ryu/#${PREFIX%/}/#g" "$REPO/etc/systemd/slb-ryu.service" >"$UNITDIR/slb-ryu.service.tmp"
mv "$UNITDIR/slb-ryu.service.tmp" "$UNITDIR/slb-ryu.service"
chmod 0644 "$UNITDIR/slb-ryu.service"
log "unit: $UNITDIR/slb-ryu.service"

# --- 3. configuration ----------------------------------------------------------------
mkdir -p "$CONFDIR"
chmod 0750 "$CONFDIR"
sample="$REPO/etc/slb-ryu.conf.sample"
if [[ -f "$sample" ]]; then
    install -m 0640 "$sample" "$CONFDIR/slb-ryu.conf.sample"
    if [[ ! -e "$CONFDIR/slb-ryu.conf" ]]; then
        install -m 0640 "$sample" "$CONFDIR/slb-ryu.conf"
        log "config: $CONFDIR/slb-ryu.conf (from the sample: set [slb] uplinks)"
    else
        log "config: $CONFDIR/slb-ryu.conf kept (new sample: $CONFDIR/slb-ryu.conf.sample)"
    fi
else
    log "warning: $sample missing: write $CONFDIR/slb-ryu.conf yourself (docs/operator.md)"
fi

# --- 4. commands on PATH, completion -------------------------------------------------
mkdir -p "$BINDIR" "$COMPLETIONDIR"
for cmd in slb-ctl slb-ryu; do
    [[ -x "$PREFIX/bin/$cmd" ]] && ln -sfn "$PREFIX/bin/$cmd" "$BINDIR/$cmd"
done
install -m 0644 "$REPO/etc/bash_completion.d/slb-ctl" "$COMPLETIONDIR/slb-ctl"
log "commands: $BINDIR/slb-ctl, completion: $COMPLETIONDIR/slb-ctl"

# --- checks and systemd --------------------------------------------------------------
if [[ -x "$PREFIX/bin/slb-ryu" ]]; then
    version="$("$PREFIX/bin/slb-ryu" --version 2>&1)" || die "slb-ryu --version failed: $version"
    if [[ -f "$CONFDIR/slb-ryu.conf" ]] && ! "$PREFIX/bin/slb-ryu" check-config "$CONFDIR/slb-ryu.conf"; then
        log "warning: $CONFDIR/slb-ryu.conf has problems (above): fix them before starting"
    fi
else
    version="$("$PREFIX/bin/python" -c 'import importlib.metadata as m; print("slb-ryu", m.version("slb-ryu"))')"
    log "warning: $PREFIX/bin/slb-ryu missing (this slb-ryu has no launcher yet)"
fi
if ((SYSTEMCTL)) && [[ "$(ps -p 1 -o comm= 2>/dev/null)" == systemd ]]; then
    systemctl daemon-reload
    if systemctl is-active --quiet slb-ryu; then
        systemctl restart slb-ryu
        log "restarted the running slb-ryu service"
    fi
fi
log "ok: $version in $PREFIX, $((SECONDS - t_start))s"
log "next: edit $CONFDIR/slb-ryu.conf, then: systemctl enable --now slb-ryu"

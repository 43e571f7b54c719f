"""What scripts/install.sh installs, checked without installing: the systemd unit (with
`systemd-analyze verify`) and the split requirements (production gets runtime only)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "etc" / "systemd" / "slb-ryu.service"


def unit_sections() -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return {name: dict(parser[name]) for name in parser.sections()}


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~ \[]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_unit_runs_the_launcher_after_ovs_and_restarts():
    unit = unit_sections()
    assert unit["Unit"]["Requires"] == "openvswitch-switch.service"
    assert "openvswitch-switch.service" in unit["Unit"]["After"].split()
    service = unit["Service"]
    assert service["ExecStart"] == (
        "/opt/slb-ryu/bin/slb-ryu --config-file /etc/slb-ryu/slb-ryu.conf"
    )
    assert (service["Restart"], service["RestartSec"]) == ("always", "1")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_is_hardened_but_can_reach_ovsdb():
    service = unit_sections()["Service"]
    assert service["CapabilityBoundingSet"] == ""  # no capability at all
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    # ovs-vsctl connects to /run/openvswitch/db.sock (root:root 0750): root, AF_UNIX.
    assert service["User"] == "root"
    assert "/run/openvswitch" in service["ReadWritePaths"]
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()
    assert "PrivateNetwork" not in service  # it must reach OVS over TCP/unix sockets


def test_systemd_analyze_verifies_the_unit(tmp_path):
    """`systemd-analyze verify` works without systemd as PID 1 (it loads the unit in a
    test manager): unknown keys, bad values, missing dependencies and a missing
    ExecStart binary all show up. The launcher is not installed here, so ExecStart
    points at this interpreter (the installed unit is verified in
    tests/integration/test_install.py)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze missing: apt-get install systemd")
    unit = tmp_path / "slb-ryu.service"
    unit.write_text(UNIT.read_text().replace("/opt/slb-ryu/bin/slb-ryu", shutil.which("true")))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_systemd_analyze_catches_a_bad_unit(tmp_path):
    """The check above can fail: a typo in a key is reported (on stderr, exit 0)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze missing: apt-get install systemd")
    unit = tmp_path / "slb-ryu.service"
    text = UNIT.read_text().replace("/opt/slb-ryu/bin/slb-ryu", shutil.which("true"))
    unit.write_text(text.replace("RestartSec=1", "RestartSecs=1"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Unknown key 'RestartSecs'" in done.stderr


def test_production_requirements_are_runtime_only_and_pinned():
    runtime = requirement_names(REPO / "requirements.txt")
    dev = REPO / "requirements-dev.txt"
    pinned = {
        m.group(1).lower().replace("_", "-")
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", (REPO / "constraints.txt").read_text(), re.M)
    }
    assert {"ryu", "eventlet", "dnspython", "greenlet", "prometheus-client"} <= runtime
    assert not runtime & {"pytest", "hypothesis", "ruff", "schemathesis", "scapy", "matplotlib"}
    assert runtime <= pinned, f"not pinned in constraints.txt: {runtime - pinned}"
    assert requirement_names(dev) <= pinned
    assert "-r requirements.txt" in dev.read_text().splitlines()

"""scripts/install.sh into a temporary prefix, then the installed unit's ExecStart line run
as systemd would run it, against a Mininet chassis.

Prefix 'pm' (pmhv1 with uplinks pmhv1-eth1/-eth2, VMs pmv11/pmv12, remotes pmr1/pmr2),
OpenFlow port 6697, REST port 8107 (set in the configuration file, as an operator would).
The install takes ~10 s with pip's cache warm (`time scripts/install.sh --prefix ...`).

The unit starts `<prefix>/bin/slb-ryu`, the launcher (slb_ryu/launcher.py).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from lab import testbed as h

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
OF_PORT = 6697
WS_PORT = 8107
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=2, remotes=2, prefix="pm")
UPLINKS = ("pmhv1-eth1", "pmhv1-eth2")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("install")
    done = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "install.sh"),
            "--prefix",
            str(root / "opt"),
            "--confdir",
            str(root / "etc"),
            "--unitdir",
            str(root / "unit"),
            "--bindir",
            str(root / "bin"),
            "--completiondir",
            str(root / "completions"),
            "--no-systemctl",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def exec_start(root: Path) -> list[str]:
    """The installed unit's ExecStart, with the config path moved under `root`."""
    unit = (root / "unit" / "slb-ryu.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    return [
        str(root / "etc" / "slb-ryu.conf") if a == "/etc/slb-ryu/slb-ryu.conf" else a for a in argv
    ]


def test_production_venv_holds_runtime_only(installed):
    prefix = installed / "opt"
    assert "include-system-site-packages = false" in (prefix / "pyvenv.cfg").read_text()
    listed = subprocess.run(
        [str(prefix / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.lower()
    names = {line.split("==")[0].replace("_", "-") for line in listed.split()}
    assert {"ryu", "eventlet", "slb-ryu", "prometheus-client"} <= names
    assert not names & {"pytest", "hypothesis", "ruff", "schemathesis", "scapy", "mininet"}
    # A wheel install, not editable: slb_ryu imports from the prefix, not from the clone.
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import slb_ryu; print(slb_ryu.__file__)"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        check=True,
    ).stdout.strip()
    assert where.startswith(str(prefix)), where
    assert exec_start(installed)[0] == str(prefix / "bin" / "slb-ryu")
    assert (installed / "bin" / "slb-ctl").resolve() == prefix / "bin" / "slb-ctl"
    assert (installed / "completions" / "slb-ctl").read_text().startswith("# bash completion")


def test_installed_unit_verifies(installed):
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(installed / "unit" / "slb-ryu.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


class ExecStartController(h.Controller):
    """The test bed's controller, started with the unit's command line instead."""

    def __init__(self, argv: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self._argv = argv

    def argv(self) -> list[str]:
        return self._argv


def test_exec_start_line_runs_the_controller(installed, network_factory):
    (installed / "etc" / "slb-ryu.conf").write_text(
        f"[DEFAULT]\nofp_tcp_listen_port = {OF_PORT}\nwsapi_host = 127.0.0.1\n"
        f"wsapi_port = {WS_PORT}\n\n[slb]\nuplinks = {', '.join(UPLINKS)}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    argv = exec_start(installed)
    assert Path(argv[0]).is_file(), f"{argv[0]} missing: the launcher's console script"
    ctl = ExecStartController(argv, of_port=OF_PORT, ws_port=WS_PORT, env=env)
    with ctl:
        net = network_factory(controller_port=OF_PORT, **TOPO)
        h.wait_synced(ctl)
        r1 = net.get("pmr1")
        for vm in ("pmv11", "pmv12"):
            h.wait_until(
                lambda v=vm: h.ping_learned(ctl, net.get(v), r1), timeout=10, desc=f"{vm} -> pmr1"
            )
        placement = ctl.placement()
        assert {row["uplink"] for row in placement.values()} <= set(UPLINKS)
        assert len(placement) == 2, placement
        assert ctl.get_json("/slb/v1/health")["status"] == "ok"
        flows = h.dump_flows("pmhv1", raw=True)
        assert any("02:00:00:00:01:01" in f for f in flows), flows
    assert ctl.proc.returncode is not None


def test_ovsdb_is_readable_without_any_capability(ovs):
    """The unit runs as root with CapabilityBoundingSet= (none) and NoNewPrivileges: the
    same restriction here (setpriv) must still let ovs-vsctl read OVSDB through
    /run/openvswitch/db.sock (root:root 0750: the owner needs no capability)."""
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--no-new-privs",
            "--",
            "sh",
            "-c",
            "grep CapEff /proc/self/status && ovs-vsctl --timeout=5 list-br",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "CapEff:\t0000000000000000" in done.stdout

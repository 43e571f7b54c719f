"""The installed `slb-ryu` command runs the controller: on a Ryu whose wsgi.py is as 4.34
ships it (the import-time fix, no edited file), it manages a chassis bridge (health ok,
a VM pings a remote); a mistake in the config file stops it with the option named.

(Not test_launcher.py: tests/unit has that basename and the test dirs are not packages.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_launcher import unpatched_ryu

from lab import testbed as h

PREFIX = "ln"
OF_PORT, WS_PORT = 6700, 8110
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=1, remotes=2, prefix=PREFIX)
CONFIG = f"[slb]\nuplinks = {PREFIX}hv1-eth1, {PREFIX}hv1-eth2\nrebalance_interval = 0\n"
SLB_RYU = h.VENV_BIN / "slb-ryu"


class Command(h.Controller):
    """testbed.Controller running `slb-ryu ARGS` where it would run `ryu-manager ARGS APPS`."""

    def argv(self) -> list[str]:
        return [str(SLB_RYU), *super().argv()[1:]]


def unpatched_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    overlay = unpatched_ryu(tmp_path / "overlay")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(overlay)}, overlay


@pytest.mark.timeout(180)
def test_slb_ryu_runs_the_controller_on_an_unpatched_ryu(tmp_path, network_factory):
    env, overlay = unpatched_env(tmp_path)
    ctl = Command(apps=[], config=CONFIG, of_port=OF_PORT, ws_port=WS_PORT, ws_host=None, env=env)
    argv = ctl.argv()
    assert argv == [
        str(SLB_RYU),
        "--config-file",
        str(ctl.config_path),
        "--ofp-tcp-listen-port",
        str(OF_PORT),
        "--wsapi-port",
        str(WS_PORT),
    ]
    with ctl:
        net = network_factory(controller_port=OF_PORT, **TOPO)
        h.wait_synced(ctl)
        health = ctl.get_json("/slb/v1/health")
        assert health["status"] == "ok", health
        vm, r1 = net.get(PREFIX + "v11"), net.get(PREFIX + "r1")
        h.wait_until(lambda: h.ping_learned(ctl, vm, r1), timeout=15, desc="v11 pings r1")
        assert ctl.placement()[vm.MAC()]["uplink"] in (f"{PREFIX}hv1-eth1", f"{PREFIX}hv1-eth2")
        listening = h.sh(["ss", "-ltnH", f"sport = :{WS_PORT}"])
        assert f"127.0.0.1:{WS_PORT}" in listening, listening
        cmdline = Path(f"/proc/{ctl.pid}/cmdline").read_bytes().split(b"\0")
        assert str(SLB_RYU).encode() in cmdline
    # The Ryu that ran was the unpatched copy (Python compiled its wsgi.py).
    assert list((overlay / "ryu" / "app" / "__pycache__").glob("wsgi.*.pyc"))
    assert "ALREADY_HANDLED" not in ctl.log_text()


@pytest.mark.timeout(60)
def test_slb_ryu_refuses_a_config_mistake_naming_the_option(tmp_path):
    env, _ = unpatched_env(tmp_path)
    config = CONFIG + "api_readonly = true\npacket_in_rate = 4294967296\n"
    ctl = Command(apps=[], config=config, of_port=OF_PORT, ws_port=WS_PORT, env=env)
    with pytest.raises(h.TestbedError, match="exited"):
        ctl.start(timeout=30)
    log = ctl.log_text()
    assert "[slb] api_readonly: unknown option; did you mean api_read_only?" in log, log
    assert "[slb] packet_in_rate = 4294967296 is not allowed: an integer in 1..100000" in log
    assert ctl.proc.returncode != 0

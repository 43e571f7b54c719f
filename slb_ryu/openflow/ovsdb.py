"""Read port VLAN tags from OVSDB (`ovs-vsctl set port vif1 tag=10` makes vif1 an access
port). OpenFlow does not carry the tag, and the controller runs next to OVS, so the
ordinary `ovs-vsctl` client is the simplest reliable reader.
"""

from __future__ import annotations

import json
import subprocess


class OvsdbError(RuntimeError):
    pass


def port_tags(bridge: str, timeout: float = 3.0) -> dict[str, int]:
    """{port name: access VLAN} for the ports of `bridge` that have a tag."""
    cmd = ["ovs-vsctl", f"--timeout={int(timeout)}", "--format=json", "--", "--columns=name,tag"]
    try:
        ports = _run(["ovs-vsctl", f"--timeout={int(timeout)}", "list-ports", bridge], timeout)
        if not ports.split():
            return {}
        raw = _run(cmd + ["list", "Port"] + ports.split(), timeout)
        table = json.loads(raw)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise OvsdbError(str(exc)) from exc
    tags = {}
    for name, tag in table.get("data", []):
        if isinstance(tag, int) and 1 <= tag <= 4094:
            tags[str(name)] = tag
    return tags


def bfd_states(interfaces: list[str], timeout: float = 3.0) -> dict[str, tuple[str, int]]:
    """{interface: (BFD state, flap_count)} for those of `interfaces` with BFD enabled
    (`ovs-vsctl set interface eth1 bfd:enable=true`); state is 'up', 'down', 'init' or
    'admin_down', flap_count how often the session went up or down since it was enabled
    (0: never up). Interfaces without BFD are left out. OpenFlow does not carry BFD."""
    if not interfaces:
        return {}
    cmd = ["ovs-vsctl", f"--timeout={int(timeout)}", "--format=json", "--"]
    cmd += ["--columns=name,bfd_status", "list", "Interface", *interfaces]
    try:
        table = json.loads(_run(cmd, timeout))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise OvsdbError(str(exc)) from exc
    states = {}
    for row in table.get("data", []):
        try:
            name, (kind, pairs) = row
            status = dict(pairs) if kind == "map" else {}
        except (TypeError, ValueError):
            continue
        if isinstance(status.get("state"), str):
            try:
                flaps = int(status.get("flap_count", 0))
            except (TypeError, ValueError):
                flaps = 0
            states[str(name)] = (status["state"], flaps)
    return states


def attached_macs(bridge: str, timeout: float = 3.0) -> dict[str, str]:
    """{interface name: MAC} from `external_ids:attached-mac`, which XenServer and
    OpenStack set on VM interfaces: the one MAC that VM may send from."""
    cmd = ["ovs-vsctl", f"--timeout={int(timeout)}", "--format=json", "--"]
    try:
        ports = _run(["ovs-vsctl", f"--timeout={int(timeout)}", "list-ports", bridge], timeout)
        if not ports.split():
            return {}
        raw = _run(
            cmd + ["--columns=name,external_ids", "list", "Interface"] + ports.split(), timeout
        )
        table = json.loads(raw)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise OvsdbError(str(exc)) from exc
    macs = {}
    for name, ids in table.get("data", []):
        pairs = ids[1] if isinstance(ids, list) and len(ids) == 2 and ids[0] == "map" else []
        value = dict(tuple(p) for p in pairs if isinstance(p, list) and len(p) == 2)
        mac = value.get("attached-mac")
        if isinstance(mac, str) and mac:
            macs[str(name)] = mac
    return macs


def _run(cmd: list[str], timeout: float) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 2, check=False)
    if done.returncode != 0:
        raise OvsdbError(done.stderr.strip() or f"{cmd[0]} exited {done.returncode}")
    return done.stdout

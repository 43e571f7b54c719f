"""Stacked "virtual chassis" topology for slb-ryu (Mininet, userspace OVS).

Wiring (prefix '' shown; every node name gets ``prefix`` in front)::

          r1   r3 ..          r2   r4 ..      remote hosts (alternate agg1/agg2)
           |                   |
         agg1 ---------------- agg2           stacked aggregation pair
           |                   |
         tor1 ---------------- tor2           stacked in-rack (ToR) pair
          | |                 | |
          | +------ hv1 ------+ |             uplinks hv1-eth1 (tor1), hv1-eth2 (tor2),
          +-------- hv1 --------+               hv1-eth3 (tor1), hv1-eth4 (tor2) ...
                   /   \\
                 v11   v12 ...                VMs of hv1 (v<hv><n>)

* Fabric switches (tor*, agg*) are ``failMode='standalone'`` OVS bridges with RSTP on
  (agg1 is the root bridge); the tor/agg square is a loop that RSTP breaks. They
  never get an OpenFlow controller.
* Hypervisor bridges (hv*) are ``failMode='secure'``, ``protocols=OpenFlow13``,
  userspace datapath (``datapath_type=netdev``), controlled by the Mininet
  controllers (a ``RemoteController`` on 127.0.0.1:6653 by default). Their uplinks
  are ports 1..uplinks, VMs follow.
* OpenFlow port numbers equal Mininet port numbers (``X-ethN`` is ofport N).
* All hosts share 10.0.0.0/24; VMs get 10.0.0.11.., remotes 10.0.0.201..; MACs are
  fixed and locally administered. IPv6 is disabled on every interface we create.
* All links are ``TCLink`` with checksum offload off (``txo=False, rxo=False``):
  TCP through the userspace datapath needs it.

Command line (Mininet 2.3, Debian)::

    mn --custom mininet/chassis.py --topo chassis,hvs=1,uplinks=2,vms_per_hv=2 \\
       --controller remote,ip=127.0.0.1,port=6653

Do not add an ``__init__.py`` to this directory: as a namespace directory it can
never shadow the real ``mininet`` package. Load it by path (see
``load_chassis`` in lab/testbed.py). Top-level names here become
globals of ``mn`` when loaded with ``--custom``: do not define names that ``mn``
uses itself (``version``, ``CLI``, ``TESTS``, ...).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import TYPE_CHECKING

from mininet.link import TCIntf, TCLink
from mininet.net import Mininet
from mininet.node import Host, OVSSwitch, RemoteController
from mininet.topo import Topo

if TYPE_CHECKING:  # type-only imports: not run, so they add no globals to `mn --custom`
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from mininet.link import Intf
    from mininet.node import Controller, Node

CHASSIS_SUBNET = "10.0.0.0/24"
CHASSIS_DEFAULTS = {
    "hvs": 1,
    "uplinks": 2,
    "vms_per_hv": 2,
    "uplink_bw": None,
    "remotes": 2,
    "prefix": "",
    "vlans": None,
}
# Fabric port layout: tor/agg eth1 = stack link, eth2 = tor<->agg link.
_STACK_PORT = 1
_TORAGG_PORT = 2
_FIRST_EDGE_PORT = 3
_RSTP_PRIORITY = {"agg1": 4096, "agg2": 8192, "tor1": 32768, "tor2": 32768}
_ROLE_DPID = {"tor1": 0x1001, "tor2": 0x1002, "agg1": 0x2001, "agg2": 0x2002}


# ---------------------------------------------------------------------------
# Naming / addressing: pure functions, the single source of truth for the
# topology, the tests and the by-name cleanup.


def _check_params(
    hvs: int, uplinks: int, vms_per_hv: int, remotes: int, prefix: str | None
) -> None:
    if not 1 <= hvs <= 9:
        raise ValueError("hvs must be 1..9")
    if not 1 <= uplinks <= 4:
        raise ValueError("uplinks must be 1..4 (2..4 for a real bond)")
    if not 0 <= vms_per_hv <= 9:
        raise ValueError("vms_per_hv must be 0..9")
    if not 1 <= remotes <= 20:
        raise ValueError("remotes must be 1..20")
    if not re.fullmatch(r"[a-z]{0,3}", prefix or ""):
        raise ValueError("prefix must be 0..3 lowercase letters")


def chassis_dpid(name: str, prefix: str = "") -> str:
    """Distinct 16-hex-digit dpid of a chassis node (name WITHOUT prefix).

    hvN -> N, tor1/tor2 -> 0x1001/0x1002, agg1/agg2 -> 0x2001/0x2002; a prefix
    sets the upper 32 bits (its ASCII bytes) so prefixed copies differ."""
    if name in _ROLE_DPID:
        low = _ROLE_DPID[name]
    else:
        m = re.fullmatch(r"hv(\d+)", name)
        if not m:
            raise ValueError("not a chassis switch: %r" % name)
        low = int(m.group(1))
    high = int.from_bytes(prefix.encode(), "big") if prefix else 0
    return "%016x" % ((high << 32) | low)


def chassis_names(
    hvs: int = 1,
    uplinks: int = 2,
    vms_per_hv: int = 2,
    remotes: int = 2,
    prefix: str = "",
    **_ignored: Any,
) -> dict[str, Any]:
    """Names used by a topology with these parameters.

    Returns {'fabric': [...], 'hvs': [...], 'vms': {hv: [...]}, 'remotes': [...]}."""
    p = prefix
    return {
        "fabric": [p + "tor1", p + "tor2", p + "agg1", p + "agg2"],
        "hvs": ["%shv%d" % (p, h) for h in range(1, hvs + 1)],
        "vms": {
            "%shv%d" % (p, h): ["%sv%d%d" % (p, h, k) for k in range(1, vms_per_hv + 1)]
            for h in range(1, hvs + 1)
        },
        "remotes": ["%sr%d" % (p, j) for j in range(1, remotes + 1)],
    }


def host_addr(name: str, prefix: str = "") -> tuple[str, str]:
    """(ip_with_len, mac) of a VM ``v<h><k>`` or remote ``r<j>`` (name without prefix)."""
    m = re.fullmatch(r"v(\d)(\d)", name)
    if m:
        h, k = int(m.group(1)), int(m.group(2))
        return "10.0.0.%d/24" % (10 + (h - 1) * 9 + k), "02:00:00:00:%02x:%02x" % (h, k)
    m = re.fullmatch(r"r(\d+)", name)
    if m:
        j = int(m.group(1))
        return "10.0.0.%d/24" % (200 + j), "02:00:00:ff:00:%02x" % j
    raise ValueError("not a chassis host: %r" % name)


def uplink_map(
    hvs: int = 1, uplinks: int = 2, prefix: str = "", **_ignored: Any
) -> dict[str, list[dict[str, Any]]]:
    """For each hv, its uplinks in order and the ToR port facing each.

    Returns {hv_name: [{'uplink': 'hv1-eth1', 'port_no': 1, 'tor': 'tor1',
    'tor_port': 'tor1-eth3', 'tor_port_no': 3}, ...]} (names with prefix).
    Uplink i (1-based) goes to tor1 when i is odd, tor2 when even; ToR edge
    ports are numbered from 3 in (hv, uplink) order."""
    p = prefix
    next_port = {"tor1": _FIRST_EDGE_PORT, "tor2": _FIRST_EDGE_PORT}
    out = {}
    for h in range(1, hvs + 1):
        hv = "%shv%d" % (p, h)
        rows = []
        for i in range(1, uplinks + 1):
            tor = "tor1" if i % 2 else "tor2"
            tport = next_port[tor]
            next_port[tor] += 1
            rows.append(
                {
                    "uplink": "%s-eth%d" % (hv, i),
                    "port_no": i,
                    "tor": p + tor,
                    "tor_port": "%s%s-eth%d" % (p, tor, tport),
                    "tor_port_no": tport,
                }
            )
        out[hv] = rows
    return out


def remote_map(remotes: int = 2, prefix: str = "", **_ignored: Any) -> dict[str, tuple[str, str]]:
    """{remote: (agg_name, agg_port_name)}: r1 on agg1, r2 on agg2, r3 on agg1..."""
    p = prefix
    out = {}
    for j in range(1, remotes + 1):
        agg = "agg1" if j % 2 else "agg2"
        port = _FIRST_EDGE_PORT + (j - 1) // 2
        out["%sr%d" % (p, j)] = (p + agg, "%s%s-eth%d" % (p, agg, port))
    return out


def parse_vlans(vlans: int | str | Iterable[int | str] | None) -> list[int]:
    """VLAN list from a list or a string '10:20' / '10+20' / '10 20' (mn's --topo splits
    its arguments on commas, so a comma cannot separate them there)."""
    if vlans in (None, "", "None", "none", 0, "0"):
        return []
    if isinstance(vlans, (int, str)):
        vlans = re.split(r"[:+/ ]+", str(vlans).strip())
    out = [int(v) for v in vlans if str(v).strip()]
    if any(not 1 <= v <= 4094 for v in out):
        raise ValueError("VLANs must be 1..4094")
    return out


def host_vlans(
    hvs: int = 1,
    vms_per_hv: int = 2,
    remotes: int = 2,
    prefix: str = "",
    vlans: int | str | Iterable[int | str] | None = None,
    **_ignored: Any,
) -> dict[str, int]:
    """{host: access VLAN} when ``vlans`` is given: each hv's VMs alternate over the VLANs
    (v11 -> first, v12 -> second, ...); remotes go in pairs (r1, r2 -> first; r3, r4 ->
    second ...) so every VLAN has a remote on agg1 and on agg2. Empty without ``vlans``."""
    vids = parse_vlans(vlans)
    if not vids:
        return {}
    names = chassis_names(hvs, 1, vms_per_hv, remotes, prefix)
    out = {}
    for vms in names["vms"].values():
        for k, vm in enumerate(vms):
            out[vm] = vids[k % len(vids)]
    for j, r in enumerate(names["remotes"]):
        out[r] = vids[(j // 2) % len(vids)]  # pairs, so each VLAN has a host on agg1 and agg2
    return out


def _bw_for(uplink_bw: float | str | Sequence[float | str] | None, i: int) -> float | None:
    """Bandwidth (Mbit/s or None) of uplink i (0-based) from a scalar or a list."""
    if isinstance(uplink_bw, (list, tuple)):
        bw = uplink_bw[i % len(uplink_bw)]
    else:
        bw = uplink_bw
    if bw in (None, "None", "none", "", 0):
        return None
    return float(bw)


# ---------------------------------------------------------------------------
# Node / link classes


def _no_ipv6(node: Node, intf: str) -> None:
    node.cmd("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 2>/dev/null" % intf)


class ChassisIntf(TCIntf):
    """TCIntf that disables IPv6 on itself before it is brought up (no RS/ND/MLD)."""

    def config(self, **params: Any) -> dict[str, Any] | None:
        _no_ipv6(self.node, self.name)
        return super().config(**params)


class ChassisLink(TCLink):
    """TCLink with checksum offload off and IPv6 disabled on both ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls1", ChassisIntf)
        kwargs.setdefault("cls2", ChassisIntf)
        kwargs.setdefault("txo", False)
        kwargs.setdefault("rxo", False)
        super().__init__(*args, **kwargs)


class ChassisHost(Host):
    """Host with IPv6 off in its namespace."""

    def config(self, **params: Any) -> dict[str, Any]:
        r = super().config(**params)
        for key in ("all", "default", "lo"):
            self.cmd("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 2>/dev/null" % key)
        return r


class _AccessPorts:
    """Mixin: ``port_vlans={port_no: vid}`` makes those ports 802.1Q access ports
    (OVSDB ``tag``), set in the same ovs-vsctl transaction that adds the port."""

    def intfOpts(self, intf: Intf) -> str:  # noqa: N802 (Mininet API)
        opts = super().intfOpts(intf)
        vid = (getattr(self, "port_vlans", None) or {}).get(self.ports.get(intf))
        return opts + (" -- set Port %s tag=%d" % (intf, vid) if vid else "")


class FabricSwitch(_AccessPorts, OVSSwitch):
    """Standalone (learning) userspace OVS bridge with RSTP, never controlled."""

    def __init__(
        self,
        name: str,
        rstp_priority: int = 32768,
        port_vlans: Mapping[int, int] | None = None,
        **params: Any,
    ) -> None:
        self.port_vlans = dict(port_vlans or {})
        params.setdefault("failMode", "standalone")
        params.setdefault("datapath", "user")
        super().__init__(name, **params)
        self.rstp_priority = rstp_priority

    def bridgeOpts(self) -> str:  # noqa: N802 (Mininet API)
        # Created in the same ovs-vsctl transaction as the bridge: RSTP is on
        # before any port forwards, so the loop never storms.
        return super().bridgeOpts() + (
            " rstp_enable=true other_config:rstp-priority=%d" % self.rstp_priority
        )

    def intfOpts(self, intf: Intf) -> str:  # noqa: N802 (Mininet API)
        # Host/hypervisor-facing ports (eth3..) are RSTP admin-edge ports: they
        # forward at once. A BPDU arriving on one (a hypervisor bridging two
        # uplinks) still makes RSTP treat it as a bridge port: loop protection.
        opts = super().intfOpts(intf)
        if self.ports.get(intf, 0) >= _FIRST_EDGE_PORT:
            opts += " -- set Port %s other_config:rstp-port-admin-edge=true" % intf
        return opts

    def start(self, controllers: list[Controller]) -> None:
        super().start([])


class HvSwitch(_AccessPorts, OVSSwitch):
    """Hypervisor bridge: secure, OpenFlow 1.3, userspace datapath."""

    def __init__(
        self, name: str, port_vlans: Mapping[int, int] | None = None, **params: Any
    ) -> None:
        params.setdefault("failMode", "secure")
        params.setdefault("datapath", "user")
        params.setdefault("protocols", "OpenFlow13")
        super().__init__(name, **params)
        self.port_vlans = dict(port_vlans or {})


# ---------------------------------------------------------------------------
# The topology


class ChassisTopo(Topo):
    """Stacked ToR pair + stacked aggregation pair + remotes + hypervisor bridges.

    hvs: number of hypervisor bridges (1..9); uplinks: uplinks per hv (1..4);
    vms_per_hv: VMs per hv (0..9); uplink_bw: Mbit/s for hv uplinks (None =
    unlimited; a list gives per-uplink values, cycled); remotes: hosts on the
    aggregation pair (alternating agg1/agg2); prefix: prepended to every node name;
    vlans: e.g. '10:20' makes VMs and remotes access ports of those VLANs, alternating
    (hypervisor VM ports and aggregation host ports get an OVSDB ``tag``; links between
    switches are trunks).
    """

    def build(
        self,
        hvs: int | str = 1,
        uplinks: int | str = 2,
        vms_per_hv: int | str = 2,
        uplink_bw: float | str | Sequence[float | str] | None = None,
        remotes: int | str = 2,
        prefix: str | None = "",
        vlans: int | str | Iterable[int | str] | None = None,
    ) -> None:
        hvs, uplinks, vms_per_hv, remotes = int(hvs), int(uplinks), int(vms_per_hv), int(remotes)
        prefix = "" if prefix in (None, "None") else str(prefix)
        tags = host_vlans(hvs, vms_per_hv, remotes, prefix, vlans)
        _check_params(hvs, uplinks, vms_per_hv, remotes, prefix)
        p = prefix
        remote_ports = {
            agg: {
                int(port.rsplit("eth", 1)[1]): tags[r]
                for r, (a, port) in remote_map(remotes, p).items()
                if a == agg and tags.get(r)
            }
            for agg in (p + "agg1", p + "agg2")
        }
        for role in ("agg1", "agg2", "tor1", "tor2"):
            self.addSwitch(
                p + role,
                cls=FabricSwitch,
                dpid=chassis_dpid(role, p),
                rstp_priority=_RSTP_PRIORITY[role],
                port_vlans=remote_ports.get(p + role),
            )
        # Stack links (eth1 on both ends) and tor<->agg links (eth2 on both ends).
        self.addLink(p + "tor1", p + "tor2", _STACK_PORT, _STACK_PORT, cls=ChassisLink)
        self.addLink(p + "agg1", p + "agg2", _STACK_PORT, _STACK_PORT, cls=ChassisLink)
        self.addLink(p + "tor1", p + "agg1", _TORAGG_PORT, _TORAGG_PORT, cls=ChassisLink)
        self.addLink(p + "tor2", p + "agg2", _TORAGG_PORT, _TORAGG_PORT, cls=ChassisLink)

        for rname, (agg, aport) in remote_map(remotes, p).items():
            ip, mac = host_addr(rname[len(p) :])
            self.addHost(rname, cls=ChassisHost, ip=ip, mac=mac)
            self.addLink(rname, agg, 0, int(aport.rsplit("eth", 1)[1]), cls=ChassisLink)

        names = chassis_names(hvs, uplinks, vms_per_hv, remotes, p)
        for hv, rows in uplink_map(hvs, uplinks, p).items():
            vm_ports = {
                uplinks + k: tags[vm]
                for k, vm in enumerate(names["vms"][hv], start=1)
                if tags.get(vm)
            }
            self.addSwitch(
                hv, cls=HvSwitch, dpid=chassis_dpid(hv[len(p) :], p), port_vlans=vm_ports
            )
            # Uplinks first: hvN-eth1..ethU.
            for i, row in enumerate(rows):
                bw = _bw_for(uplink_bw, i)
                opts = {"bw": bw} if bw else {}
                self.addLink(
                    hv, row["tor"], row["port_no"], row["tor_port_no"], cls=ChassisLink, **opts
                )
            for k, vm in enumerate(names["vms"][hv], start=1):
                ip, mac = host_addr(vm[len(p) :])
                self.addHost(vm, cls=ChassisHost, ip=ip, mac=mac)
                self.addLink(vm, hv, 0, uplinks + k, cls=ChassisLink)


topos = {"chassis": ChassisTopo}


# ---------------------------------------------------------------------------
# Programmatic use


def build_chassis_net(
    controller_port: int = 6653, controller_ip: str = "127.0.0.1", **topo_params: Any
) -> Mininet:
    """A built-but-not-started Mininet for ChassisTopo(**topo_params).

    The hv bridges get one RemoteController(controller_ip, controller_port); the
    fabric ignores it. Call ``net.start()``, then ``chassis_post_start(net)``."""
    topo = ChassisTopo(**topo_params)
    net = Mininet(
        topo=topo,
        build=False,
        controller=None,
        link=ChassisLink,
        host=ChassisHost,
        autoSetMacs=False,
        cleanup=False,
    )
    net.addController(
        RemoteController(
            "%sc0" % topo_params.get("prefix", ""), ip=controller_ip, port=controller_port
        )
    )
    net.build()
    return net


def chassis_post_start(net: Mininet) -> None:
    """Best-effort: IPv6 off on the bridges' own (LOCAL) interfaces."""
    for sw in net.switches:
        _no_ipv6(sw, sw.name)


def _run(cmd: Sequence[str], timeout: float = 10) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def chassis_name_regex(prefix: str = "") -> re.Pattern[str]:
    """Regex matching every node name this topology can create (given prefix)."""
    return re.compile(r"^%s(tor[12]|agg[12]|hv\d+|v\d\d|r\d+)$" % re.escape(prefix))


def chassis_leftovers(prefix: str = "") -> dict[str, list[Any]]:
    """{'bridges': [...], 'links': [...], 'pids': [...]} of this topology's leftovers."""
    node_re = chassis_name_regex(prefix)
    bridges = [b for b in _run(["ovs-vsctl", "-t", "5", "list-br"]).split() if node_re.match(b)]
    links = []
    for line in _run(["ip", "-o", "link", "show"]).splitlines():
        parts = line.split(":", 2)
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@", 1)[0]
        base = name.rsplit("-eth", 1)[0] if re.search(r"-eth\d+$", name) else name
        if node_re.match(base):
            links.append(name)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        for a in argv:
            if a.startswith(b"mininet:") and node_re.match(a[8:].decode(errors="replace")):
                pids.append(int(d))
                break
    return {"bridges": bridges, "links": links, "pids": pids}


def cleanup_chassis(prefix: str = "") -> dict[str, list[Any]]:
    """Crash recovery: delete this topology's bridges, interfaces and host shells
    BY NAME (never ``mn -c``). Returns what it found (before deleting)."""
    found = chassis_leftovers(prefix)
    for pid in found["pids"]:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    for br in found["bridges"]:
        _run(["ovs-vsctl", "-t", "5", "--if-exists", "del-br", br])
    for link in found["links"]:
        _run(["ip", "link", "del", link])
    if found["pids"]:
        time.sleep(0.2)
    return found

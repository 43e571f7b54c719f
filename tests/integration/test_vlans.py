"""802.1Q: VMs on access ports of VLANs 10 and 20 (OVSDB `tag`), trunk uplinks.

Topology: vlhv1 with uplinks vlhv1-eth1/eth2 and VMs vlv11 (10), vlv12 (20), vlv13 (10),
vlv14 (20); remotes vlr1 (10, agg1), vlr2 (10, agg2), vlr3 (20, agg1), vlr4 (20, agg2)
on access ports of the aggregation switches. Every host shares 10.0.0.0/24, so only
VLAN separation keeps VLAN 10 and VLAN 20 apart.
"""

from __future__ import annotations

import json
import time

import pytest

from lab import testbed as h

pytestmark = pytest.mark.integration

OF_PORT, WS_PORT = 6658, 8085
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=4, remotes=4, prefix="vl", vlans="10:20")
CONFIG = """
[slb]
uplinks = vlhv1-eth1, vlhv1-eth2
stats_interval = 1
load_half_life = 2
rebalance_interval = 3
min_dwell = 3
"""
VMS = ["vlv11", "vlv12", "vlv13", "vlv14"]
VLAN = {"vlv11": 10, "vlv12": 20, "vlv13": 10, "vlv14": 20}
REMOTES = {10: ["vlr1", "vlr2"], 20: ["vlr3", "vlr4"]}


@pytest.fixture(scope="module")
def lab():
    with h.lab(CONFIG, OF_PORT, WS_PORT, **TOPO) as (net, ctl):
        for name in VMS:
            remote = net.get(REMOTES[VLAN[name]][0])
            h.wait_until(
                lambda n=name, r=remote: h.ping_learned(ctl, net.get(n), r), timeout=15, desc=name
            )
        yield net, ctl


def test_placement_is_per_mac_and_vlan_and_vlans_are_isolated(lab):
    net, ctl = lab
    rows = ctl.placement()
    for name in VMS:
        assert rows[net.get(name).MAC()]["vlan"] == VLAN[name], rows
    assert {r["uplink"] for r in rows.values()} == {"vlhv1-eth1", "vlhv1-eth2"}
    failures = []
    for name in VMS:
        vm = net.get(name)
        for vlan, remotes in REMOTES.items():
            for remote in remotes:
                reached = h.ping(vm, net.get(remote), count=2)
                if reached != (vlan == VLAN[name]):
                    failures.append(f"{name}(vlan {VLAN[name]})->{remote}(vlan {vlan}): {reached}")
        for other in VMS:
            if other != name:
                reached = h.ping(vm, net.get(other), count=2)
                if reached != (VLAN[other] == VLAN[name]):
                    failures.append(f"{name}->{other}: {reached}")
    assert not failures, failures


def test_broadcast_stays_in_its_vlan(lab):
    net, _ = lab
    r1 = net.get("vlr1")  # VLAN 10
    caps = {n: h.capture(net.get(n), f"{n}-eth0", f"icmp and ether src {r1.MAC()}", 5) for n in VMS}
    time.sleep(1.5)
    r1.cmd("ping -b -c 4 -i 0.2 -W 1 10.0.0.255")
    seen = {n: len(h.captured(p)) for n, p in caps.items()}
    print(f"\nVLAN-10 broadcast from vlr1 seen per VM: {seen}")
    assert seen == {"vlv11": 4, "vlv12": 0, "vlv13": 4, "vlv14": 0}


def test_frames_leave_tagged_and_learning_packets_carry_the_tag(lab):
    net, ctl = lab
    rows = ctl.placement()
    hv = net.get("vlhv1")
    by_uplink = {}
    for name in VMS:
        by_uplink.setdefault(rows[net.get(name).MAC()]["uplink"], []).append(name)
    # Tagged on the wire: each VM's pings leave its uplink inside its VLAN's 802.1Q tag.
    for uplink, names in by_uplink.items():
        cap = h.capture(hv, uplink, "vlan and icmp", 4, direction="out")
        time.sleep(1.5)
        for name in names:
            h.ping(net.get(name), net.get(REMOTES[VLAN[name]][0]))
        lines = h.captured(cap)
        for name in names:
            mac = net.get(name).MAC()
            assert any(mac in ln and f"vlan {VLAN[name]}," in ln for ln in lines), (name, lines)
    # Failover: the far end of eth1 dies; its VMs (both VLANs) move to eth2 and their
    # gratuitous ARPs leave eth2 tagged with their own VLAN.
    row = h.load_chassis().uplink_map(**TOPO)["vlhv1"][0]
    moved = by_uplink.get("vlhv1-eth1", [])
    learn = h.capture(hv, "vlhv1-eth2", "vlan and arp", 6, direction="out")
    time.sleep(1.5)
    h.sh(["ip", "link", "set", row["tor_port"], "down"])
    try:
        h.wait_until(
            lambda: {r["uplink"] for r in ctl.get_json("/slb/v1/placement")} == {"vlhv1-eth2"},
            timeout=5,
            desc="failover",
        )
        lines = h.captured(learn)
        for name in moved:
            mac = net.get(name).MAC()
            assert any(mac in ln and f"vlan {VLAN[name]}," in ln for ln in lines), (name, lines)
        for name in VMS:
            assert h.ping(net.get(name), net.get(REMOTES[VLAN[name]][1]), count=2), name
    finally:
        h.sh(["ip", "link", "set", row["tor_port"], "up"])
    h.wait_until(
        lambda: all(u["live"] for u in ctl.get_json("/slb/v1/uplinks")), timeout=10, desc="up"
    )


def test_rebalance_moves_vms_of_both_vlans_back(lab):
    """After the failover above every VM sits on eth2; traffic makes the rebalancer
    spread them again, per (MAC, VLAN)."""
    net, ctl = lab
    assert {r["uplink"] for r in ctl.get_json("/slb/v1/placement")} == {"vlhv1-eth2"}
    servers, clients = [], []
    for i, name in enumerate(VMS):
        remote = net.get(REMOTES[VLAN[name]][i // 2])
        servers.append(remote.popen(["iperf3", "-s", "-1", "-p", str(5301 + i)]))
    time.sleep(1.0)
    for i, name in enumerate(VMS):
        remote = net.get(REMOTES[VLAN[name]][i // 2])
        clients.append(
            net.get(name).popen(
                ["iperf3", "-c", remote.IP(), "-p", str(5301 + i), "-t", "10", "-J", "-b", "20M"]
            )
        )
    try:
        h.wait_until(
            lambda: len({r["uplink"] for r in ctl.get_json("/slb/v1/placement")}) == 2,
            timeout=12,
            desc="rebalance to both uplinks",
        )
        results = [json.loads(c.communicate(timeout=30)[0]) for c in clients]
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()
    moves = [e for e in ctl.get_json("/slb/v1/events") if e.get("reason") == "rebalance"]
    print(f"\nrebalance moves: {[(e['mac'], e['vlan'], e['to']) for e in moves]}")
    assert moves and all(e["vlan"] in (10, 20) for e in moves)
    for result in results:
        assert result["end"]["sum_received"]["bytes"] > 0


def test_tag_changed_in_ovsdb_moves_the_vm_to_the_new_vlan(lab):
    net, ctl = lab
    v14 = net.get("vlv14")
    mac = v14.MAC()
    h.sh(["ovs-vsctl", "set", "port", "vlhv1-eth6", "tag=10"])
    try:
        # The controller polls OVSDB tags (5 s): the MAC is forgotten on VLAN 20 and is
        # learned again on VLAN 10 with its next frame.
        h.wait_until(
            lambda: h.ping(v14, net.get("vlr1")) and ctl.placement().get(mac, {}).get("vlan") == 10,
            timeout=15,
            desc="vlv14 on VLAN 10",
        )
        assert not h.ping(v14, net.get("vlr3"), count=2)  # VLAN 20 is out of reach now
    finally:
        h.sh(["ovs-vsctl", "set", "port", "vlhv1-eth6", "tag=20"])

"""Rebalancing when both uplinks are full: 10 + 2 Mbit/s, eight TCP VMs split 4 + 4.

Once TCP fills both links, each carries its speed whatever the split, so the carried
bytes look balanced (1.0 and 1.0 of capacity) while four VMs share 2 Mbit/s and four
share 10. The controller must see that the VMs on the slow link are held back (port
counters at the link's speed, per-MAC rates at its water level: `slb_ryu/core/demand.py`)
and move them: Jain's index of the eight flows over the last 20 s of 90 >= 0.9 (measured
before the demand estimate on such a topology: 0.64). Real ryu-manager, real OVS bridges,
iperf3; the uplinks are shaped by Mininet's htb (chassis `uplink_bw`).
"""

from __future__ import annotations

import json
import time

import pytest

from lab import testbed as h

pytestmark = pytest.mark.integration

OF_PORT, WS_PORT = 6690, 8100
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=8, remotes=2, uplink_bw=[10, 2], prefix="sa")
UP1, UP2 = "sahv1-eth1", "sahv1-eth2"
REBALANCE = 5
CONFIG = f"""
[slb]
uplinks = {UP1}, {UP2}
uplink_speeds = {UP1}:10, {UP2}:2
stats_interval = 1
load_half_life = 2
rebalance_interval = {REBALANCE}
min_dwell = {REBALANCE}
"""
VMS = [f"sav1{k}" for k in range(1, 9)]
DURATION = 90
TAIL = 20


def jain(xs: list[float]) -> float:
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


@pytest.mark.timeout(300)
def test_full_links_split_four_and_four_get_repaired(network_factory, controller_factory):
    ctl = controller_factory(config=CONFIG, of_port=OF_PORT, ws_port=WS_PORT)
    net = network_factory(controller_port=OF_PORT, **TOPO)
    h.wait_synced(ctl)
    remote = net.get("sar1")
    for name in VMS:
        h.wait_until(lambda n=name: h.ping(net.get(n), remote), timeout=10, desc=f"{name} learned")
    # Half and half, not pinned: a split that looks balanced once both links are full.
    for i, name in enumerate(VMS):
        mac = net.get(name).MAC()
        target = UP1 if i < 4 else UP2
        if ctl.placement()[mac]["uplink"] != target:
            code, body = ctl.request("POST", f"/slb/v1/placement/{mac}/move", {"uplink": target})
            assert code == 200, (code, body)
    start = {mac: row["uplink"] for mac, row in ctl.placement().items()}
    assert sorted(start.values()) == [UP1] * 4 + [UP2] * 4, start

    servers = [remote.popen(["iperf3", "-s", "-1", "-p", str(5201 + i)]) for i in range(len(VMS))]
    time.sleep(1.0)
    clients = []
    try:
        for i, name in enumerate(VMS):
            cmd = ["iperf3", "-c", remote.IP(), "-p", str(5201 + i), "-t", str(DURATION)]
            clients.append(net.get(name).popen([*cmd, "-J", "-i", "1"]))
        results = [json.loads(c.communicate(timeout=DURATION + 30)[0]) for c in clients]
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()
    final = {mac: row["uplink"] for mac, row in ctl.placement().items()}
    moves = [e for e in ctl.get_json("/slb/v1/events?type=move") if e["reason"] == "rebalance"]
    rates = []
    for result in results:
        tail = result["intervals"][-TAIL:]
        rates.append(sum(i["sum"]["bits_per_second"] for i in tail) / len(tail) / 1e6)
    index = jain(rates)
    on_slow = sum(1 for up in final.values() if up == UP2)
    print(f"\nflows over the last {TAIL} s (Mbit/s): {[round(r, 2) for r in rates]}")
    print(f"Jain {index:.2f}; VMs on the 2 Mbit/s uplink: 4 -> {on_slow}")
    print(f"rebalance moves: {[(e['mac'], e['from'], e['to'], e['time']) for e in moves]}")
    assert index >= 0.9, (index, rates, final)
    assert on_slow < 4 and moves

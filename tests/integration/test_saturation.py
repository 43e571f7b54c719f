"""Rebalancing when both uplinks are full: 10 + 2 Mbit/s (TBF), eight TCP VMs split 4 + 4.

Once TCP fills both links, each carries its speed whatever the split, so the carried bytes
look balanced (1.0 and 1.0 of capacity) while four VMs share 2 Mbit/s and four share 10.
The controller must see that the VMs on the slow link are held back (port counters at the
link's speed, per-MAC rates at its water level: `slb_ryu/core/demand.py`) and move them,
without sending any back (also not in the two runs after the traffic): Jain's index of
the eight flows over the last 20 s of 90 >= 0.9 (4 + 4 is 0.69 at best; 6 + 2, 7 + 1 and
8 + 0 are 0.96, 0.98 and 1.0 when TCP shares evenly). Real ryu-manager, real OVS bridges,
iperf3 -> one remote.

Shaping: a TBF qdisc on both ends of each uplink (10 and 2 Mbit/s, 50 ms of queue) instead
of the chassis' htb behind a veth queue of 1000 packets (6 s at 2 Mbit/s). TCP is CUBIC
(`iperf3 -C cubic`, Linux's default; this machine's default is BBR, which split one FIFO
0.4-2.7 Mbit/s among 7 flows in a bench here, Jain 0.77, against 0.99 for CUBIC): with
uneven sharing inside a link no placement reaches 0.9. `SLB_SAT_BASELINE=1` runs the same with
rebalancing off and expects the index below 0.9 (the test can fail: it shows what the
split gives on its own).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from lab import testbed as h

pytestmark = pytest.mark.integration

OF_PORT, WS_PORT = 6720, 8120
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=8, remotes=2, prefix="st")
UP1, UP2 = "sthv1-eth1", "sthv1-eth2"
SPEEDS = {UP1: 10, UP2: 2}  # Mbit/s
QUEUE_MS = 50
REBALANCE = 5
BASELINE = os.environ.get("SLB_SAT_BASELINE") == "1"
CONFIG = f"""
[slb]
uplinks = {UP1}, {UP2}
uplink_speeds = {UP1}:{SPEEDS[UP1]}, {UP2}:{SPEEDS[UP2]}
stats_interval = 1
load_half_life = 2
rebalance_interval = {0 if BASELINE else REBALANCE}
min_dwell = {REBALANCE}
"""
VMS = [f"stv1{k}" for k in range(1, 9)]
DURATION = 90
TAIL = 20


def jain(xs: list[float]) -> float:
    """Jain's fairness index: 1.0 when all equal, 1/n when one gets everything."""
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def shape(ifname: str, mbit: float) -> None:
    """TBF on ifname (root namespace): rate, 15 kB burst, QUEUE_MS of queue."""
    h.sh(
        ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf"]
        + ["rate", f"{mbit}mbit", "burst", "15k", "latency", f"{QUEUE_MS}ms"]
    )


def qdisc(ifname: str) -> str:
    return h.sh(["tc", "qdisc", "show", "dev", ifname])


@pytest.mark.timeout(300)
def test_full_links_split_four_and_four_get_repaired(network_factory, controller_factory):
    ctl = controller_factory(config=CONFIG, of_port=OF_PORT, ws_port=WS_PORT)
    net = network_factory(controller_port=OF_PORT, **TOPO)
    shaped = []
    for row in h.load_chassis().uplink_map(**TOPO)["sthv1"]:
        for ifname in (row["uplink"], row["tor_port"]):
            shape(ifname, SPEEDS[row["uplink"]])
            shaped.append(ifname)
    h.wait_synced(ctl)
    remote = net.get("str1")
    for name in VMS:
        h.wait_until(
            lambda n=name: h.ping_learned(ctl, net.get(n), remote),
            timeout=10,
            desc=f"{name} learned",
        )
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
    clients, timeline = [], []
    t0 = time.time()
    try:
        for i, name in enumerate(VMS):
            cmd = ["iperf3", "-c", remote.IP(), "-p", str(5201 + i), "-t", str(DURATION)]
            clients.append(net.get(name).popen([*cmd, "-C", "cubic", "-J", "-i", "1"]))
        while any(c.poll() is None for c in clients) and time.time() - t0 < DURATION + 5:
            split = [row["uplink"] for row in ctl.get_json("/slb/v1/placement")]
            timeline.append((round(time.time() - t0), split.count(UP1), split.count(UP2)))
            time.sleep(5)
        results = [json.loads(c.communicate(timeout=DURATION + 30)[0]) for c in clients]
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()
    # Two more runs after the traffic: when the links stop being full, nothing moves back.
    time.sleep(max(0.0, t0 + DURATION + 2 * REBALANCE - time.time()))
    final = {mac: row["uplink"] for mac, row in ctl.placement().items()}
    moves = [e for e in ctl.get_json("/slb/v1/events?type=move") if e["reason"] == "rebalance"]
    rates = []
    for name, result in zip(VMS, results, strict=True):
        assert "error" not in result, (name, result["error"])
        tail = result["intervals"][-TAIL:]
        rates.append(sum(i["sum"]["bits_per_second"] for i in tail) / len(tail) / 1e6)
    index = jain(rates)
    mac_of = {net.get(n).MAC(): n for n in VMS}
    on_slow = sum(1 for up in final.values() if up == UP2)
    back = {e["mac"] for e in moves if e["to"] == start[e["mac"]]}  # a MAC sent back: a flap
    print(f"\n{'baseline (rebalancing off)' if BASELINE else 'rebalancing every 5 s'}")
    for name, rate in zip(VMS, rates, strict=True):
        mac = net.get(name).MAC()
        print(f"  {name}  {start[mac]} -> {final[mac]}  {rate:5.2f} Mbit/s (last {TAIL} s)")
    print(f"aggregate {sum(rates):.2f} Mbit/s; Jain {index:.3f}; VMs on 2 Mbit/s: 4 -> {on_slow}")
    print(f"split over time (s, fast, slow): {timeline}")
    print(f"rebalance moves ({len(moves)}):")
    for e in moves:
        print(
            f"  {e['time'] - t0:6.1f} s  {mac_of.get(e['mac'], e['mac'])}  {e['from']} -> {e['to']}"
        )
    for ifname in shaped:  # the shaping held for the whole run (OVS can reset a qdisc)
        assert "qdisc tbf " in qdisc(ifname), (ifname, qdisc(ifname))
    assert sum(rates) <= 1.05 * sum(SPEEDS.values()), rates
    if BASELINE:
        assert not moves, moves
        assert index < 0.9, (index, rates)
        return
    assert index >= 0.9, (index, rates, final)
    assert on_slow < 4 and moves
    assert not back, (back, moves)

"""Rebalancing with real traffic: four VMs start on one 10 Mbit/s uplink, iperf3 from each
to the remotes, and within two rebalance intervals the load is spread over both.
"""

from __future__ import annotations

import json
import time

import pytest

from lab import testbed as h

pytestmark = pytest.mark.integration

OF_PORT, WS_PORT = 6654, 8081
BW = 10  # Mbit/s per uplink
REBALANCE = 5
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=4, remotes=2, uplink_bw=BW, prefix="rb")
CONFIG = f"""
[slb]
uplinks = rbhv1-eth1, rbhv1-eth2
stats_interval = 1
load_half_life = 2
rebalance_interval = {REBALANCE}
min_dwell = {REBALANCE}
"""
VMS = ["rbv11", "rbv12", "rbv13", "rbv14"]
DURATION = 24


def test_rebalance_spreads_vms_started_on_one_uplink(network_factory, controller_factory):
    ctl = controller_factory(config=CONFIG, of_port=OF_PORT, ws_port=WS_PORT)
    net = network_factory(controller_port=OF_PORT, **TOPO)
    rows = h.load_chassis().uplink_map(**TOPO)["rbhv1"]
    far2 = rows[1]["tor_port"]  # far end of rbhv1-eth2
    tor2, tor2_port = rows[1]["tor"], rows[1]["tor_port_no"]
    h.wait_synced(ctl)
    # Learn every VM while only eth1 is alive: all four end up on it. When eth2 comes
    # back it takes nothing by itself (the failover rule); only the rebalancer moves MACs.
    h.sh(["ip", "link", "set", far2, "down"])
    h.wait_until(lambda: not ctl.uplinks()["rbhv1-eth2"]["live"], timeout=10, desc="eth2 seen down")
    r1, r2 = net.get("rbr1"), net.get("rbr2")
    for name in VMS:
        h.wait_until(
            lambda n=name: h.ping_learned(ctl, net.get(n), r1), timeout=10, desc=f"{name} learned"
        )
    h.sh(["ip", "link", "set", far2, "up"])
    h.wait_until(lambda: ctl.uplinks()["rbhv1-eth2"]["live"], timeout=10, desc="eth2 back")
    placement = {r["mac"]: r["uplink"] for r in ctl.get_json("/slb/v1/placement")}
    assert set(placement.values()) == {"rbhv1-eth1"}, placement

    hv = net.get("rbhv1")
    cap = hv.popen(
        [
            "timeout",
            str(DURATION),
            "tcpdump",
            "-i",
            "rbhv1-eth2",
            "-Q",
            "out",
            "-n",
            "-e",
            "-l",
            "arp or rarp",
        ]
    )
    servers = []
    for i in range(len(VMS)):
        remote = r1 if i % 2 == 0 else r2
        servers.append(remote.popen(["iperf3", "-s", "-1", "-p", str(5201 + i)]))
    time.sleep(1.0)
    t0 = time.monotonic()
    clients = []
    for i, name in enumerate(VMS):
        remote = r1 if i % 2 == 0 else r2
        clients.append(
            net.get(name).popen(
                [
                    "iperf3",
                    "-c",
                    remote.IP(),
                    "-p",
                    str(5201 + i),
                    "-t",
                    str(DURATION - 4),
                    "-J",
                    "-i",
                    "1",
                ]
            )
        )
    spread_at = None
    try:
        while time.monotonic() - t0 < 2 * REBALANCE + 4:
            used = {r["uplink"] for r in ctl.get_json("/slb/v1/placement")}
            if used == {"rbhv1-eth1", "rbhv1-eth2"}:
                spread_at = time.monotonic() - t0
                break
            time.sleep(0.5)
        results = [json.loads(c.communicate(timeout=DURATION + 20)[0]) for c in clients]
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()
    learning = cap.communicate(timeout=DURATION + 10)[0]
    learning = learning.decode() if isinstance(learning, bytes) else learning
    final = {r["mac"]: r["uplink"] for r in ctl.get_json("/slb/v1/placement")}
    moved = [m for m, up in final.items() if up == "rbhv1-eth2"]
    events = [e for e in ctl.get_json("/slb/v1/events") if e["type"] == "move"]
    # Aggregate throughput over the last 6 one-second intervals, when placement has settled.
    aggregate = 0.0
    for result in results:
        intervals = result["intervals"][-6:]
        aggregate += sum(i["sum"]["bits_per_second"] for i in intervals) / len(intervals)
    print(
        f"\nboth uplinks used {spread_at:.1f} s after traffic started"
        if spread_at is not None
        else "\nuplinks never both used"
    )
    print(f"aggregate throughput {aggregate / 1e6:.1f} Mbit/s over two {BW} Mbit/s uplinks")
    print(f"moves: {[(e['mac'], e['from'], e['to'], e['reason']) for e in events]}")
    assert spread_at is not None and spread_at <= 2 * REBALANCE + 2
    assert 1 <= len(moved) <= 3
    assert all(e["reason"] == "rebalance" for e in events), events
    assert aggregate >= 1.8 * BW * 1e6, aggregate
    for mac in moved:
        assert mac in learning, (mac, learning)
    # The ToR facing eth2 now has the moved MACs behind the port facing eth2, and the
    # ToR facing eth1 no longer behind the port facing eth1 (the repeated announcement
    # overrides what frames still queued on eth1 taught it after the first one).
    table = h.fdb(tor2)
    old_table = h.fdb(rows[0]["tor"])
    for mac in moved:
        assert table.get(mac, (None,))[0] == tor2_port, (mac, table)
        assert old_table.get(mac, (None,))[0] != rows[0]["tor_port_no"], (mac, old_table)

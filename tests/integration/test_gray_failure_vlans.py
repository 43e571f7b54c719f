"""Path probing on a VLAN bridge (issue 15): targets on tagged VLANs (`IP@VLAN`).

Network (prefix ``gf``, OpenFlow 6702, REST 8112, like test_gray_failure.py, which runs
before this module and tears its network down): gfhv1 with trunk uplinks gfhv1-eth1
(gftor1) and gfhv1-eth2 (gftor2), VMs gfv11 (VLAN 10) and gfv12 (VLAN 20); remotes
gfr1/gfr2 on VLAN 10, gfr3/gfr4 on VLAN 20, all access ports of the aggregation pair.
Probes for 10.0.0.201@10 and 10.0.0.203@20 leave every uplink 802.1Q-tagged.
"""

from __future__ import annotations

import time

import pytest

from lab import testbed as h

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PREFIX = "gf"
OF_PORT, WS_PORT = 6702, 8112
TOPO = dict(prefix=PREFIX, hvs=1, uplinks=2, vms_per_hv=2, remotes=4, vlans="10:20")
HV = PREFIX + "hv1"
UPLINKS = [HV + "-eth1", HV + "-eth2"]
CONFIG = f"""
[slb]
uplinks = {UPLINKS[0]}, {UPLINKS[1]}
probe_targets = 10.0.0.201@10, 10.0.0.203@20
"""
PROBE_BPF = "ether[6:2] = 0x5ab0"  # from a probe MAC


@pytest.fixture(scope="module")
def lab(ovs):
    with h.lab(CONFIG, OF_PORT, WS_PORT, **TOPO) as (net, ctl):
        for vm, remote in (("v11", "r1"), ("v12", "r3")):
            h.wait_until(
                lambda v=vm, r=remote: h.ping(net.get(PREFIX + v), net.get(PREFIX + r)),
                timeout=15,
                desc=f"{vm} -> {remote}",
            )
        yield net, ctl


def test_tagged_probes_per_vlan_target_and_gray_failure_detected(lab):
    net, ctl = lab
    h.wait_until(
        lambda: all(u["path"] == "up" for u in ctl.uplinks().values()),
        timeout=5,
        desc="both paths up through tagged probes",
    )
    seconds = 4
    hv = net.get(HV)
    caps = {u: h.capture(hv, u, PROBE_BPF, seconds, direction="out") for u in UPLINKS}
    time.sleep(seconds + 0.5)
    for uplink, cap in caps.items():
        frames = h.captured(cap)
        by_vlan = {v: sum(f"vlan {v}," in f for f in frames) for v in (10, 20)}
        print(f"\nprobes out of {uplink} in {seconds} s: {by_vlan} (tagged, per VLAN target)")
        assert len(frames) == by_vlan[10] + by_vlan[20], frames[:3]  # nothing untagged
        assert all(8 <= n <= 28 for n in by_vlan.values()), by_vlan  # ~5/s each
    status = ctl.get_json("/slb/v1/health")
    assert status["status"] == "ok", status["problems"]
    # A gray failure is detected through the tagged probes too.
    mac = net.get(PREFIX + "v11").MAC()
    dead = ctl.placement()[mac]["uplink"]
    row = next(r for r in h.load_chassis().uplink_map(**TOPO)[HV] if r["uplink"] == dead)
    flow = f"priority=65000,in_port={row['tor_port_no']}"
    h.sh(["ovs-ofctl", "add-flow", row["tor"], flow + ",actions=drop"])
    try:
        h.wait_until(
            lambda: ctl.uplinks()[dead]["path"] == "dead", timeout=3, interval=0.05, desc="dead"
        )
        h.wait_until(lambda: ctl.placement()[mac]["uplink"] != dead, timeout=2, desc="moved")
        assert h.ping(net.get(PREFIX + "v11"), net.get(PREFIX + "r2"), count=2)
    finally:
        h.sh(["ovs-ofctl", "--strict", "del-flows", row["tor"], flow])
    h.wait_until(lambda: ctl.uplinks()[dead]["path"] == "up", timeout=5, desc="path back")

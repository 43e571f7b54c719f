"""What path probing costs on a 10-VLAN bridge (issue 15): a few packets per second per
uplink, set by the targets and `probe_interval`, never multiplied by the VLANs.

Network (prefix ``gv``, OpenFlow 6730, REST 8130): gvhv1 with trunk uplinks gvhv1-eth1
(gvtor1) and gvhv1-eth2 (gvtor2); the fabric trunks carry VLANs 10..19 (remotes
gvr1..gvr20, two per VLAN, access ports of the aggregation pair); the hypervisor
bridge has nine VMs gvv11..gvv19 on VLANs 10..18 (the chassis allows nine VMs per
hypervisor), each learned by pinging a remote of its VLAN before the window.

Each case starts its own controller on the same network (the switch keeps its flows in
between and the next controller recovers them), lets the paths come up, then for
WINDOW seconds captures (tcpdump) probe frames out of each uplink and into every VM,
and reads the controller's counters (/metrics) and the probe-reply meter
(ovs-ofctl meter-stats) at both ends of the window. Cases: one tagged target (the
normal config), two targets on two VLANs, and the slip of an untagged target on this
all-tagged bridge (reported by /health, nothing moves).
"""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from lab import testbed as h
from slb_ryu.core import pipeline
from slb_ryu.core.probe import meter_rate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PREFIX = "gv"
OF_PORT, WS_PORT = 6730, 8130
VLANS = list(range(10, 20))
TOPO = dict(
    prefix=PREFIX,
    hvs=1,
    uplinks=2,
    vms_per_hv=9,
    remotes=20,
    vlans=":".join(map(str, VLANS)),
)
HV = PREFIX + "hv1"
UPLINKS = [HV + "-eth1", HV + "-eth2"]
VMS = [f"{PREFIX}v1{k}" for k in range(1, 10)]  # gvv1k on VLAN 10 + k - 1
INTERVAL = 0.2  # the default probe_interval, so the defaults are what is measured
WINDOW = 5.0  # seconds of capture
MARGIN_PPS = 1.5  # capture window edges and scheduling jitter, per target
FROM_PROBE = "ether[6:2] = 0x5ab0"
TO_OR_FROM_PROBE = "ether[0:2] = 0x5ab0 or ether[6:2] = 0x5ab0"
CASES = {
    # The normal config on a trunk bridge: the gateway of one VLAN.
    "one-target": ["10.0.0.201@10"],
    # An operator who also wants a second VLAN's gateway checked (one per VLAN that can
    # fail on its own, e.g. a VLAN missing from a switch port): the cost follows the
    # targets (2), still not the VLANs (10).
    "two-vlan-gateways": ["10.0.0.201@10", "10.0.0.205@12"],
}


@pytest.fixture(scope="module")
def net(ovs):
    t0 = time.monotonic()
    network = h.start_network(controller_port=OF_PORT, **TOPO)
    print(f"\n{HV}: 10-VLAN chassis up in {time.monotonic() - t0:.1f} s")
    try:
        yield network
    finally:
        h.stop_network(network)


def metrics(ctl: h.Controller) -> dict[str, float]:
    """The slb_events_total{type=...} counters of /metrics, by type."""
    with urllib.request.urlopen(ctl.url("/metrics"), timeout=5) as resp:
        text = resp.read().decode()
    return {
        kind: float(value)
        for kind, value in re.findall(r'^slb_events_total\{type="([^"]+)"\} (\S+)$', text, re.M)
    }


def health(ctl: h.Controller) -> dict:
    return ctl.get_json("/slb/v1/health")


def rate(frames: list[str]) -> float:
    """Frames per second of a capture by its own timestamps (tcpdump -e lines start with
    HH:MM:SS.ffffff): n frames over their span plus one round, so a capture that starts
    late (tcpdump in a namespace on a busy machine) does not read as a lower rate."""
    stamps = []
    for line in frames:
        hh, mm, ss = line.split()[0].split(":")
        stamps.append(int(hh) * 3600 + int(mm) * 60 + float(ss))
    assert len(stamps) >= 2, frames
    return len(stamps) / (max(stamps) - min(stamps) + INTERVAL)


def probe_meter() -> tuple[int, int, int]:
    """(rate pps, packets in, packets dropped) of the probe-reply meter (PROBE_METER_ID)."""
    m = pipeline.PROBE_METER_ID
    config = h.sh(["ovs-ofctl", "-O", "OpenFlow13", "dump-meters", HV])
    stats = h.sh(["ovs-ofctl", "-O", "OpenFlow13", "meter-stats", HV])
    rate = re.search(rf"meter={m} .*?rate=(\d+)", config, re.S)
    block = re.search(rf"meter:{m} .*?packet_in_count:(\d+).*?0: packet_count:(\d+)", stats, re.S)
    assert rate and block, (config, stats)
    return int(rate.group(1)), int(block.group(1)), int(block.group(2))


def controller(targets: list[str]) -> h.Controller:
    config = f"""
[slb]
uplinks = {UPLINKS[0]}, {UPLINKS[1]}
probe_targets = {", ".join(targets)}
"""
    return h.Controller(config=config, of_port=OF_PORT, ws_port=WS_PORT).start()


def stop(ctl: h.Controller) -> None:
    ctl.stop()
    print("--- controller log (tail) ---\n" + ctl.log_tail(8))


@pytest.mark.parametrize("case", list(CASES))
def test_probing_cost_does_not_grow_with_vlans(net, case):
    targets = CASES[case]
    ctl = controller(targets)
    try:
        h.wait_synced(ctl, bridges=1)
        for k, vm in enumerate(VMS, start=1):  # every VM VLAN carries traffic, VMs learned
            remote = net.get(f"{PREFIX}r{2 * k - 1}")
            h.wait_until(
                lambda v=vm, r=remote: h.ping(net.get(v), r), timeout=10, desc=f"{vm} ping"
            )
        placed = ctl.placement()
        assert {row["vlan"] for row in placed.values()} == set(VLANS[: len(VMS)]), placed
        h.wait_until(
            lambda: all(u["path"] == "up" for u in ctl.uplinks().values()),
            timeout=5,
            desc="both paths up",
        )
        # One punt flow per uplink and two drop flows, whatever the VLANs.
        probe_flows = [f for f in h.dump_flows(HV, raw=True) if "5a:b0" in f]
        assert len(probe_flows) == 2 + len(UPLINKS), probe_flows

        hv = net.get(HV)
        caps = {u: h.capture(hv, u, FROM_PROBE, WINDOW, direction="out") for u in UPLINKS}
        vm_caps = {vm: h.capture(net.get(vm), vm + "-eth0", TO_OR_FROM_PROBE, WINDOW) for vm in VMS}
        m0, meter0, t0 = metrics(ctl), probe_meter(), time.monotonic()
        time.sleep(WINDOW + 0.3)
        m1, meter1, t1 = metrics(ctl), probe_meter(), time.monotonic()
        elapsed = t1 - t0

        bound = len(targets) / INTERVAL + MARGIN_PPS * len(targets)
        expected = len(targets) / INTERVAL
        captured_pps = 0.0
        for uplink, cap in caps.items():
            frames = h.captured(cap)
            pps = rate(frames)
            captured_pps += pps
            by_vlan = {v: [f for f in frames if f"vlan {v}," in f] for v in VLANS}
            vlan_pps = {v: round(rate(fs), 1) for v, fs in by_vlan.items() if fs}
            print(
                f"\n[{case}] probes out of {uplink}: {pps:.1f} packets/s ({len(frames)} frames; "
                f"bound {bound:.1f} = {len(targets)} target(s) / {INTERVAL} s + margin; "
                f"per VLAN {vlan_pps}; {len(VLANS)} VLANs on the trunk, {len(VMS)} with VMs)"
            )
            assert 0.5 * expected <= pps <= bound, (pps, vlan_pps)
            # Only the targets' VLANs are probed, each at one request per round.
            assert set(vlan_pps) == {int(t.split("@")[1]) for t in targets}, vlan_pps
            assert all(r <= 1 / INTERVAL + MARGIN_PPS for r in vlan_pps.values()), vlan_pps
            assert sum(map(len, by_vlan.values())) == len(frames)  # nothing untagged
            assert all("who-has" in f for f in frames), frames[:3]
        for vm, cap in vm_caps.items():
            assert h.captured(cap) == [], f"probe frames reached {vm}"

        sent = m1.get("probe_requests_sent", 0) - m0.get("probe_requests_sent", 0)
        replies = m1.get("probe_replies", 0) - m0.get("probe_replies", 0)
        punted = m1.get("packet_in", 0) - m0.get("packet_in", 0)
        meter_pps, meter_in, meter_drop = meter1[0], meter1[1] - meter0[1], meter1[2] - meter0[2]
        print(
            f"[{case}] controller over {elapsed:.1f} s: probes sent {sent / elapsed:.1f}/s, "
            f"replies {replies / elapsed:.1f}/s, all packet-ins {punted / elapsed:.1f}/s; "
            f"meter {pipeline.PROBE_METER_ID} (rate {meter_pps} pps): "
            f"{meter_in / elapsed:.1f} packets/s in, "
            f"{meter_drop} dropped"
        )
        reply_bound = len(UPLINKS) * bound
        assert sent / elapsed <= reply_bound
        # The controller's count and the wire agree.
        assert abs(sent / elapsed - captured_pps) <= MARGIN_PPS * len(targets), captured_pps
        assert 0.5 * len(UPLINKS) * expected <= replies / elapsed <= reply_bound
        assert meter_in / elapsed <= reply_bound and meter_drop == 0
        assert meter_pps == meter_rate(len(targets), len(UPLINKS), INTERVAL)  # not x VLANs
        assert m1.get("probe_replies_unexpected", 0) == 0
        assert punted / elapsed <= reply_bound + 2  # VMs idle: packet-ins are the replies

        # No false path-death, health ok, every uplink heard from just now.
        assert ctl.get_json("/slb/v1/events?type=uplink-path-dead") == []
        ups = ctl.uplinks()
        assert all(u["path"] == "up" and u["usable"] for u in ups.values()), ups
        assert all(u["last_reply"] > time.time() - 2 for u in ups.values()), ups
        status = health(ctl)
        assert status["status"] == "ok", status["problems"]
    finally:
        stop(ctl)


def test_untagged_target_on_a_trunk_bridge_is_reported_and_moves_nothing(net):
    """The likely slip on a trunk bridge: the gateway's address without its VLAN. The
    untagged probes reach no host here (every remote is on an access VLAN): /health
    names the target, no uplink is judged dead, the cost stays 5 packets/s per uplink."""
    ctl = controller(["10.0.0.201"])
    try:
        h.wait_synced(ctl, bridges=1)
        h.wait_until(
            lambda: any("10.0.0.201 is unreachable" in p for p in health(ctl)["problems"]),
            timeout=5,
            desc="health names the untagged target",
        )
        seconds = 3.0
        caps = {u: h.capture(net.get(HV), u, FROM_PROBE, seconds, "out") for u in UPLINKS}
        time.sleep(seconds + 0.3)
        for uplink, cap in caps.items():
            frames = h.captured(cap)
            pps = rate(frames)
            print(f"\n[untagged target] probes out of {uplink}: {pps:.1f} packets/s")
            assert 0.5 / INTERVAL <= pps <= 1 / INTERVAL + MARGIN_PPS, frames[:3]
            assert not [f for f in frames if "vlan " in f], frames[:3]  # untagged, as asked
        assert health(ctl)["status"] == "degraded"
        assert ctl.get_json("/slb/v1/events?type=uplink-path-dead") == []
        ups = ctl.uplinks()
        assert all(u["usable"] and u["path"] == "unknown" for u in ups.values()), ups
    finally:
        stop(ctl)

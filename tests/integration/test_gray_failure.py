"""Gray failures end to end (issue 15): an uplink whose carrier stays up but whose ToR
drops everything from the hypervisor. Real ryu-manager, userspace OVS, Mininet.

Network (prefix ``gf``, OpenFlow 6702, REST 8112): gfhv1 with uplinks gfhv1-eth1
(gftor1) and gfhv1-eth2 (gftor2), VMs gfv11, gfv12, remotes gfr1 (10.0.0.201, the probe
target, on gfagg1) and gfr2 (10.0.0.202, on gfagg2). The gray failure is a
high-priority drop flow on the ToR port facing the uplink (the link stays up on both
sides). One network for the module; each test starts its own controller (the switch
keeps its flows in between, fail_mode=secure, and the next controller recovers them).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request

import pytest

from lab import testbed as h

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PREFIX = "gf"
OF_PORT = 6702
WS_PORT = 8112
TOPO = dict(prefix=PREFIX, hvs=1, uplinks=2, vms_per_hv=2, remotes=2)
HV = PREFIX + "hv1"
UPLINKS = [HV + "-eth1", HV + "-eth2"]
VMS = [PREFIX + "v11", PREFIX + "v12"]
TARGET = "10.0.0.201"  # gfr1
BASE = f"""
[slb]
uplinks = {UPLINKS[0]}, {UPLINKS[1]}
ovsdb_tags = false
"""
PROBING = BASE + f"probe_targets = {TARGET}\n"  # probe_interval 0.2, misses 3, recover 5
# Detection (probe_interval x (probe_misses + 1) in the worst phase) plus failover.
MAX_LOSS_MS = 1000.0
PROBE_BPF = "ether[0:2] = 0x5ab0 or ether[6:2] = 0x5ab0"  # to or from a probe MAC


@pytest.fixture(scope="module")
def net(ovs):
    network = h.start_network(controller_port=OF_PORT, **TOPO)
    try:
        yield network
    finally:
        h.stop_network(network)


def controller(config):
    ctl = h.Controller(config=config, of_port=OF_PORT, ws_port=WS_PORT).start()
    h.wait_synced(ctl, bridges=1)
    return ctl


def learned(net, ctl):
    r1 = net.get(PREFIX + "r1")
    for name in VMS:
        h.wait_until(
            lambda n=name: h.ping_learned(ctl, net.get(n), r1), timeout=10, desc=f"{name} -> r1"
        )


def tor_of(uplink):
    row = next(r for r in h.load_chassis().uplink_map(**TOPO)[HV] if r["uplink"] == uplink)
    return row["tor"], row["tor_port_no"]


def gray_fail(uplink):
    tor, port = tor_of(uplink)
    h.sh(["ovs-ofctl", "add-flow", tor, f"priority=65000,in_port={port},actions=drop"])


def gray_heal(uplink):
    tor, port = tor_of(uplink)
    h.sh(["ovs-ofctl", "--strict", "del-flows", tor, f"priority=65000,in_port={port}"])


def health(ctl):
    with urllib.request.urlopen(ctl.url("/slb/v1/health"), timeout=5) as resp:
        return json.loads(resp.read())


def ping_through_failure(net, vm, uplink, seconds=4.0, fail_after=1.0):
    """10 ms ping from `vm` to gfr2 while `uplink` gray-fails.

    Returns (sent, received, loss window ms): the window is wall-clock, the longest gap
    between two replies (`ping -D` timestamps) or from the last reply to the end of the
    run; on a busy 2-core machine ping sends less often than every 10 ms, so counting
    missing sequence numbers would understate it."""
    pinger = net.get(vm).popen(
        ["ping", "-D", "-n", "-i", "0.01", "-w", str(int(seconds)), "-W", "1", "10.0.0.202"]
    )
    time.sleep(fail_after)
    gray_fail(uplink)
    end = time.time() + seconds - fail_after
    out, _ = pinger.communicate(timeout=seconds + 20)
    out = out.decode() if isinstance(out, bytes) else out
    sent, received, _ = h.loss_window_ms(out, 10.0)
    assert sent >= 100, out[-500:]  # the ping itself ran
    stamps = [t for t, _ in h.reply_times(out)]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    gaps.append(max(0.0, min(end, time.time()) - stamps[-1]) if stamps else seconds)
    return sent, received, max(gaps) * 1000.0


def stop(ctl):
    ctl.stop()
    print("\n--- controller log (tail) ---\n" + ctl.log_tail(15))


def test_gray_failure_drains_the_uplink_within_a_second(net):
    ctl = controller(PROBING)
    try:
        learned(net, ctl)
        h.wait_until(
            lambda: all(u["path"] == "up" for u in ctl.uplinks().values()),
            timeout=5,
            desc="both paths up",
        )
        rows = ctl.placement()
        vm = VMS[0]
        mac = net.get(vm).MAC()
        dead = rows[mac]["uplink"]
        survivor = next(u for u in UPLINKS if u != dead)
        t0 = time.monotonic()
        try:
            sent, received, window = ping_through_failure(net, vm, dead)
            print(
                f"\ngray failure of {dead}, probing on (defaults): sent {sent}, "
                f"received {received}, loss window {window:.0f} ms"
            )
            assert window <= MAX_LOSS_MS, (sent, received, window)
            ups = ctl.uplinks()
            assert ups[dead]["live"] and not ups[dead]["usable"] and ups[dead]["path"] == "dead"
            assert ups[survivor]["active"] and ups[survivor]["path"] == "up"
            assert ups[survivor]["last_reply"] > time.time() - 2
            assert all(r["uplink"] == survivor for r in ctl.placement().values())
            status = health(ctl)
            assert status["status"] == "degraded"
            assert any(f"uplink {dead} of bridge" in p and "path-dead" in p
                       for p in status["problems"])  # fmt: skip
            # The fast-failover groups no longer fall back onto the dead uplink.
            groups = "\n".join(h.dump_groups(HV))
            dead_no = int(dead.rsplit("eth", 1)[1])
            surv_no = int(survivor.rsplit("eth", 1)[1])
            line = next(g for g in groups.splitlines() if f"group_id={surv_no}," in g)
            assert f"output:{dead_no}" not in line, line
            events = ctl.get_json("/slb/v1/events?type=uplink-path-dead")
            assert [e["uplink"] for e in events] == [dead]
            assert f"uplink {dead} path" in ctl.log_text() and "-> dead" in ctl.log_text()
            metrics = urllib.request.urlopen(ctl.url("/metrics"), timeout=5).read().decode()
            assert re.search(rf'slb_uplink_path_up{{[^}}]*uplink="{dead}"}} 0', metrics)
        finally:
            gray_heal(dead)
        # probe_recover (5) good rounds bring it back; nothing flaps back by itself.
        h.wait_until(lambda: ctl.uplinks()[dead]["path"] == "up", timeout=5, desc="path back")
        ups = ctl.uplinks()
        assert ups[dead]["usable"]
        print(f"path back {time.monotonic() - t0:.1f} s after the failure started")
        events = ctl.get_json("/slb/v1/events?type=uplink-path-up")
        assert [e["uplink"] for e in events] == [dead]
        for name in VMS:
            assert h.ping(net.get(name), net.get(PREFIX + "r2"), count=2)
    finally:
        stop(ctl)


def test_without_probing_the_same_gray_failure_loses_traffic_for_good(net):
    ctl = controller(BASE)
    try:
        learned(net, ctl)
        vm = VMS[0]
        mac = net.get(vm).MAC()
        dead = ctl.placement()[mac]["uplink"]
        try:
            sent, received, window = ping_through_failure(net, vm, dead, seconds=4.0)
            print(
                f"\ngray failure of {dead}, probing off: sent {sent}, received {received}, "
                f"loss window {window:.0f} ms (until the end of the run)"
            )
            assert window >= 2500, (sent, received, window)  # 3 s after the failure
            assert received <= 130, (sent, received)
            assert ctl.placement()[mac]["uplink"] == dead
            assert ctl.uplinks()[dead]["usable"] and ctl.uplinks()[dead]["path"] == "off"
            assert health(ctl)["status"] == "ok"
        finally:
            gray_heal(dead)
        # The controller that recovered the table removed the probe flows.
        assert not [f for f in h.dump_flows(HV, raw=True) if "5a:b0" in f]
    finally:
        stop(ctl)


def test_probe_target_down_moves_nothing_and_health_names_it(net):
    ctl = controller(PROBING)
    r1 = net.get(PREFIX + "r1")
    intf = PREFIX + "r1-eth0"
    try:
        learned(net, ctl)
        h.wait_until(
            lambda: all(u["path"] == "up" for u in ctl.uplinks().values()),
            timeout=5,
            desc="both paths up",
        )
        before = {m: r["uplink"] for m, r in ctl.placement().items()}
        r1.cmd(f"ip link set {intf} down")
        try:
            h.wait_until(
                lambda: any(TARGET in p for p in health(ctl)["problems"]),
                timeout=5,
                desc="health names the target",
            )
            time.sleep(2.0)  # ten more rounds without a reply anywhere
            status = health(ctl)
            assert status["status"] == "degraded"
            assert [p for p in status["problems"] if "unreachable" in p] == [
                f"probe target {TARGET} is unreachable from every uplink of bridge {HV} "
                "(nothing moved: the target or the whole fabric is down)"
            ]
            ups = ctl.uplinks()
            assert all(u["usable"] and u["path"] != "dead" for u in ups.values()), ups
            assert {m: r["uplink"] for m, r in ctl.placement().items()} == before
            assert ctl.get_json("/slb/v1/events?type=uplink-path-dead") == []
            assert h.ping(net.get(VMS[0]), net.get(PREFIX + "r2"), count=2)
        finally:
            r1.cmd(f"ip link set {intf} up")
        h.wait_until(lambda: health(ctl)["status"] == "ok", timeout=10, desc="health ok again")
        time.sleep(1.0)  # the target's return must not kill an uplink whose reply was late
        assert ctl.get_json("/slb/v1/events?type=uplink-path-dead") == []
        events = ctl.get_json("/slb/v1/events?type=probe-target-unreachable,probe-target-reachable")
        assert [e["type"] for e in events] == ["probe-target-unreachable", "probe-target-reachable"]
    finally:
        stop(ctl)


def test_probing_cost_and_probe_frames_never_reach_vms(net):
    ctl = controller(PROBING)
    try:
        learned(net, ctl)
        seconds = 5
        hv = net.get(HV)
        caps = {u: h.capture(hv, u, PROBE_BPF, seconds, direction="out") for u in UPLINKS}
        vm_caps = {
            vm: h.capture(net.get(vm), vm + "-eth0", PROBE_BPF, seconds) for vm in VMS
        }  # fmt: skip
        counters0 = health(ctl)["counters"]
        time.sleep(seconds + 0.5)
        counters1 = health(ctl)["counters"]
        for uplink, cap in caps.items():
            frames = h.captured(cap)
            pps = len(frames) / seconds
            print(f"\nprobe requests out of {uplink}: {pps:.1f} packets/s")
            assert 3 <= pps <= 7, frames[:5]  # 1 target / 0.2 s = 5 per second
            assert all("who-has 10.0.0.201" in f for f in frames), frames[:3]
        replies = counters1.get("probe_replies", 0) - counters0.get("probe_replies", 0)
        print(f"probe replies to the controller: {replies / seconds:.1f}/s (both uplinks)")
        assert 6 <= replies / seconds <= 14
        assert counters1.get("probe_replies_unexpected", 0) == 0
        for vm, cap in vm_caps.items():
            assert h.captured(cap) == [], vm  # neither requests (reflected) nor replies
        assert not [m for m in ctl.placement() if m.startswith("5a:b0")]
    finally:
        stop(ctl)


SOAK_SECONDS = float(os.environ.get("SLB_SOAK_SECONDS", "60"))


@pytest.mark.timeout(int(SOAK_SECONDS) + 240)  # the module's 300 s would cut a 600 s soak
def test_soak_under_iperf3_load_no_false_path_deaths(net):
    """Both uplinks loaded by iperf3 (TCP, both VMs to both remotes) for SOAK_SECONDS
    (60 s here; the issue's target run is 10 minutes: SLB_SOAK_SECONDS=600)."""
    ctl = controller(PROBING)
    servers = []
    clients = []
    try:
        learned(net, ctl)
        uplink_of = dict(zip(VMS, UPLINKS, strict=True))  # one loaded VM per uplink
        for vm, uplink in uplink_of.items():
            mac = net.get(vm).MAC()
            code, body = ctl.request("POST", f"/slb/v1/placement/{mac}/move", {"uplink": uplink})
            assert code == 200, body
        for i, remote in enumerate(["r1", "r2"]):
            r = net.get(PREFIX + remote)
            servers.append(r.popen(["iperf3", "-s", "-1", "-p", str(5301 + i)]))
        time.sleep(0.5)
        counters0 = health(ctl)["counters"]
        for i, (vm, remote) in enumerate(zip(VMS, ["r1", "r2"], strict=True)):
            ip = net.get(PREFIX + remote).IP()
            cmd = ["iperf3", "-c", ip, "-p", str(5301 + i), "-t", str(int(SOAK_SECONDS)), "-J"]
            clients.append(net.get(vm).popen(cmd))
        outs = [c.communicate(timeout=SOAK_SECONDS + 30)[0] for c in clients]
        rates = []
        for out in outs:
            report = json.loads(out.decode() if isinstance(out, bytes) else out)
            rates.append(report["end"]["sum_received"]["bits_per_second"] / 1e6)
        counters1 = health(ctl)["counters"]
        deaths = ctl.get_json("/slb/v1/events?type=uplink-path-dead")
        sent, replied = (
            counters1.get(k, 0) - counters0.get(k, 0)
            for k in ("probe_requests_sent", "probe_replies")
        )
        print(
            f"\nsoak {SOAK_SECONDS:.0f} s, iperf3 {', '.join(f'{r:.0f}' for r in rates)} "
            f"Mbit/s on {', '.join(uplink_of[v] for v in VMS)}: {len(deaths)} path-deaths; "
            f"probes sent {sent}, replied {replied}, unanswered {sent - replied} "
            f"({100.0 * (sent - replied) / max(sent, 1):.2f} %), unexpected replies "
            f"{counters1.get('probe_replies_unexpected', 0)}"
        )
        assert all(r > 1 for r in rates), rates
        assert deaths == []
        assert all(u["path"] == "up" for u in ctl.uplinks().values())
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()
        stop(ctl)


def test_ovs_bfd_down_makes_the_uplink_path_dead(net):
    """[slb] bfd: both ends of gfhv1-eth1 run OVS BFD (hypervisor uplink and ToR port);
    turning BFD off on the ToR side takes the session down: the uplink is drained."""
    uplink = UPLINKS[0]
    tor, tor_port = tor_of(uplink)
    tor_intf = f"{tor}-eth{tor_port}"
    ctl = controller(BASE + "bfd = true\n")

    def bfd(intf, on):
        h.sh(["ovs-vsctl", "set", "interface", intf, f"bfd:enable={'true' if on else 'false'}"])

    try:
        learned(net, ctl)
        for intf in (uplink, tor_intf):
            bfd(intf, True)
        h.wait_until(
            lambda: re.search(
                r"[{ ,]state=up", h.sh(["ovs-vsctl", "get", "interface", uplink, "bfd_status"])
            ),
            timeout=15,
            desc="BFD session up",
        )
        # Bringing the sessions up (down, then init, with flap_count 0) drained nothing.
        assert ctl.get_json("/slb/v1/events?type=uplink-path-dead") == []
        mac = net.get(VMS[0]).MAC()
        ctl.request("POST", f"/slb/v1/placement/{mac}/move", {"uplink": uplink})
        bfd(tor_intf, False)
        h.wait_until(lambda: ctl.uplinks()[uplink]["path"] == "dead", timeout=10, desc="dead")
        assert ctl.placement()[mac]["uplink"] != uplink
        events = ctl.get_json("/slb/v1/events?type=uplink-path-dead")
        assert [(e["uplink"], e["by"]) for e in events] == [(uplink, "bfd")]
        bfd(tor_intf, True)
        h.wait_until(lambda: ctl.uplinks()[uplink]["usable"], timeout=15, desc="BFD back up")
    finally:
        for intf in (uplink, tor_intf):
            bfd(intf, False)
        stop(ctl)

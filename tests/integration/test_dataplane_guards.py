"""Dataplane guards under attack and without the controller (issue 11), end to end.

Real ryu-manager + slb_ryu.app, userspace OVS, Mininet chassis (prefix ``dp``): hv1
with uplinks dphv1-eth1/eth2 to two stacked ToRs, VMs dpv11..dpv14, remotes dpr1/dpr2.
Each test is one attack or fault from the issue and prints the figure the issue asks
for (run with ``-s`` to see them). Tests run in file order on one network.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest

from lab import testbed as h

pytestmark = pytest.mark.integration

OF_PORT = 6698
WS_PORT = 8108
HV = "dphv1"
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=4, remotes=2, prefix="dp")
IDLE = 8  # mac_idle_timeout, short so aging can be watched
RATE = 50  # packet_in_rate per port
PORT_LIMIT = 8
IP_CAP = 4
REPEAT = 2  # learning_repeat
CONFIG = f"""
[slb]
uplinks = {HV}-eth1, {HV}-eth2
mac_idle_timeout = {IDLE}
guard_window = 3
packet_in_rate = {RATE}
max_macs_per_port = {PORT_LIMIT}
max_ips_per_mac = {IP_CAP}
learning_repeat = {REPEAT}
learning_repeat_interval = 0.5
rebalance_interval = 0
"""
VMS = ["dpv11", "dpv12", "dpv13", "dpv14"]
FIGURES: dict[str, str] = {}


def figure(name: str, text: str) -> None:
    FIGURES[name] = text
    print(f"\nFIGURE {name}: {text}")


@pytest.fixture(scope="module")
def lab():
    with h.lab(CONFIG, OF_PORT, WS_PORT, **TOPO) as (net, ctl):
        r1 = net.get("dpr1")
        for name in VMS:
            h.wait_until(
                lambda n=name: h.ping_learned(ctl, net.get(n), r1), timeout=15, desc=f"{name} -> r1"
            )
        yield net, ctl
    print("\n".join(f"FIGURE {k}: {v}" for k, v in FIGURES.items()))


def mac_of(i: int, tag: int) -> str:
    return "02:%02x:%02x:%02x:%02x:%02x" % (
        tag,
        (i >> 24) & 255,
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255,
    )


def arp_request(src_mac: str, src_ip: str, target_ip: str, dst: str = "ff:ff:ff:ff:ff:ff") -> bytes:
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    arp += h.mac_bytes(src_mac) + socket.inet_aton(src_ip)
    arp += b"\x00" * 6 + socket.inet_aton(target_ip)
    return h.mac_bytes(dst) + h.mac_bytes(src_mac) + b"\x08\x06" + arp


def set_mac(node, mac: str) -> None:
    intf = node.defaultIntf().name
    node.cmd(f"ip link set dev {intf} address {mac}")
    node.defaultIntf().mac = mac
    node.cmd("ip neigh flush all")


def counter(ctl, name: str) -> int:
    return int(ctl.get_json("/slb/v1/health")["counters"].get(name, 0))


def first_ping_seconds(src, dst, budget: float = 15.0) -> float:
    """Seconds from now until src gets its first echo reply from dst (10 ms pings)."""
    start = time.monotonic()
    out = src.cmd(f"ping -n -i 0.01 -w {int(budget)} -c 1 {dst.IP()}")
    if " 0 received" in out or "1 received" not in out:
        return float("inf")
    return time.monotonic() - start


def reply_time(line: str) -> float:
    """Epoch seconds of a ``tcpdump -n -e`` line (today's HH:MM:SS.micro, local time)."""
    hms = line.split()[0]
    hours, minutes, seconds = hms.split(":")
    midnight = time.mktime(time.localtime()[:3] + (0, 0, 0, 0, 0, -1))
    return midnight + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def in_background(fn, *args, **kwargs) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, kwargs=kwargs, daemon=True)
    t.start()
    return t


# ---- 1. remote-MAC hijack ------------------------------------------------------------


def test_remote_mac_hijack_is_refused_while_the_fabric_shows_that_mac(lab):
    net, ctl = lab
    r1, v11, v12, v13 = (net.get(n) for n in ("dpr1", "dpv11", "dpv12", "dpv13"))
    guards = counter(ctl, "guard_drop")
    talker = r1.popen(["ping", "-n", "-i", "0.2", "-w", "6", v11.IP()])  # r1 speaks on the fabric
    time.sleep(1.0)
    victim = v13.popen(["ping", "-n", "-i", "0.05", "-w", "4", r1.IP()], text=True)
    time.sleep(0.5)
    # v12 claims r1's MAC, 20 frames over 2 s (one used to hijack r1 for good). Not a
    # gratuitous ARP: an announcement is the guard's one exception (live migration in).
    claim = arp_request(r1.MAC(), "10.0.0.250", "10.0.0.254")
    h.send_frames_in(v12, "dpv12-eth0", [claim] * 20, duration=2.0)
    out, _ = victim.communicate(timeout=15)
    talker.wait(timeout=15)
    sent, received, window = h.loss_window_ms(out, 50)
    assert r1.MAC() not in ctl.placement(), "r1's MAC was learned on a local port"
    figure(
        "hijack",
        f"v12 sent 20 frames as r1 over 2 s; v13->r1 pings every 50 ms: {received}/{sent} "
        f"answered, longest gap {window:.0f} ms (hijack duration); guard drops "
        f"{counter(ctl, 'guard_drop') - guards}",
    )
    assert received >= sent - 2 and window <= 100, out
    assert counter(ctl, "guard_drop") > guards
    events = ctl.get_json("/slb/v1/events?type=guard")
    assert any(e.get("mac") == r1.MAC() for e in events), events


# ---- 2. MAC churn past the port limit, and aging -------------------------------------


def test_mac_churn_past_the_port_limit_recovers_once_the_old_macs_age(lab):
    net, ctl = lab
    r1, v14 = net.get("dpr1"), net.get("dpv14")
    real = v14.MAC()
    churn = [mac_of(i, 0x14) for i in range(PORT_LIMIT + 4)]
    frames = [f for m in churn for f in [arp_request(m, "10.0.0.14", "10.0.0.254")] * 2]
    # Refresh v14's own MAC first: its flow's idle timer restarts, so its slot cannot
    # free up (age) while the full port is being checked below.
    assert h.ping(v14, r1), "v14 -> r1 before the churn"
    h.send_frames_in(v14, "dpv14-eth0", frames, duration=1.0)
    port = next(r["port"] for r in ctl.placement().values() if r["mac"] in churn)
    h.wait_until(
        lambda: sum(1 for r in ctl.placement().values() if r["port"] == port) >= PORT_LIMIT,
        timeout=5,
        desc="port full",
    )
    learned = {m for m in churn if m in ctl.placement()}
    new = mac_of(0xFFFF, 0x14)
    set_mac(v14, new)
    try:
        start = time.monotonic()
        assert not h.ping(v14, r1, count=1, wait=1), "a full port learned a new MAC"
        # The churned MACs stay silent: they age after IDLE s and the new MAC gets in.
        h.wait_until(lambda: h.ping(v14, r1, count=1, wait=1), timeout=IDLE + 15, desc="v14 back")
        back = time.monotonic() - start
        assert new in ctl.placement()
        # The first slot may have been freed by v14's old MAC aging: every churned MAC
        # goes within IDLE s of its last frame (plus OVS's expiry granularity).
        h.wait_until(
            lambda: not any(m in ctl.placement() for m in churn),
            timeout=IDLE + 5,
            desc="churn aged",
        )
        aged = ctl.get_json("/slb/v1/events?type=aged")
        assert {e["mac"] for e in aged} >= learned
        flows = h.dump_flows(HV, raw=True)
        assert not any(m in line for m in churn for line in flows)
        figure(
            "mac-churn",
            f"{len(churn)} MACs from one port (limit {PORT_LIMIT}); a new MAC on it got "
            f"through after {back:.1f} s (mac_idle_timeout {IDLE} s); aged MACs' flows gone",
        )
    finally:
        set_mac(v14, real)
        h.wait_until(lambda: h.ping(v14, r1), timeout=IDLE + 15, desc="v14 restored")


# ---- 3. ARP storm with random sender IPs ---------------------------------------------


def test_arp_storm_is_metered_and_bounds_ips_and_learning_packets(lab):
    net, ctl = lab
    r1, v13 = net.get("dpr1"), net.get("dpv13")
    h.wait_until(lambda: h.ping_learned(ctl, v13, r1), timeout=10, desc="v13 learned")
    rnd = random.Random(11)
    ips = [
        f"10.{rnd.randrange(1, 250)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        for _ in range(3000)
    ]
    frames = [arp_request(v13.MAC(), ip, "10.0.0.254") for ip in ips]
    before, t0 = counter(ctl, "packet_in"), time.monotonic()
    h.send_frames_in(v13, "dpv13-eth0", frames, duration=3.0)
    time.sleep(0.5)
    seconds = time.monotonic() - t0
    packet_ins = counter(ctl, "packet_in") - before
    row = ctl.placement()[v13.MAC()]
    assert len(row["ips"]) <= IP_CAP, row
    # Move it: learning packets out of the new uplink, per repeat at most cap + 1.
    other = next(u for u in ctl.uplinks() if u != row["uplink"])
    cap = h.capture(net.get(HV), other, f"ether src {v13.MAC()} and (arp or rarp)", 3)
    time.sleep(0.5)
    status, _ = ctl.request("POST", f"/slb/v1/placement/{v13.MAC()}/move", {"uplink": other})
    assert status == 200
    learning = h.captured(cap)
    rate = packet_ins / seconds
    figure(
        "arp-storm",
        f"3000 ARPs / 3 s from random sender IPs on one port: {packet_ins} packet-ins in "
        f"{seconds:.1f} s = {rate:.0f}/s (packet_in_rate {RATE}/port, burst {RATE}); "
        f"{len(row['ips'])} IPs kept (cap {IP_CAP}); {len(learning)} learning packets on "
        f"the move ({REPEAT} rounds, cap+1 = {IP_CAP + 1} per round)",
    )
    assert packet_ins <= RATE * seconds + RATE + 20
    assert 1 <= len(learning) <= (IP_CAP + 1) * REPEAT, learning


# ---- 4. the poisoning ARP, then a move ----------------------------------------------


def test_an_ip_claimed_by_a_fabric_host_is_never_announced_for_a_vm(lab):
    net, ctl = lab
    r1, v11, v12 = net.get("dpr1"), net.get("dpv11"), net.get("dpv12")
    h.wait_until(lambda: h.ping_learned(ctl, v12, r1), timeout=10, desc="v12 learned")
    # r1 ARPs on the fabric (a broadcast every host sees) ...
    h.send_frames_in(r1, "dpr1-eth0", [arp_request(r1.MAC(), r1.IP(), "10.0.0.200")])
    time.sleep(0.5)
    # ... then v12 sends one ARP claiming r1's address, to v11 only (never on the fabric)
    poison = arp_request(v12.MAC(), r1.IP(), v11.IP(), dst=v11.MAC())
    h.send_frames_in(v12, "dpv12-eth0", [poison])
    time.sleep(0.5)
    row = ctl.placement()[v12.MAC()]
    other = next(u for u in ctl.uplinks() if u != row["uplink"])
    cap = h.capture(net.get(HV), other, f"ether src {v12.MAC()} and (arp or rarp)", 3)
    time.sleep(0.5)
    status, _ = ctl.request("POST", f"/slb/v1/placement/{v12.MAC()}/move", {"uplink": other})
    assert status == 200
    learning = h.captured(cap)
    poisoned = [ln for ln in learning if f" {r1.IP()} " in ln + " " or f"{r1.IP()}," in ln]
    figure(
        "poisoning",
        f"v12 ARPed once as r1 ({r1.IP()}) after r1 ARPed on the fabric; v12's IPs "
        f"{row['ips']}; its move sent {len(learning)} learning packets, {len(poisoned)} "
        f"for r1's address",
    )
    assert r1.IP() not in row["ips"], row
    assert learning and not poisoned, learning
    events = ctl.get_json("/slb/v1/events?type=ip-claimed")
    assert any(e.get("ip") == r1.IP() for e in events), events


# ---- port security from OVSDB external_ids:attached-mac -------------------------------


def test_port_security_from_attached_mac_learns_only_that_mac(lab):
    net, ctl = lab
    r1, v14 = net.get("dpr1"), net.get("dpv14")
    h.wait_until(lambda: h.ping_learned(ctl, v14, r1), timeout=IDLE + 15, desc="v14 learned")
    port = ctl.placement()[v14.MAC()]["port"]
    drops = counter(ctl, "port_security_drop")
    h.sh(["ovs-vsctl", "set", "Interface", port, f"external_ids:attached-mac={v14.MAC()}"])
    try:
        h.wait_until(
            lambda: ctl.get_json("/slb/v1/events?type=port-security"), timeout=10, desc="read"
        )
        spoofed = [mac_of(i, 0x41) for i in range(5)]
        frames = [arp_request(m, v14.IP(), "10.0.0.254") for m in spoofed]
        h.send_frames_in(v14, "dpv14-eth0", frames)
        time.sleep(1.0)
        rows = ctl.placement()
        assert not any(m in rows for m in spoofed), rows
        assert counter(ctl, "port_security_drop") > drops
        assert h.ping(v14, r1, count=2, wait=1)
        figure(
            "port-security",
            f"{port} with attached-mac {v14.MAC()}: 5 spoofed source MACs not learned "
            f"({counter(ctl, 'port_security_drop') - drops} drops reported), its own MAC works",
        )
    finally:
        h.sh(["ovs-vsctl", "remove", "Interface", port, "external_ids", "attached-mac"])


# ---- 5. a MAC flood from one VM while a new VM boots ---------------------------------


def flood(node, seconds: float, pps: int) -> None:
    n = int(seconds * pps)
    frames = [arp_request(mac_of(i, 0x12), "10.0.0.12", "10.0.0.254") for i in range(n)]
    h.send_frames_in(node, node.defaultIntf().name, frames, duration=seconds)


def test_mac_flood_from_one_vm_does_not_delay_a_new_vm(lab):
    net, ctl = lab
    r1, v11, v12 = net.get("dpr1"), net.get("dpv11"), net.get("dpv12")
    real = v11.MAC()

    def median_first_ping(tags: range) -> tuple[float, list[float]]:
        """Three new VMs (fresh MACs) in turn: the median of their first-ping times."""
        times = []
        for tag in tags:
            set_mac(v11, mac_of(tag, 0x11))
            times.append(first_ping_seconds(v11, r1))
        return sorted(times)[1], times

    try:
        quiet, quiet_all = median_first_ping(range(1, 4))
        flooder = in_background(flood, v12, 8.0, 2000)
        time.sleep(2.0)
        busy, busy_all = median_first_ping(range(4, 7))
        flooder.join(timeout=30)
    finally:
        set_mac(v11, real)
    ms = lambda xs: "/".join(f"{x * 1000:.0f}" for x in xs)  # noqa: E731
    figure(
        "flood-new-vm",
        f"new VM first ping to r1 (median of 3 new MACs): {quiet * 1000:.0f} ms quiet "
        f"({ms(quiet_all)}), {busy * 1000:.0f} ms while another VM floods 2,000 random "
        f"MACs/s ({ms(busy_all)})",
    )
    assert busy <= max(2 * quiet, quiet + 0.1), (quiet, busy)
    h.wait_until(lambda: h.ping(v11, r1), timeout=IDLE + 15, desc="v11 restored")


# ---- 6/7. without the controller ------------------------------------------------------


def test_controller_killed_then_active_uplink_fails_broadcast_keeps_flowing(lab):
    net, ctl = lab
    r1, v12 = net.get("dpr1"), net.get("dpv12")
    h.wait_until(lambda: h.ping_learned(ctl, v12, r1), timeout=10, desc="v12 learned")
    active = next(name for name, u in ctl.uplinks().items() if u.get("active"))
    row = next(r for r in h.load_chassis().uplink_map(**TOPO)[HV] if r["uplink"] == active)
    ctl.kill9()
    try:
        # r1 broadcasts an ARP request for v12 every 10 ms for 3 s; v12's replies are
        # captured on r1. After 1 s the active uplink's far end goes down.
        cap = h.capture(r1, "dpr1-eth0", f"arp and ether src {v12.MAC()}", 5, direction="in")
        time.sleep(0.5)
        frames = [arp_request(r1.MAC(), r1.IP(), v12.IP())] * 300
        sent: list[dict] = []
        sender = in_background(
            lambda: sent.append(h.send_frames_in(r1, "dpr1-eth0", frames, duration=3.0))
        )
        time.sleep(1.0)
        down_at = time.time()
        h.sh(["ip", "link", "set", "dev", row["tor_port"], "down"])
        sender.join(timeout=30)
        stamps = [reply_time(ln) for ln in h.captured(cap)]
        # gaps between the failure, each reply after it, and the last broadcast sent
        after = [down_at] + [t for t in stamps if t > down_at] + [sent[0]["last"]]
        gaps = [b - a for a, b in zip(after, after[1:], strict=False)]
        worst = max(gaps) * 1000
        # Loss: broadcasts left unanswered, x 10 ms. The longest gap between replies also
        # counts a sender that stalled (a shared 2-core machine): reported, bounded loosely.
        lost_ms = max(0, 300 - len(stamps)) * 10
        figure(
            "no-controller-failover",
            f"controller killed, active uplink {active} down: {len(stamps)}/300 ARP replies "
            f"to 10 ms broadcasts ({lost_ms} ms of broadcasts lost); longest gap between "
            f"replies after the failure {worst:.0f} ms",
        )
        assert lost_ms <= 100 and worst <= 400, (len(stamps), lost_ms, worst)
    finally:
        h.sh(["ip", "link", "set", "dev", row["tor_port"], "up"])
        ctl.start()
        h.wait_synced(ctl)


def test_new_vm_while_the_controller_is_down_gets_connectivity_and_is_learned_later(lab):
    net, ctl = lab
    r1, v13 = net.get("dpr1"), net.get("dpv13")
    real = v13.MAC()
    new = mac_of(7, 0x13)
    ctl.kill9()
    try:
        set_mac(v13, new)
        took = first_ping_seconds(v13, r1, budget=10)
        ok = h.ping(v13, r1, count=5, wait=1)
        figure(
            "new-vm-no-controller",
            f"new MAC with the controller down: first ping after {took * 1000:.0f} ms, "
            f"5 more pings {'ok' if ok else 'FAILED'} (forwarded by the datapath through "
            f"the active uplink, metered at {RATE} pps)",
        )
        assert took < 5 and ok
    finally:
        ctl.start()
        h.wait_synced(ctl)
    try:
        h.wait_until(lambda: h.ping_learned(ctl, v13, r1), timeout=10, desc="learned")
    finally:
        set_mac(v13, real)
        h.wait_until(lambda: h.ping(v13, r1), timeout=IDLE + 15, desc="v13 restored")


# ---- learning in progress (issue 13): one packet-in per new source, not one per frame --


def test_a_new_sources_burst_costs_one_packet_in_and_is_forwarded(lab):
    """With the controller frozen (SIGSTOP: nothing can be installed), a new MAC sends 40
    frames in 0.4 s. The learning flow (table 2, priority 100) punts the first one and
    marks the source; the other 39 take the learning-in-progress flow (priority 120):
    forwarded, no packet-in. Without the mark all 40 would be punted (meter: 50/s +
    burst 50). Then the controller thaws and learns the MAC from that one copy."""
    import os
    import signal

    net, ctl = lab
    r1, v13 = net.get("dpr1"), net.get("dpv13")
    h.wait_until(lambda: h.ping_learned(ctl, v13, r1), timeout=10, desc="v13 learned")
    port_name = ctl.placement()[v13.MAC()]["port"]
    ofport = int(h.sh(["ovs-vsctl", "get", "Interface", port_name, "ofport"]).strip())
    new = mac_of(0x4242, 0x13)
    frame = h.mac_bytes(r1.MAC()) + h.mac_bytes(new) + b"\x88\xb5" + b"\x00" * 46

    def counts() -> dict[int, int]:
        rows = h.dump_flows(HV, table=2)
        return {
            r["priority"]: r["n_packets"]
            for r in rows
            if f"in_port={ofport}" in r["match"] and r["priority"] in (100, 120)
        }

    def learned_for_new() -> list[dict]:
        """The datapath-learned mark (table 5) and echo guard (table 3) of `new`."""
        rows = h.dump_flows(HV, table=5) + h.dump_flows(HV, table=3)
        return [r for r in rows if f"dl_src={new}" in r["match"] and r["cookie"] >> 48 == 0x51B1]

    before = counts()
    assert set(before) == {100, 120}, before
    cap = h.capture(r1, "dpr1-eth0", f"ether src {new}", 4, direction="in")
    time.sleep(0.5)
    os.kill(ctl.pid, signal.SIGSTOP)
    try:
        sent_at = time.monotonic()
        h.send_frames_in(v13, "dpv13-eth0", [frame] * 40, duration=0.4)
        time.sleep(0.1)
        made = learned_for_new()
        time.sleep(0.2)
        after = counts()
    finally:
        os.kill(ctl.pid, signal.SIGCONT)
    # The mark and the guard the first frame left go at the first marks read after the
    # MAC is learned (~1 s), in a batch with any others, not each at its own expiry (the
    # guard's: guard_window = 3 s after that frame): once the MAC's flows are in they
    # would only cost OVS revalidations (pipeline.learned_while_learning).
    assert {r["table"] for r in made} == {3, 5}, made
    h.wait_until(lambda: not learned_for_new(), timeout=5, interval=0.05, desc="mark, guard gone")
    gone_after = time.monotonic() - sent_at
    punted, pending = after[100] - before[100], after[120] - before[120]
    delivered = len(h.captured(cap))
    figure(
        "learning-in-progress",
        f"40 frames in 0.4 s from a new MAC, controller frozen: {punted} packet-in(s), "
        f"{pending} forwarded as 'learning in progress', {delivered} copies captured at r1",
    )
    assert punted == 1 and pending == 39, (punted, pending)
    assert delivered >= 38, delivered
    h.wait_until(lambda: new in ctl.placement(), timeout=10, desc="learned from the one copy")
    assert ctl.placement()[new]["port"] == port_name
    figure("learned-flows-deleted", f"mark and echo guard gone {gone_after:.2f} s after the frame")
    assert gone_after < 2.7, gone_after  # before the guard's own expiry at 3 s

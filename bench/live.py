"""Live benchmark in Mininet: slb-ryu against Open vSwitch's own balance-slb bond.

Same run, same topology, same traffic, twice: first with our controller (``ryu-manager
slb_ryu.app``) on the hypervisor bridge, then with that bridge turned into a plain
standalone OVS bridge whose two uplinks form one ``bond_mode=balance-slb`` bond.

Topology: ``mininet/chassis.py`` with prefix ``b`` (``btor1``, ``bhv1``, ``bv11``...),
1 hypervisor, 2 uplinks of 10 Mbit/s (``bhv1-eth1`` to ``btor1``, ``bhv1-eth2`` to
``btor2``), 4 VMs, 2 remotes. Both systems rebalance every 5 s.

Per system:

1. *Time until both uplinks are used.* The far end of uplink 2 (``btor2-eth3``) is down
   while the VMs first send, so every VM lands on uplink 1; then it comes back (a returning
   uplink takes nothing by itself in either system). One dwell time (5 s) after the last
   VM was learned (``--no-settle``: at once), iperf3 from each VM to a remote (4 TCP
   flows). The uplinks' tx counters (``/sys/class/net/bhv1-ethN/statistics``) are
   sampled every 0.5 s; reported: seconds from traffic start to the end of the first
   0.5 s in which both carried more than 1 Mbit/s.
2. *Aggregate throughput*: the 4 flows' iperf3 rates summed, averaged over the last 8 s
   (quick: 4 s). Two 10 Mbit/s uplinks: 20 Mbit/s at most.
3. *Failover loss window*: ``bv11`` pings ``br1`` every 10 ms; the far end of the uplink
   carrying it goes down (ours: REST placement; OVS: ``ovs-appctl bond/show``, checked
   against the tx counters); the longest run of lost pings x 10 ms.

Also reported: MAC moves while the flows ran (ours: REST events; OVS: "shift ... load"
lines in ovs-vswitchd.log; one OVS shift moves a bucket, here one MAC per bucket).

Second scenario, *mixed speeds* (a second table): uplink 1 at 10 Mbit/s, uplink 2 at
2 Mbit/s (``uplink_bw=[10, 2]``), our controller told the real speeds
(``uplink_speeds = bhv1-eth1:10, bhv1-eth2:2``: Mininet's veths report 10 Gbit/s whatever
htb shapes them to), OVS's bond as is (balance-slb ignores link speed). No uplink goes
down: each system places the VMs as it does by itself when they first send; then the
same 4 iperf3 flows. Reported: aggregate throughput (12 Mbit/s at most), what each uplink
carried over the same window (tx counters), VMs on the slow uplink at the end, Jain's
fairness index over the 4 flows' rates, MAC moves. No failover measurement here.

Third scenario, *saturation* (issue 12; only with ``--scenario saturation``): uplinks of 10
and 2 Mbit/s shaped by TBF (50 ms of queue) instead of htb, 8 VMs, one CUBIC flow each to
r1 for 90 s (quick: 45), split 4 + 4 before the traffic (ours: REST moves; OVS:
``bond/migrate``), a split that looks balanced in bytes once both links are full. Reported:
Jain's index over the flows' last 20 s (quick: 10), the slowest and fastest flow, VMs on
the slow uplink at start and end, MAC moves (bench/live-saturation.json).

``--ovs-model`` checks bench/ovs_slb.py against this OVS: an uplink coming back to a bond
whose buckets all sit on the other member (constant UDP, 1..8 Mbit/s per VM, stopped
before the return); the buckets OVS shifts at its next run against what the model decides
from the loads ``bond/show`` reported just before it.

Each system runs twice per scenario (ours, OVS, ours, OVS; quick: once); the tables show
the median and each run.

    .venv/bin/python bench/live.py            # full run (~5 min): tables, bench/live-results.json,
                                              # bench/live.png
    .venv/bin/python bench/live.py --quick    # smoke run (~1.5 min, iperf3 -t 10, 1 run each):
                                              # tables only
    .venv/bin/python bench/live.py --only ovs # one system; --scenario mixed: one scenario
    .venv/bin/python bench/live.py --scenario saturation   # ~3.5 min (2 systems x 1 run)
    .venv/bin/python bench/live.py --ovs-model             # ~20 s: model vs live bond

Root, Open vSwitch (userspace datapath) and the project venv are needed (``make setup``).
Nothing here runs ``mn -c``: each network is stopped with ``testbed.stop_network`` (by
name, prefix ``b``), the controller by its pid.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab import testbed as tb  # noqa: E402

PREFIX = "b"
OF_PORT, WS_PORT = 6656, 8083
BW = 10  # Mbit/s per uplink
REBALANCE = 5  # s, both systems
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=4, remotes=2, uplink_bw=BW, prefix=PREFIX)
HV = PREFIX + "hv1"
UPLINKS = [HV + "-eth1", HV + "-eth2"]
VMS = [PREFIX + "v1%d" % k for k in range(1, 5)]
REMOTES = [PREFIX + "r1", PREFIX + "r2"]
BOND = PREFIX + "bond0"  # port names are global in OVSDB: prefixed like everything else
CONFIG = f"""
[slb]
uplinks = {", ".join(UPLINKS)}
stats_interval = 1
load_half_life = 2
rebalance_interval = {REBALANCE}
min_dwell = {REBALANCE}
"""
VSWITCHD_LOG = Path("/var/log/openvswitch/ovs-vswitchd.log")
SAMPLE = 0.5  # s between tx counter samples
USED_BPS = 1e6  # "used": more than 1 Mbit/s in a sample
PING_MS = 10
SYSTEMS = {"ours": "slb-ryu", "ovs": "OVS balance-slb"}

# Mixed speeds: what an operator of a 10G + 1G bond tells the controller, scaled down.
MIXED_BW = [10, 2]  # Mbit/s of uplink 1, uplink 2
MIXED_TOPO = dict(TOPO, uplink_bw=MIXED_BW)
MIXED_SPEEDS = ", ".join(f"{u}:{bw}" for u, bw in zip(UPLINKS, MIXED_BW, strict=True))
MIXED_CONFIG = CONFIG + f"uplink_speeds = {MIXED_SPEEDS}\n"
SLOW = UPLINKS[MIXED_BW.index(min(MIXED_BW))]
SCENARIOS = {
    "equal": "all VMs start on uplink 1",
    "mixed": "mixed speeds",
    "saturation": "both uplinks full, 8 VMs split 4 + 4",
}
DEFAULT_SCENARIOS = ("equal", "mixed")  # saturation (3+ min per system) only when asked
POLL_EVERY = 4  # mixed: placement and loads every 4 samples (2 s), for the JSON

# Saturation (issue 12; tests/integration/test_saturation.py is the same case): uplinks of
# 10 and 2 Mbit/s shaped by TBF (50 ms of queue) on both ends, 8 VMs each sending one
# CUBIC flow to r1, split 4 + 4 before the traffic (ours: REST moves; OVS: bond/migrate),
# a split that looks balanced in bytes once both links are full.
SAT_VMS = [PREFIX + "v1%d" % k for k in range(1, 9)]
SAT_TOPO = dict(TOPO, vms_per_hv=len(SAT_VMS), uplink_bw=None)
SAT_QUEUE_MS = 50


class Quick:
    iperf_s = 10
    window_s = 4
    pings = 300
    down_after_s = 1.0
    runs = 1
    run_s = {"equal": 45, "mixed": 35, "saturation": 75}  # one system's run, to plan
    budget_s = 150  # a hard stop (the run in progress fails); ~90 s is typical
    sat_s, sat_tail_s = 45, 10  # saturation: iperf3 -t, Jain over the last tail_s


class Full:
    iperf_s = 25
    window_s = 8
    pings = 500
    down_after_s = 1.5
    runs = 2
    run_s = {"equal": 60, "mixed": 50, "saturation": 125}
    budget_s = 360  # ~5 min 10 s is typical
    sat_s, sat_tail_s = 90, 20


class BudgetExceeded(Exception):  # noqa: N818
    pass


def log(msg: str) -> None:
    print(f"[live {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# counters, bond state


def tx_bytes(ifname: str) -> int:
    with open(f"/sys/class/net/{ifname}/statistics/tx_bytes") as f:
        return int(f.read())


def far_end(uplink: str) -> str:
    """ToR port facing a hv uplink (``btor2-eth3`` for ``bhv1-eth2``)."""
    rows = tb.load_chassis().uplink_map(**TOPO)[HV]
    return next(r["tor_port"] for r in rows if r["uplink"] == uplink)


def bond_show() -> str:
    return tb.sh(["ovs-appctl", "--timeout=5", "bond/show", BOND], timeout=7)


_MEMBER_RE = re.compile(r"^(?:member|slave) (\S+): (enabled|disabled)")
_HASH_RE = re.compile(r"^\s+hash (\d+): (\d+) kB load")
_BASIS_RE = re.compile(r"^bond-hash-basis: (\d+)", re.M)


def bond_state() -> dict:
    """{'enabled': {member: bool}, 'hashes': {bucket: member}, 'loads_kb': {bucket: kB},
    'basis': int} from ``bond/show``. It lists, per member, the hash buckets that carried
    at least 1 kB since the last rebalance halved them (not their MACs: ``bond/hash`` maps
    a MAC to its bucket)."""
    enabled, hashes, loads, member = {}, {}, {}, None
    text = bond_show()
    for line in text.splitlines():
        m = _MEMBER_RE.match(line)
        if m:
            member = m.group(1)
            enabled[member] = m.group(2) == "enabled"
            continue
        m = _HASH_RE.match(line)
        if m and member:
            hashes[int(m.group(1))] = member
            loads[int(m.group(1))] = int(m.group(2))
    m = _BASIS_RE.search(text)
    basis = int(m.group(1)) if m else 0
    return {"enabled": enabled, "hashes": hashes, "loads_kb": loads, "basis": basis}


def bond_bucket(mac: str, basis: int = 0) -> int:
    """OVS's own bucket of (mac, VLAN 0): ``ovs-appctl bond/hash``."""
    return int(tb.sh(["ovs-appctl", "--timeout=5", "bond/hash", mac, "0", str(basis)], timeout=7))


def has_shaping(ifname: str) -> bool:
    return " htb " in tb.sh(["tc", "qdisc", "show", "dev", ifname], timeout=5)


_HTB_RATE_RE = re.compile(r"^class htb .*? rate (\d+(?:\.\d+)?)([KMG]?)bit", re.M)


def htb_rate_mbps(ifname: str) -> float | None:
    """Rate of the htb class Mininet's TCIntf puts on ifname (Mbit/s), None if none."""
    m = _HTB_RATE_RE.search(tb.sh(["tc", "class", "show", "dev", ifname], timeout=5))
    if not m:
        return None
    return float(m.group(1)) * {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3}[m.group(2)]


def make_ovs_bond(net, htb: bool = True) -> None:
    """Turn the (secure, controller-less, hence forwarding nothing) hv bridge into a
    standalone bridge whose two uplinks are one balance-slb bond, in one transaction:
    there is never a moment where it bridges two plain uplinks (a loop).

    Adding the ports again makes OVS replace Mininet's htb qdisc (the 10 Mbit/s limit)
    by its default, as on every port add: re-apply it the way Mininet's own
    ``OVSSwitch.TCReapply`` does at start, and check."""
    tb.sh(
        ["ovs-vsctl", "-t", "10", "del-controller", HV]
        + ["--", "set", "bridge", HV, "fail_mode=standalone"]
        + [x for up in UPLINKS for x in ("--", "del-port", HV, up)]
        + ["--", "add-bond", HV, BOND, *UPLINKS]
        + ["bond_mode=balance-slb", "lacp=off"]
        + [f"other_config:bond-rebalance-interval={REBALANCE * 1000}"],
        timeout=15,
    )
    tb.wait_until(lambda: set(bond_state()["enabled"]) == set(UPLINKS), timeout=10, desc="bond up")
    if not htb:
        return  # shaped by the caller, after this (saturation: TBF)
    hv = net.get(HV)

    def reapplied():
        for intf in hv.intfList():
            if intf.name in UPLINKS and not has_shaping(intf.name):
                intf.config(**intf.params)
        return all(has_shaping(u) for u in UPLINKS)

    tb.wait_until(reapplied, timeout=10, interval=0.5, desc="htb on the bond members")


def vswitchd_log_offset() -> int:
    try:
        return VSWITCHD_LOG.stat().st_size
    except OSError:
        return -1


def ovs_shifts(offset: int) -> list[str]:
    """Lines "bond BOND: shift NkB of load (with hash H) from A to B ..." since offset."""
    if offset < 0:
        return []
    try:
        with open(VSWITCHD_LOG, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if f"bond {BOND}: shift" in ln]


# ---------------------------------------------------------------------------
# one system's run


class System:
    """What differs between the two systems: setup, link state, placement, moves."""

    name = ""
    vms = VMS

    def start(self):
        raise NotImplementedError

    def stop(self):
        pass

    def uplink_live(self, uplink: str) -> bool:
        raise NotImplementedError

    def placement(self, net) -> dict:
        """{vm name: uplink name or None}."""
        raise NotImplementedError

    def mark(self) -> None:
        """Start counting MAC moves (traffic starts)."""
        raise NotImplementedError

    def moves(self) -> list[float | None] | None:
        """Wall-clock times of the MAC moves since mark() (None: cannot tell)."""
        raise NotImplementedError

    def snapshot(self, net) -> dict:
        """Placement and the system's own idea of the loads, cheaply (during traffic)."""
        raise NotImplementedError


class Ours(System):
    name = "ours"

    def __init__(self, topo: dict = TOPO, config: str = CONFIG, vms: list[str] = VMS):
        self.topo, self.config, self.vms = topo, config, vms
        self.ctl = None
        self.net = None
        self.events_since = 0

    def start(self):
        self.ctl = tb.Controller(config=self.config, of_port=OF_PORT, ws_port=WS_PORT).start()
        self.net = tb.start_network(controller_port=OF_PORT, **self.topo)
        tb.wait_until(self.synced, timeout=20, desc="bridge synced")
        return self.net

    def synced(self):
        bridges = self.ctl.get_json("/slb/v1/health")["bridges"]
        return any(b["synced"] for b in bridges.values())

    def stop(self):
        if self.ctl is not None:
            self.ctl.stop()

    def uplink_live(self, uplink):
        return next(u for u in self.ctl.get_json("/slb/v1/uplinks") if u["name"] == uplink)["live"]

    def placement(self, net):
        rows = {r["mac"]: r["uplink"] for r in self.ctl.get_json("/slb/v1/placement")}
        return {vm: rows.get(net.get(vm).MAC()) for vm in self.vms}

    def mark(self):
        events = self.ctl.get_json("/slb/v1/events")
        self.events_since = max((e.get("seq", 0) for e in events), default=0)

    def moves(self):
        events = self.ctl.get_json(f"/slb/v1/events?type=move&since={self.events_since}")
        return [float(e["time"]) for e in events]

    def uplinks(self) -> dict:
        """{uplink: its /uplinks row}."""
        return {u["name"]: u for u in self.ctl.get_json("/slb/v1/uplinks")}

    def snapshot(self, net):
        """REST placement and, per uplink, the smoothed load of its MACs (Mbit/s)."""
        placement = self.placement(net)
        loads = {
            name: {
                "macs": u["macs"],
                "tx_mbps": round(u["tx_bps"] * 8 / 1e6, 3),
                "rx_mbps": round(u["rx_bps"] * 8 / 1e6, 3),
            }
            for name, u in self.uplinks().items()
        }
        return {"placement": placement, "uplinks": loads}


class Ovs(System):
    name = "ovs"

    def __init__(self, topo: dict = TOPO, vms: list[str] = VMS):
        self.topo, self.vms = topo, vms
        self.net = None
        self.log_offset = -1
        self.buckets: dict[str, int] = {}

    def start(self):
        # The hv bridge comes up as chassis.py makes it (secure, OpenFlow 1.3, pointing at
        # OF_PORT where nothing listens now: it forwards nothing), then becomes the bond.
        self.net = tb.start_network(controller_port=OF_PORT, **self.topo)
        make_ovs_bond(self.net, htb=bool(self.topo.get("uplink_bw")))
        return self.net

    def uplink_live(self, uplink):
        return bond_state()["enabled"].get(uplink, False)

    def placement(self, net):
        """bond/show's member of the VM's bucket (bond/hash); a bucket that carried
        under 1 kB is not listed there: then the uplink whose tx counter a short ping
        burst from the VM grows."""
        state = bond_state()
        out = {}
        for vm in self.vms:
            member = state["hashes"].get(bond_bucket(net.get(vm).MAC(), state["basis"]))
            out[vm] = member or probe_uplink(net, vm)
        return out

    def mark(self):
        self.log_offset = vswitchd_log_offset()

    def moves(self):
        if self.log_offset < 0:
            return None  # no ovs-vswitchd log file here
        times = []
        for line in ovs_shifts(self.log_offset):
            stamp = line.split("|", 1)[0]  # 2026-11-27T14:13:01.401Z
            try:
                times.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
            except ValueError:
                times.append(None)
        return times

    def snapshot(self, net):
        """bond/show's member and load (kB, halved every rebalance run) of each VM's
        bucket; a bucket that carried under 1 kB is not listed (None)."""
        state = bond_state()
        if not self.buckets:
            self.buckets = {vm: bond_bucket(net.get(vm).MAC(), state["basis"]) for vm in self.vms}
        return {
            "placement": {vm: state["hashes"].get(b) for vm, b in self.buckets.items()},
            "bucket_kb": {vm: state["loads_kb"].get(b) for vm, b in self.buckets.items()},
        }


def probe_uplink(net, vm: str, count: int = 30) -> str | None:
    """The uplink whose tx counter grows most while vm pings r1 (count x 10 ms)."""
    before = [tx_bytes(u) for u in UPLINKS]
    net.get(vm).cmd(f"ping -n -q -i 0.01 -c {count} -W 1 {net.get(REMOTES[0]).IP()}")
    grew = [tx_bytes(u) - b for u, b in zip(UPLINKS, before, strict=True)]
    if max(grew) < count * 98:
        return None
    return UPLINKS[grew.index(max(grew))]


def set_link(port: str, state: str) -> None:
    tb.sh(["ip", "link", "set", port, state])


def run_traffic(net, system: System, mode, settle: bool = True) -> dict:
    """Measurements 1 and 2: all VMs start on uplink 1, then 4 iperf3 flows."""
    far2 = far_end(UPLINKS[1])
    r1 = net.get(REMOTES[0])
    set_link(far2, "down")
    try:
        tb.wait_until(lambda: not system.uplink_live(UPLINKS[1]), timeout=10, desc="uplink 2 down")
        for name in VMS:
            tb.wait_until(
                lambda n=name: tb.ping(net.get(n), r1), timeout=10, desc=f"{name} to reach r1"
            )
        learned = time.monotonic()
    finally:
        set_link(far2, "up")
    tb.wait_until(lambda: system.uplink_live(UPLINKS[1]), timeout=10, desc="uplink 2 back")
    start = system.placement(net)
    unshaped = [u for u in UPLINKS if not has_shaping(u)]
    if unshaped:
        raise tb.TestbedError(f"no {BW} Mbit/s htb qdisc on {unshaped}")
    log(f"{system.name}: placement before traffic {start}")

    # A VM whose uplink comes back has been placed long ago; here it was placed seconds
    # ago, and our rebalancer never moves a MAC within min_dwell of its last placement
    # change (OVS has no such rule). Start the traffic one dwell after the last VM was
    # learned (both systems), unless --no-settle.
    if settle:
        time.sleep(max(0.0, learned + REBALANCE + 0.5 - time.monotonic()))
    flows = iperf_flows(net, system, mode)
    end = system.placement(net)
    log(f"{system.name}: placement after traffic {end}, moves at {flows['move_at_s']} s")
    return {
        "start_placement": start,
        "started_on_one_uplink": set(start.values()) == {UPLINKS[0]},
        "end_placement": end,
        "both_used_s": flows["both_used_s"],
        "aggregate_mbps": flows["aggregate_mbps"],
        "flow_mbps": flows["flow_mbps"],
        "moves": flows["moves"],
        "move_at_s": flows["move_at_s"],
        "series": flows["series"],
    }


def iperf_flows(
    net,
    system: System,
    mode,
    poll: bool = False,
    remotes: list[str] = REMOTES,
    seconds: int | None = None,
    window: int | None = None,
    extra: tuple[str, ...] = (),
) -> dict:
    """iperf3 from each of system.vms to a remote (alternating over `remotes`; -t seconds,
    default mode.iperf_s; `extra` iperf3 options), the uplinks' tx counters sampled every
    0.5 s meanwhile; with poll, system.snapshot() every 2 s. Flow rates: mean of the last
    `window` s (default mode.window_s)."""
    vms = system.vms
    seconds = seconds or mode.iperf_s
    window = window or mode.window_s
    servers, clients = [], []
    for i in range(len(vms)):
        remote = net.get(remotes[i % len(remotes)])
        servers.append(remote.popen(["iperf3", "-s", "-1", "-p", str(5201 + i)]))
    time.sleep(1.0)
    system.mark()
    t0, wall0 = time.monotonic(), time.time()
    for i, name in enumerate(vms):
        remote = net.get(remotes[i % len(remotes)])
        cmd = ["iperf3", "-c", remote.IP(), "-p", str(5201 + i), "-t", str(seconds), *extra]
        clients.append(net.get(name).popen(cmd + ["-J", "-i", "1"]))
    series = []  # (t, [Mbit/s per uplink])
    timeline = []  # (t, system.snapshot())
    both_at = None
    try:
        last_t, last = time.monotonic(), [tx_bytes(u) for u in UPLINKS]
        deadline = t0 + seconds + 15
        while any(c.poll() is None for c in clients) and time.monotonic() < deadline:
            time.sleep(SAMPLE - (time.monotonic() - last_t) % SAMPLE)
            now, cur = time.monotonic(), [tx_bytes(u) for u in UPLINKS]
            rates = [(c - p) * 8 / (now - last_t) for c, p in zip(cur, last, strict=True)]
            series.append((round(now - t0, 2), [round(r / 1e6, 3) for r in rates]))
            if both_at is None and all(r > USED_BPS for r in rates):
                both_at = now - t0
            last_t, last = now, cur
            if poll and len(series) % POLL_EVERY == 0:
                timeline.append((round(now - t0, 2), system.snapshot(net)))
        results = []
        for i, c in enumerate(clients):
            out, err = c.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out = out.decode() if isinstance(out, bytes) else out
            try:
                results.append(json.loads(out))
            except ValueError:
                raise tb.TestbedError(f"iperf3 from {vms[i]}: no JSON: {out[-300:]!r}") from None
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
    flows, per_second = [], []
    for name, res in zip(vms, results, strict=True):
        if "error" in res:
            raise tb.TestbedError(f"iperf3 from {name}: {res['error']}")
        intervals = res["intervals"][-window:]
        flows.append(sum(i["sum"]["bits_per_second"] for i in intervals) / len(intervals) / 1e6)
        per_second.append([round(i["sum"]["bits_per_second"] / 1e6, 2) for i in res["intervals"]])
    moves = system.moves()
    move_at = None if moves is None else [None if t is None else round(t - wall0, 2) for t in moves]
    return {
        "both_used_s": None if both_at is None else round(both_at, 2),
        "aggregate_mbps": round(sum(flows), 2),
        "flow_mbps": [round(f, 2) for f in flows],
        "moves": None if move_at is None else len(move_at),
        "move_at_s": move_at,
        "series": series,
        "flow_series": per_second,
        "timeline": timeline,
    }


def window_mbps(series: list, mode) -> list[float]:
    """Per uplink, the mean tx rate of the 0.5 s samples in iperf3's last window_s s."""
    lo, hi = mode.iperf_s - mode.window_s, mode.iperf_s + SAMPLE / 2
    rows = [rates for t, rates in series if lo < t <= hi]
    if not rows:
        return [0.0] * len(UPLINKS)
    return [round(sum(r[u] for r in rows) / len(rows), 2) for u in range(len(UPLINKS))]


def jain(values: list[float]) -> float | None:
    """Jain's fairness index: (sum x)^2 / (n sum x^2); 1 = all equal, 1/n = one takes all."""
    square_sum = sum(v * v for v in values)
    return round(sum(values) ** 2 / (len(values) * square_sum), 3) if square_sum else None


def run_mixed(net, system: System, mode, settle: bool = True) -> dict:
    """The mixed-speeds scenario: VMs placed as the system places them, then 4 flows."""
    rates = {u: htb_rate_mbps(u) for u in UPLINKS}
    if rates != {u: float(bw) for u, bw in zip(UPLINKS, MIXED_BW, strict=True)}:
        raise tb.TestbedError(f"uplink htb rates {rates}, expected {MIXED_BW} Mbit/s")
    speeds = None
    if isinstance(system, Ours):
        speeds = {n: u["speed_bps"] / 1e6 for n, u in system.uplinks().items()}
        if speeds != rates:
            raise tb.TestbedError(f"controller sees speeds {speeds} Mbit/s, expected {rates}")
    r1 = net.get(REMOTES[0])
    for name in VMS:  # in order: the order in which each system first sees them
        tb.wait_until(
            lambda n=name: tb.ping(net.get(n), r1), timeout=10, desc=f"{name} to reach r1"
        )
    learned = time.monotonic()
    start = system.placement(net)
    log(f"{system.name}: placement before traffic {start}")
    if settle:  # as in the other scenario: one dwell after the last VM was learned
        time.sleep(max(0.0, learned + REBALANCE + 0.5 - time.monotonic()))
    flows = iperf_flows(net, system, mode, poll=True)
    end = system.placement(net)
    log(
        f"{system.name}: placement after traffic {end}, moves at {flows['move_at_s']} s, "
        f"flows {flows['flow_mbps']} Mbit/s"
    )
    return {
        "start_placement": start,
        "end_placement": end,
        "htb_mbps": rates,
        "controller_speeds_mbps": speeds,
        "slow_vms_start": sum(u == SLOW for u in start.values()),
        "slow_vms_end": sum(u == SLOW for u in end.values()),
        "aggregate_mbps": flows["aggregate_mbps"],
        # per uplink: its tx counter over iperf3's last window_s s
        "carried_mbps": window_mbps(flows["series"], mode),
        "flow_mbps": flows["flow_mbps"],
        "jain": jain(flows["flow_mbps"]),
        "moves": flows["moves"],
        "move_at_s": flows["move_at_s"],
        "series": flows["series"],
        "flow_series": flows["flow_series"],  # per VM: iperf3's 1 s intervals (Mbit/s)
        "timeline": flows["timeline"],  # every 2 s: placement, the system's loads
    }


def shape_tbf(uplinks: list[str] = UPLINKS, mbps: list[int] = MIXED_BW) -> list[str]:
    """TBF (rate, 15 kB burst, SAT_QUEUE_MS of queue) on both ends of each uplink."""
    shaped = []
    for uplink, rate in zip(uplinks, mbps, strict=True):
        for ifname in (uplink, far_end(uplink)):
            tb.sh(
                ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", f"{rate}mbit"]
                + ["burst", "15k", "latency", f"{SAT_QUEUE_MS}ms"]
            )
            shaped.append(ifname)
    return shaped


def split_four_four(net, system: System) -> None:
    """The first half of the VMs on uplink 1, the rest on uplink 2 (not pinned)."""
    half = len(system.vms) // 2
    want = {vm: UPLINKS[0] if i < half else UPLINKS[1] for i, vm in enumerate(system.vms)}
    if isinstance(system, Ours):
        for vm, uplink in want.items():
            mac = net.get(vm).MAC()
            code, body = system.ctl.request(
                "POST", f"/slb/v1/placement/{mac}/move", {"uplink": uplink}
            )
            if code != 200:
                raise tb.TestbedError(f"move {vm} to {uplink}: {code} {body}")
        return
    basis = bond_state()["basis"]
    for vm, uplink in want.items():  # a VM sharing another's bucket follows the later one
        bucket = bond_bucket(net.get(vm).MAC(), basis)
        tb.sh(["ovs-appctl", "--timeout=5", "bond/migrate", BOND, str(bucket), uplink])


def run_saturation(net, system: System, mode) -> dict:
    """The saturation scenario: 8 VMs split 4 + 4 over 10 + 2 Mbit/s, one flow each to r1."""
    shaped = shape_tbf()
    r1 = net.get(REMOTES[0])
    for name in system.vms:
        tb.wait_until(
            lambda n=name: tb.ping(net.get(n), r1), timeout=10, desc=f"{name} to reach r1"
        )
    split_four_four(net, system)
    start = system.placement(net)
    log(f"{system.name}: placement before traffic {start}")
    time.sleep(REBALANCE + 0.5)  # as in the other scenarios: one dwell before the traffic
    flows = iperf_flows(
        net,
        system,
        mode,
        poll=True,
        remotes=REMOTES[:1],
        seconds=mode.sat_s,
        window=mode.sat_tail_s,
        extra=("-C", "cubic"),
    )
    end = system.placement(net)
    missing = [i for i in shaped if "qdisc tbf " not in tb.sh(["tc", "qdisc", "show", "dev", i])]
    if missing:
        raise tb.TestbedError(f"TBF gone from {missing} (the rates are not shaped)")
    log(
        f"{system.name}: placement after traffic {end}, moves at {flows['move_at_s']} s, "
        f"flows {flows['flow_mbps']} Mbit/s"
    )
    slow_end = sum(u == SLOW for u in end.values())
    return {
        "vms": system.vms,
        "start_placement": start,
        "end_placement": end,
        "slow_vms_start": sum(u == SLOW for u in start.values()),
        "slow_vms_end": slow_end,
        "aggregate_mbps": flows["aggregate_mbps"],
        "flow_mbps": flows["flow_mbps"],
        "jain": jain(flows["flow_mbps"]),
        "moves": flows["moves"],
        "move_at_s": flows["move_at_s"],
        "series": flows["series"],
        "flow_series": flows["flow_series"],
        "timeline": flows["timeline"],
    }


# ---------------------------------------------------------------------------
# bench/ovs_slb.py (the OVS 3.x model) against a live OVS 3.1 balance-slb bond

MODEL_VMS = SAT_VMS
MODEL_TOPO = dict(TOPO, vms_per_hv=len(MODEL_VMS), uplink_bw=None)
MODEL_UDP_MBPS = [1, 2, 3, 4, 5, 6, 7, 8]  # per VM, constant: distinct bucket loads
_SHIFT_RE = re.compile(r"^([^|]+)\|.*shift (\d+)kB of load \(with hash (\d+)\) from (\S+) to (\S+)")


def bond_snapshot() -> dict:
    """bond_state() with the wall-clock time it was read."""
    return dict(bond_state(), at=time.time())


def run_ovs_model_check() -> dict:
    """An uplink coming back: every bucket on member 1 (member 2's far end down while the
    VMs send constant UDP, 1..8 Mbit/s), traffic stopped (loads then only halve), member 2
    back; the buckets OVS shifts at its next rebalance against what `OvsSlbBond` predicts
    from the loads `bond/show` reported just before that run."""
    sys.path.insert(0, str(REPO / "bench"))
    from ovs_slb import OvsSlbBond

    system = Ovs(MODEL_TOPO, MODEL_VMS)
    net = system.start()
    try:
        far2 = far_end(UPLINKS[1])
        set_link(far2, "down")
        tb.wait_until(lambda: not system.uplink_live(UPLINKS[1]), timeout=10, desc="member 2 down")
        r1, r2 = net.get(REMOTES[0]), net.get(REMOTES[1])
        for name in MODEL_VMS:
            tb.wait_until(lambda n=name: tb.ping(net.get(n), r1), timeout=10, desc=f"{name} up")
        servers, clients = [], []
        for i in range(len(MODEL_VMS)):
            remote = r1 if i % 2 == 0 else r2
            servers.append(remote.popen(["iperf3", "-s", "-1", "-p", str(5201 + i)]))
        time.sleep(1.0)
        for i, (name, rate) in enumerate(zip(MODEL_VMS, MODEL_UDP_MBPS, strict=True)):
            remote = r1 if i % 2 == 0 else r2
            cmd = ["iperf3", "-c", remote.IP(), "-p", str(5201 + i), "-u", "-b", f"{rate}M"]
            clients.append(net.get(name).popen([*cmd, "-t", "6"]))
        for p in clients:
            p.wait(timeout=30)
        for p in servers:
            if p.poll() is None:
                p.kill()
        time.sleep(1.5)  # the revalidators account the last datapath flow stats
        offset = vswitchd_log_offset()
        snaps, shifts = [bond_snapshot()], []  # loads now change only by a run's halving
        set_link(far2, "up")
        tb.wait_until(lambda: system.uplink_live(UPLINKS[1]), timeout=10, desc="member 2 back")
        deadline = time.time() + 3 * REBALANCE + 2
        while time.time() < deadline:
            time.sleep(0.2)
            snaps.append(bond_snapshot())
            shifts = [_SHIFT_RE.match(ln) for ln in ovs_shifts(offset)]
            shifts = [m for m in shifts if m]
            if shifts and snaps[-1]["at"] > _stamp(shifts[-1].group(1)) + 0.5:
                break
        buckets = {vm: bond_bucket(net.get(vm).MAC(), snaps[0]["basis"]) for vm in MODEL_VMS}
    finally:
        try:
            tb.stop_network(net)
        finally:
            system.stop()
    if not shifts:
        raise tb.TestbedError("OVS shifted nothing within 3 rebalance intervals")
    run_at = _stamp(shifts[0].group(1))
    before = [s for s in snaps if s["at"] < run_at - 0.05][-1]
    after = [s for s in snaps if s["at"] > run_at + 0.05][0]
    ovs_moved = [(int(m.group(3)), m.group(4), m.group(5)) for m in shifts]
    # The model, fed bond/show's loads (kB) and members of the same moment.
    names = {1: UPLINKS[0], 2: UPLINKS[1]}
    port = {v: k for k, v in names.items()}
    bond = OvsSlbBond([1, 2])
    for bucket, member in before["hashes"].items():
        bond.member_of[bucket] = port[member]
        bond.tx_bytes[bucket] = before["loads_kb"][bucket] * 1024
    model_moved = [(b, names[a], names[t]) for b, a, t in bond.rebalance()]
    return {
        "buckets_of_vms": buckets,
        "udp_mbps": dict(zip(MODEL_VMS, MODEL_UDP_MBPS, strict=True)),
        "before": {"hashes": before["hashes"], "loads_kb": before["loads_kb"]},
        "after": {"hashes": after["hashes"], "loads_kb": after["loads_kb"]},
        "ovs_shifts": ovs_moved,
        "ovs_log": [m.group(0) for m in shifts],
        "model_shifts": model_moved,
        "same": sorted(ovs_moved) == sorted(model_moved),
    }


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def table_model(res: dict) -> str:
    vms_of: dict[int, list[str]] = {}
    for vm, b in res["buckets_of_vms"].items():
        vms_of.setdefault(b, []).append(f"{vm} ({res['udp_mbps'][vm]} Mbit/s)")
    ovs = {b: t for b, _, t in res["ovs_shifts"]}
    model = {b: t for b, _, t in res["model_shifts"]}
    lines = [
        "# OVS 3.1 balance-slb bond, an uplink coming back: bond/show before the rebalance run,",
        "# the buckets OVS shifted (ovs-vswitchd.log) and what bench/ovs_slb.py predicts from",
        "# the same loads",
        f"{'hash':>4}  {'load kB':>8}  {'member before':<14}{'OVS moved to':<14}"
        f"{'model moved to':<16}VMs",
    ]
    before = res["before"]
    for b in sorted(before["loads_kb"], key=lambda b: -before["loads_kb"][b]):
        lines.append(
            f"{b:>4}  {before['loads_kb'][b]:>8}  {before['hashes'][b]:<14}"
            f"{ovs.get(b, '-'):<14}{model.get(b, '-'):<16}{', '.join(vms_of.get(b, []))}"
        )
    lines.append("# OVS log: " + "\n#          ".join(res["ovs_log"]))
    lines.append(f"# same buckets moved, same direction: {'yes' if res['same'] else 'NO'}")
    return "\n".join(lines)


def run_failover(net, system: System, mode) -> dict:
    """Measurement 3: loss window of bv11 -> br1 pings when its uplink's far end dies."""
    vm, r1 = net.get(VMS[0]), net.get(REMOTES[0])
    by_counters = probe_uplink(net, VMS[0])  # cross-check, and a fallback
    uplink = system.placement(net)[VMS[0]] or by_counters
    if uplink is None:
        raise tb.TestbedError(f"cannot tell which uplink carries {VMS[0]}")
    far = far_end(uplink)
    pinger = vm.popen(
        ["ping", "-n", "-i", str(PING_MS / 1000), "-c", str(mode.pings), "-W", "1", r1.IP()]
    )
    time.sleep(mode.down_after_s)
    set_link(far, "down")
    try:
        out, _ = pinger.communicate(timeout=mode.pings * PING_MS / 1000 + 15)
    finally:
        if pinger.poll() is None:
            pinger.kill()
        set_link(far, "up")
    out = out.decode() if isinstance(out, bytes) else out
    sent, received, window = tb.loss_window_ms(out, PING_MS)
    log(f"{system.name}: failover of {uplink} ({far} down): {received}/{sent}, {window:.0f} ms")
    return {
        "uplink": uplink,
        "uplink_by_counters": by_counters,
        "far_end": far,
        "sent": sent,
        "received": received,
        "loss_window_ms": window,
    }


def run_system(system: System, mode, settle: bool = True, scenario: str = "equal") -> dict:
    t_start = time.monotonic()
    try:
        log(f"{system.name}: starting ({SCENARIOS[scenario]})")
        net = system.start()
        res = {"system": system.name, "setup_s": round(time.monotonic() - t_start, 1)}
        log(f"{system.name}: network up in {res['setup_s']} s")
        if scenario == "mixed":
            res.update(run_mixed(net, system, mode, settle))
            return res
        if scenario == "saturation":
            res.update(run_saturation(net, system, mode))
            return res
        res.update(run_traffic(net, system, mode, settle))
        res["failover"] = run_failover(net, system, mode)
        return res
    finally:
        signal.alarm(0)  # the teardown is never cut short by the time budget
        try:
            if system.net is not None:  # also when start() failed after the network was up
                left = tb.stop_network(system.net)
                if any(left.values()):
                    log(f"{system.name}: left over after net.stop() (cleaned by name): {left}")
        finally:
            system.stop()
        log(f"{system.name}: done in {time.monotonic() - t_start:.1f} s")


# ---------------------------------------------------------------------------
# output


METRICS = [
    # (key, label, getter, format, what None means)
    ("both_used_s", "time until both uplinks used (s)", lambda r: r["both_used_s"], ".1f", "never"),
    (
        "aggregate_mbps",
        "aggregate throughput (Mbit/s) *",
        lambda r: r["aggregate_mbps"],
        ".1f",
        "n/a",
    ),
    (
        "loss_window_ms",
        "failover loss window (ms)",
        lambda r: r["failover"]["loss_window_ms"],
        ".0f",
        "n/a",
    ),
    ("moves", "MAC moves while iperf3 ran", lambda r: r["moves"], "g", "n/a"),
]

MIXED_METRICS = [
    (
        "aggregate_mbps",
        "aggregate throughput (Mbit/s) *",
        lambda r: r["aggregate_mbps"],
        ".1f",
        "n/a",
    ),
    (
        "uplink1_mbps",
        f"carried by uplink 1, {MIXED_BW[0]} Mbit/s (Mbit/s) **",
        lambda r: r["carried_mbps"][0],
        ".1f",
        "n/a",
    ),
    (
        "uplink2_mbps",
        f"carried by uplink 2, {MIXED_BW[1]} Mbit/s (Mbit/s) **",
        lambda r: r["carried_mbps"][1],
        ".1f",
        "n/a",
    ),
    (
        "slow_vms_end",
        f"VMs on the {min(MIXED_BW)} Mbit/s uplink at end (of {len(VMS)})",
        lambda r: r["slow_vms_end"],
        "g",
        "n/a",
    ),
    ("jain", "Jain's fairness index, 4 flows ***", lambda r: r["jain"], ".2f", "n/a"),
    ("min_flow_mbps", "slowest flow (Mbit/s)", lambda r: min(r["flow_mbps"]), ".2f", "n/a"),
    ("moves", "MAC moves while iperf3 ran", lambda r: r["moves"], "g", "n/a"),
    (
        "slow_vms_start",
        f"  VMs on the {min(MIXED_BW)} Mbit/s uplink at start",
        lambda r: r["slow_vms_start"],
        "g",
        "n/a",
    ),
]


SAT_METRICS = [
    ("jain", "Jain's fairness index, 8 flows *", lambda r: r["jain"], ".2f", "n/a"),
    ("min_flow_mbps", "slowest flow (Mbit/s)", lambda r: min(r["flow_mbps"]), ".2f", "n/a"),
    ("max_flow_mbps", "fastest flow (Mbit/s)", lambda r: max(r["flow_mbps"]), ".2f", "n/a"),
    (
        "aggregate_mbps",
        "aggregate throughput (Mbit/s)",
        lambda r: r["aggregate_mbps"],
        ".1f",
        "n/a",
    ),
    (
        "slow_vms_start",
        "VMs on the 2 Mbit/s uplink at start",
        lambda r: r["slow_vms_start"],
        "g",
        "n/a",
    ),
    ("slow_vms_end", "VMs on the 2 Mbit/s uplink at end", lambda r: r["slow_vms_end"], "g", "n/a"),
    ("moves", "MAC moves while iperf3 ran **", lambda r: r["moves"], "g", "n/a"),
]


def _median(values: list[float]) -> float:
    ranked = sorted(values)
    mid = len(ranked) // 2
    return ranked[mid] if len(ranked) % 2 else (ranked[mid - 1] + ranked[mid]) / 2


def summary(runs: list[dict]) -> dict:
    """Per metric: the median over the successful runs and the per-run values. A run that
    never used both uplinks counts as later than any that did; other unknowns (None) are
    left out."""
    ok = [r for r in runs if "error" not in r]
    out = _per_metric(ok, METRICS)
    out["pings_received"] = sum(r["failover"]["received"] for r in ok)
    out["pings_sent"] = sum(r["failover"]["sent"] for r in ok)
    out["started_on_one_uplink"] = [r["started_on_one_uplink"] for r in ok]
    out["errors"] = [r["error"] for r in runs if "error" in r]
    return out


def _per_metric(ok: list[dict], metrics: list) -> dict:
    out = {}
    for key, _, get, _, _ in metrics:
        vals = [get(r) for r in ok]
        known = [v for v in vals if v is not None]
        if key == "both_used_s" and vals:
            med = _median(known + [float("inf")] * (len(vals) - len(known)))
        else:
            med = _median(known) if known else None
        med = None if med is None or math.isinf(med) else round(med, 3)
        out[key] = {"median": med, "runs": vals}
    return out


def summary_mixed(runs: list[dict]) -> dict:
    """Per metric of the mixed-speeds scenario: median over the successful runs, and each."""
    out = _per_metric([r for r in runs if "error" not in r], MIXED_METRICS)
    out["errors"] = [r["error"] for r in runs if "error" in r]
    return out


def yes_no(flags: list[bool]) -> str:
    if not flags:
        return "-"
    return "yes" if all(flags) else f"NO ({sum(flags)} of {len(flags)} runs)"


def _val(v, spec: str, none: str = "never") -> str:
    return none if v is None else format(v, spec)


def _cell(sums: dict, key: str, spec: str, none: str) -> str:
    s = sums[key]
    if not s["runs"]:
        return "ERROR" if sums["errors"] else "-"
    text = _val(s["median"], spec, none)
    if len(s["runs"]) > 1:
        text += " (" + ", ".join(_val(v, spec, none) for v in s["runs"]) + ")"
    return text


def table(results: dict, mode, argv_line: str) -> str:
    keys = [k for k in ("ours", "ovs") if results.get(k)]
    sums = {k: summary(results[k]) for k in keys}
    n_runs = max((len(results[k]) for k in keys), default=0)
    width, col = 36, 24

    def cell(k, key, spec, none):
        return _cell(sums[k], key, spec, none)

    lines = [
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; chassis: 1 hv, 2 uplinks x {BW} Mbit/s, 4 VMs, 2 remotes; "
        f"rebalance every {REBALANCE} s; iperf3 -t {mode.iperf_s}; ping -i 0.01 -c {mode.pings}",
        f"# {n_runs} run(s) per system: median (each run)",
        f"{'metric':<{width}}" + "".join(f"{SYSTEMS[k]:>{col}}" for k in keys),
        "-" * (width + col * len(keys)),
    ]
    for key, label, _, spec, none in METRICS:
        cells = "".join(f"{cell(k, key, spec, none):>{col}}" for k in keys)
        lines.append(f"{label:<{width}}" + cells)
    pings = {k: f"{sums[k]['pings_received']}/{sums[k]['pings_sent']}" for k in keys}
    lines.append(
        f"{'  pings received / sent (all runs)':<{width}}"
        + "".join(f"{pings[k]:>{col}}" for k in keys)
    )
    lines.append(
        f"{'all VMs on uplink 1 at start':<{width}}"
        + "".join(f"{yes_no(sums[k]['started_on_one_uplink']):>{col}}" for k in keys)
    )
    lines.append("-" * (width + col * len(keys)))
    lines.append(
        f"# * sum of the 4 iperf3 flows over their last {mode.window_s} s; "
        f"max {2 * BW} Mbit/s (2 x {BW})"
    )
    for k in keys:
        for err in sums[k]["errors"]:
            lines.append(f"# {SYSTEMS[k]}: ERROR: {err}")
    lines.append(f"# reproduce: {argv_line}")
    return "\n".join(lines)


def _metric_table(
    keys: list[str], sums: dict, metrics: list, head: list[str], foot: list[str]
) -> list[str]:
    """Header lines, one row per metric (a column per system), footnotes: the shape
    the mixed-speed and saturation tables share."""
    width, col = max(len(m[1]) for m in metrics) + 2, 24
    rule = "-" * (width + col * len(keys))
    lines = head + [f"{'metric':<{width}}" + "".join(f"{SYSTEMS[k]:>{col}}" for k in keys), rule]
    for key, label, _, spec, none in metrics:
        cells = "".join(f"{_cell(sums[k], key, spec, none):>{col}}" for k in keys)
        lines.append(f"{label:<{width}}" + cells)
    return lines + [rule] + foot


def table_mixed(results: dict, mode) -> str:
    keys = [k for k in ("ours", "ovs") if results.get(k)]
    sums = {k: summary_mixed(results[k]) for k in keys}
    n_runs = max((len(results[k]) for k in keys), default=0)
    head = [
        f"# mixed speeds: uplink 1 {MIXED_BW[0]} Mbit/s, uplink 2 {MIXED_BW[1]} Mbit/s; "
        f"slb-ryu told uplink_speeds = {MIXED_SPEEDS}; OVS bond as is; VMs placed as each "
        f"system places them; rebalance every {REBALANCE} s; iperf3 -t {mode.iperf_s}",
        f"# {n_runs} run(s) per system: median (each run)",
    ]
    foot = [
        f"# * sum of the 4 iperf3 flows over their last {mode.window_s} s; "
        f"max {sum(MIXED_BW)} Mbit/s ({' + '.join(map(str, MIXED_BW))})",
        f"# ** the uplink's tx counter over the same {mode.window_s} s "
        "(frames with their headers: a full link shows a little above iperf3's rate)",
        "# *** (sum x)^2 / (4 sum x^2) over the 4 flows' rates: 1 = equal, 0.25 = one takes all",
    ]
    lines = _metric_table(keys, sums, MIXED_METRICS, head, foot)
    for k in keys:
        for err in sums[k]["errors"]:
            lines.append(f"# {SYSTEMS[k]}: ERROR: {err}")
    return "\n".join(lines)


def table_sat(results: dict, mode) -> str:
    keys = [k for k in ("ours", "ovs") if results.get(k)]
    sums = {
        k: dict(_per_metric([r for r in results[k] if "error" not in r], SAT_METRICS), errors=[])
        for k in keys
    }
    n_runs = max((len(results[k]) for k in keys), default=0)
    head = [
        f"# saturation: uplink 1 {MIXED_BW[0]} Mbit/s, uplink 2 {MIXED_BW[1]} Mbit/s (TBF, "
        f"{SAT_QUEUE_MS} ms queue); {len(SAT_VMS)} VMs, one CUBIC flow each to r1, split 4 + 4 "
        f"before the traffic; rebalance every {REBALANCE} s; iperf3 -t {mode.sat_s}, "
        f"tail {mode.sat_tail_s} s",
        f"# {n_runs} run(s) per system: median (each run)",
    ]
    foot = [
        f"# * (sum x)^2 / (8 sum x^2) of the flows' rates over their last {mode.sat_tail_s} s: "
        "1 = equal; 4 + 4 is 0.69 at best, 7 + 1 0.98",
        "# ** ours: REST move events; OVS: 'shift' lines in ovs-vswitchd.log (one bucket each)",
    ]
    lines = _metric_table(keys, sums, SAT_METRICS, head, foot)
    for k in keys:
        for r in results[k]:
            if "error" in r:
                lines.append(f"# {SYSTEMS[k]}: ERROR: {r['error']}")
    return "\n".join(lines)


COLORS = {"ours": "tab:blue", "ovs": "tab:red"}


SHORT = {"ours": "slb-ryu", "ovs": "OVS"}  # tick labels of the narrow panels


def _bars(ax, keys, sums, key, title, spec, top=None, names=SYSTEMS) -> None:
    """One bar per system (its median), a dot per run when there are several; top: a
    dashed line at that value (the bars' upper bound), labels inside the bars then."""
    for x, k in enumerate(keys):
        s = sums[k][key]
        med = s["median"]
        ax.bar(x, med or 0.0, color=COLORS[k], alpha=0.85, width=0.6)
        runs = [v for v in s["runs"] if v is not None]
        if len(s["runs"]) > 1:
            ax.plot([x] * len(runs), runs, "o", color="black", ms=4, zorder=3)
        inside = top is not None and bool(med)
        ax.annotate(
            _val(med, spec),
            (x, med or 0.0),
            xytext=(0, -4 if inside else 3),
            textcoords="offset points",
            ha="center",
            va="top" if inside else "bottom",
            color="white" if inside else "black",
        )
    ax.set_xticks(range(len(keys)), [names[k] for k in keys])
    ax.set_xlim(-0.6, len(keys) - 0.4)
    if top is not None:
        ax.axhline(top, color="grey", ls="--", lw=1)
        ax.set_ylim(0, top * 1.2)
    else:
        ax.set_ylim(0, max(1.0, *(sums[k][key]["median"] or 0 for k in keys)) * 1.25)
    ax.set_title(title, fontsize=10)


def _carried(ax, keys, sums) -> None:
    """Per system, what each uplink carried: uplink 1 below, uplink 2 stacked on it."""
    for x, k in enumerate(keys):
        low = sums[k]["uplink1_mbps"]["median"] or 0.0
        high = sums[k]["uplink2_mbps"]["median"] or 0.0
        ax.bar(x, low, color=COLORS[k], alpha=0.85, width=0.6)
        ax.bar(x, high, bottom=low, color=COLORS[k], alpha=0.35, width=0.6, hatch="//")
        ax.annotate(f"{low:.1f}", (x, low / 2), ha="center", va="center", color="white")
        ax.annotate(
            f"{high:.1f}", (x, low + high), xytext=(0, 3), textcoords="offset points", ha="center"
        )
    ax.axhline(sum(MIXED_BW), color="grey", ls="--", lw=1)
    ax.set_ylim(0, sum(MIXED_BW) * 1.3)
    ax.set_xticks(range(len(keys)), [SHORT[k] for k in keys])
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_title(
        f"carried (Mbit/s), uplink 1 ({MIXED_BW[0]})\n+ uplink 2 ({MIXED_BW[1]}, hatched)",
        fontsize=10,
    )


def _uplink_series(ax, run: dict, title: str, top: float) -> None:
    t = [s[0] for s in run["series"]]
    for u, style in zip(range(len(UPLINKS)), ("-", "--"), strict=True):
        ax.plot(t, [s[1][u] for s in run["series"]], style, label=UPLINKS[u])
    if run.get("both_used_s") is not None:
        ax.axvline(run["both_used_s"], color="grey", lw=1, ls=":")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("s since iperf3 start")
    ax.set_ylim(0, top * 1.25)
    ax.legend(fontsize=8, loc="lower right")


def _flow_series(ax, run: dict, title: str) -> None:
    """Each VM's iperf3 rate (1 s intervals), labelled with its uplink at start and end;
    dotted verticals: MAC moves (placement every 2 s is in the JSON's timeline)."""

    def short(uplink):
        return "?" if uplink is None else uplink.rsplit("-", 1)[-1]

    for vm, rates in zip(run.get("vms", VMS), run["flow_series"], strict=True):
        a, b = short(run["start_placement"].get(vm)), short(run["end_placement"].get(vm))
        label = f"{vm}: {a}" if a == b else f"{vm}: {a} -> {b}"
        ax.plot(range(1, len(rates) + 1), rates, "-o", ms=3, label=label)
    for at in run["move_at_s"] or []:
        if at is not None:
            ax.axvline(at, color="black", lw=0.8, ls=":")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("s since iperf3 start")
    ax.set_ylim(0, max(MIXED_BW) * 1.4)
    ax.legend(fontsize=8, loc="upper center", ncol=2)


def plot(results: dict, mixed: dict, path: Path, mode) -> None:
    """Bars (median of the runs, dots: each run) and run 1 over time, for each scenario
    that has a successful run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def ok_keys(res):
        return [k for k in ("ours", "ovs") if any("error" not in r for r in res.get(k, []))]

    keys, mkeys = ok_keys(results), ok_keys(mixed)
    sections = [sc for sc, ks in (("equal", keys), ("mixed", mkeys)) if ks]
    fig = plt.figure(figsize=(12, 7.5 * len(sections)))
    subfigs = fig.subfigures(len(sections), 1, hspace=0.05, squeeze=False)[:, 0]
    for sub, scenario in zip(subfigs, sections, strict=True):
        grid = sub.add_gridspec(2, 60, height_ratios=[1, 1.1], hspace=0.5)
        gap = 5  # grid columns left empty between panels
        if scenario == "equal":
            sums = {k: summary(results[k]) for k in keys}
            aggregate = f"aggregate throughput (Mbit/s)\nlast {mode.window_s} s"
            panels = [
                ("both_used_s", "time until both uplinks used (s)", ".1f", None),
                ("aggregate_mbps", aggregate, ".1f", 2 * BW),
                ("loss_window_ms", "failover loss window (ms)", ".0f", None),
            ]
            for i, (key, title, spec, top) in enumerate(panels):
                ax = sub.add_subplot(grid[0, 20 * i : 20 * i + 20 - gap])
                _bars(ax, keys, sums, key, title, spec, top)
            for j, k in enumerate(keys):
                ax = sub.add_subplot(grid[1, 30 * j : 30 * j + 30 - gap])
                run = next(r for r in results[k] if "error" not in r)
                title = f"{SYSTEMS[k]}, run 1: uplink tx (Mbit/s, 0.5 s samples)"
                _uplink_series(ax, run, title, BW)
            n = max(len(results[k]) for k in keys)
            sub.suptitle(
                f"4 VMs start on uplink 1 of 2 x {BW} Mbit/s, rebalance every {REBALANCE} s; "
                f"bars: median of {n} run(s), dots: each run",
                fontsize=11,
            )
            continue
        sums = {k: summary_mixed(mixed[k]) for k in mkeys}
        panels = [
            ("aggregate_mbps", f"aggregate throughput\n(Mbit/s), last {mode.window_s} s", ".1f"),
            ("jain", "Jain's fairness index\n(4 flows)", ".2f"),
            ("slow_vms_end", f"VMs on the {min(MIXED_BW)} Mbit/s\nuplink at end", "g"),
            ("moves", "MAC moves while\niperf3 ran", "g"),
        ]
        ax = sub.add_subplot(grid[0, 0 : 12 - gap])
        _carried(ax, mkeys, sums)
        for i, (key, title, spec) in enumerate(panels, start=1):
            ax = sub.add_subplot(grid[0, 12 * i : 12 * i + 12 - gap])
            top = {"aggregate_mbps": sum(MIXED_BW), "jain": 1.0}.get(key)
            _bars(ax, mkeys, sums, key, title, spec, top, names=SHORT)
        for j, k in enumerate(mkeys):
            ax = sub.add_subplot(grid[1, 30 * j : 30 * j + 30 - gap])
            run = next(r for r in mixed[k] if "error" not in r)
            _flow_series(ax, run, f"{SYSTEMS[k]}, run 1: each VM's iperf3 rate (Mbit/s)")
        n = max(len(mixed[k]) for k in mkeys)
        sub.suptitle(
            f"Mixed speeds: uplink 1 {MIXED_BW[0]} Mbit/s, uplink 2 {MIXED_BW[1]} Mbit/s, VMs "
            f"placed by each system; bars: median of {n} run(s), dots: each run; "
            "dotted: MAC moves",
            fontsize=11,
        )
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: iperf3 -t 10, 300 pings")
    ap.add_argument("--only", choices=sorted(SYSTEMS), help="run one system only")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), help="run one scenario only")
    ap.add_argument(
        "--runs", type=int, default=None, help="runs per system and scenario (default 2, quick 1)"
    )
    ap.add_argument(
        "--no-settle",
        action="store_true",
        help="start the traffic right after the VMs were learned (not one dwell later)",
    )
    ap.add_argument(
        "--json", default=None, help="results JSON (default bench/live-results.json; quick: none)"
    )
    ap.add_argument("--plot", default=None, help="PNG path (default bench/live.png; quick: none)")
    ap.add_argument(
        "--ovs-model",
        action="store_true",
        help="only check bench/ovs_slb.py against the live bond (an uplink coming back)",
    )
    args = ap.parse_args(argv)
    mode = Quick if args.quick else Full
    n_runs = args.runs or mode.runs
    here = Path(__file__).resolve().parent
    default_json = "live-saturation.json" if args.scenario == "saturation" else "live-results.json"
    json_path = args.json or (None if args.quick else str(here / default_json))
    plot_path = args.plot or (None if args.quick else str(here / "live.png"))
    if os.geteuid() != 0:
        print("bench/live.py needs root (Mininet, Open vSwitch)", file=sys.stderr)
        return 2

    def over_budget(signum, frame):
        raise BudgetExceeded(f"time budget of {mode.budget_s} s exceeded")

    signal.signal(signal.SIGALRM, over_budget)
    from mininet.log import setLogLevel

    setLogLevel("error")
    tb.ensure_ovs()
    if args.ovs_model:
        res = run_ovs_model_check()
        print(table_model(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
        return 0 if res["same"] else 1
    started = time.monotonic()
    deadline = started + mode.budget_s
    systems = [k for k in ("ours", "ovs") if not args.only or k == args.only]
    scenarios = [
        k for k in SCENARIOS if k == args.scenario or not args.scenario and k in DEFAULT_SCENARIOS
    ]
    if "saturation" in scenarios:
        deadline += n_runs * len(systems) * mode.run_s["saturation"]
    factories = {
        "equal": {"ours": Ours, "ovs": Ovs},
        "mixed": {
            "ours": lambda: Ours(MIXED_TOPO, MIXED_CONFIG),
            "ovs": lambda: Ovs(MIXED_TOPO),
        },
        "saturation": {
            "ours": lambda: Ours(SAT_TOPO, MIXED_CONFIG, SAT_VMS),
            "ovs": lambda: Ovs(SAT_TOPO, SAT_VMS),
        },
    }
    by_scenario: dict = {
        sc: {k: [] for k in (systems if sc in scenarios else [])} for sc in SCENARIOS
    }
    failed = False
    skipped = 0
    for n_sc, scenario in enumerate(scenarios):
        for round_no in range(n_runs):
            for key in systems:
                left = deadline - time.monotonic()
                if (round_no or n_sc) and left < mode.run_s[scenario]:
                    skipped += 1
                    log(
                        f"{key}: {scenario} run {round_no + 1} skipped, "
                        f"{left:.0f} s of the budget left"
                    )
                    continue
                signal.alarm(max(1, int(left)))
                try:
                    system = factories[scenario][key]()
                    by_scenario[scenario][key].append(
                        run_system(system, mode, settle=not args.no_settle, scenario=scenario)
                    )
                except Exception as exc:  # noqa: BLE001 - reported, then the other system runs
                    by_scenario[scenario][key].append(
                        {"system": key, "error": f"{type(exc).__name__}: {exc}"}
                    )
                    failed = True
                    log(f"{key}: FAILED: {type(exc).__name__}: {exc}")
                finally:
                    signal.alarm(0)
    results, mixed, sat = by_scenario["equal"], by_scenario["mixed"], by_scenario["saturation"]
    elapsed = time.monotonic() - started
    args_given = sys.argv[1:] if argv is None else argv
    argv_line = " ".join([".venv/bin/python bench/live.py", *args_given])
    if json_path:
        doc = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "mode": "quick" if args.quick else "full",
            "iperf_s": mode.iperf_s,
            "throughput_window_s": mode.window_s,
            "pings": mode.pings,
            "uplink_mbps": BW,
            "rebalance_interval_s": REBALANCE,
            "settle": not args.no_settle,
            "elapsed_s": round(elapsed, 1),
            "command": argv_line,
            "summary": {k: summary(v) for k, v in results.items()},
            "runs": results,
            "mixed": {
                "uplink_mbps": MIXED_BW,
                "uplink_speeds": MIXED_SPEEDS,
                "summary": {k: summary_mixed(v) for k, v in mixed.items()},
                "runs": mixed,
            },
            "saturation": {"iperf_s": mode.sat_s, "tail_s": mode.sat_tail_s, "runs": sat},
        }
        Path(json_path).write_text(json.dumps(doc, indent=1) + "\n")
    if results:
        print(table(results, mode, argv_line + "   (as root)"))
    if mixed:
        if results:
            print()
        print(table_mixed(mixed, mode))
        if not results:
            print(f"# reproduce: {argv_line}   (as root)")
    if sat:
        print(table_sat(sat, mode))
        if not results and not mixed:
            print(f"# reproduce: {argv_line}   (as root)")
    n_done = sum(len(v) for d in (results, mixed, sat) for v in d.values())
    print(
        f"# {n_done} runs in {elapsed:.0f} s"
        + (f"; {skipped} skipped (time budget)" if skipped else "")
        + ("; FAILED" if failed else "")
    )
    if json_path:
        print(f"# json: {json_path}")
    if plot_path and not failed and (results or mixed):
        try:
            plot(results, mixed, Path(plot_path), mode)
            print(f"# plot: {plot_path}")
        except ImportError:
            print("# plot skipped: matplotlib is not installed (make bench installs it)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

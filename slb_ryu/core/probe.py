"""Path probing: is an uplink's switch still forwarding, not just its carrier up?

A "gray failure" (a ToR whose forwarding plane hangs, a wrong VLAN on the switch port,
a port err-disabled upstream that keeps light) leaves the link up, so carrier-based
failover (Open vSwitch balance-slb, XenServer, Linux balance-alb) never moves the VMs
pinned there. Linux bonding's ARP monitor (`arp_ip_target`) detects it, but only in
modes without per-MAC load balancing. This module is that idea for SLB, kept pure:

- every round (`probe_interval`) the app sends one ARP request per target out of each
  live uplink, from that uplink's own locally administered MAC (`probe_mac`), so the
  fabric learns each probe MAC on its own uplink and the reply returns on the uplink
  that asked; a flow punts only those replies (`pipeline.probe_flows`);
- an uplink that got no reply from any target for `misses` rounds in a row is
  path-dead, but only while another uplink still gets replies: if nobody gets any,
  the target is down (or the whole fabric is), moving MACs helps nobody, and /health
  names the unreachable target instead;
- a path-dead uplink comes back after `recover` good rounds in a row.

`PathProber.round(now, live)` evaluates the round that just ended and returns the
state changes; the caller (BridgeCore) drains or restores the uplinks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

PATH_OFF = "off"  # probing disabled on this bridge
PATH_UNKNOWN = "unknown"  # probing, no verdict yet (no reply since start or carrier up)
PATH_UP = "up"
PATH_DEAD = "dead"

# Probe MACs: 5a:b0:<16-bit fold of the dpid>:<16-bit port number>. 0x5a is unicast
# (bit 0 clear) and locally administered (bit 1 set); 5a:b0 marks them as ours, so
# flows can drop any probe traffic (ours or another host's) before it reaches a VM.
PROBE_MAC_PREFIX = ("5a:b0:00:00:00:00", "ff:ff:00:00:00:00")


def probe_mac(dpid: int, port_no: int) -> str:
    """The source MAC of the probes sent out of `port_no` of bridge `dpid`."""
    fold = 0
    value = dpid
    while value:
        fold ^= value & 0xFFFF
        value >>= 16
    octets = [0x5A, 0xB0, fold >> 8, fold & 0xFF, (port_no >> 8) & 0xFF, port_no & 0xFF]
    return ":".join(f"{o:02x}" for o in octets)


def is_probe_mac(mac: str) -> bool:
    return mac.lower().startswith("5a:b0:")


@dataclass(frozen=True)
class ProbeTarget:
    """An IPv4 address to ARP for, on a VLAN (0 = untagged)."""

    ip: str
    vlan: int = 0

    def __str__(self) -> str:
        return f"{self.ip}@{self.vlan}" if self.vlan else self.ip


@dataclass(frozen=True)
class ProbeParams:
    interval: float = 0.2
    misses: int = 3
    recover: int = 5


DEFAULT_PROBE = ProbeParams()


@dataclass(frozen=True)
class ProbeRequest:
    """One ARP request to send: out of `port_no`, from `src_mac`, asking for `target`."""

    port_no: int
    src_mac: str
    target: ProbeTarget


@dataclass
class UplinkPath:
    """Probe bookkeeping of one uplink."""

    state: str = PATH_UNKNOWN
    misses: int = 0  # rounds in a row without a reply
    good: int = 0  # rounds in a row with a reply
    last_reply: float | None = None
    replied: bool = False  # a reply arrived during the current round
    sent: bool = False  # the current round sent probes out of it

    @property
    def dead(self) -> bool:
        return self.state == PATH_DEAD


@dataclass
class PathProber:
    """Per-uplink path state of one bridge."""

    dpid: int
    targets: tuple[ProbeTarget, ...]
    params: ProbeParams = DEFAULT_PROBE
    paths: dict[int, UplinkPath] = field(default_factory=dict)
    target_misses: dict[ProbeTarget, int] = field(default_factory=dict)
    last_changes: list[tuple[int, str, str]] = field(default_factory=list)
    _answered: set[ProbeTarget] = field(default_factory=set)

    def path(self, port_no: int) -> UplinkPath:
        return self.paths.setdefault(port_no, UplinkPath())

    def reply(self, port_no: int, ip: str, vlan: int, now: float) -> bool:
        """An ARP reply from `ip` reached our probe MAC through `port_no`; False if not ours."""
        target = ProbeTarget(ip, vlan)
        if target not in self.targets or port_no not in self.paths:
            return False
        path = self.paths[port_no]
        path.replied = True
        path.last_reply = now
        self._answered.add(target)
        return True

    def round(self, now: float, live: Iterable[int]) -> list[tuple[int, str, str]]:
        """End the current round and start the next: the (port, old, new state) changes.

        `live` are the uplinks whose carrier is up: only they are probed and judged. An
        uplink whose carrier went down keeps its verdict (a dead path stays dead until
        it proves itself again) but restarts its counters.
        """
        live = set(live)
        for port_no in list(self.paths):
            if port_no not in live:
                path = self.paths[port_no]
                path.misses = path.good = 0
                path.replied = path.sent = False
        judged = {p: self.path(p) for p in sorted(live)}
        answered = {p for p, path in judged.items() if path.sent and path.replied}
        vouching = {p for p in answered if not judged[p].dead}
        for port_no, path in judged.items():
            if not path.sent:
                continue
            if path.replied:
                path.misses, path.good = 0, path.good + 1
            else:
                path.good = 0
                # A miss counts only while another uplink (not dead itself) got a reply
                # in the same round: rounds nobody answered (target down, rebooting)
                # must not accumulate, or the first round after the target returns
                # would kill whichever uplink's reply happened to come late.
                if vouching - {port_no}:
                    path.misses += 1
        self._count_targets(any(p.sent for p in judged.values()))
        changes = self.last_changes = self._decide(judged)
        for path in judged.values():
            path.replied, path.sent = False, True
        return changes

    def _decide(self, judged: dict[int, UplinkPath]) -> list[tuple[int, str, str]]:
        # Only an uplink that is not dead itself vouches for the fabric: a dead one still
        # proving itself must not kill the last good uplink (all would be dead).
        reached = [p for p, path in judged.items() if path.sent and path.replied and not path.dead]
        changes = []
        for port_no, path in judged.items():
            if not path.sent:
                continue
            new = path.state
            if path.dead:
                if path.good >= self.params.recover:
                    new = PATH_UP
            elif path.misses >= self.params.misses:
                # Dead only while another uplink still reaches a target; otherwise the
                # target (or the whole fabric) is down and moving MACs helps nobody.
                if any(other != port_no for other in reached):
                    new = PATH_DEAD
            elif path.good > 0:
                new = PATH_UP
            if new != path.state:
                changes.append((port_no, path.state, new))
                path.state = new
        return changes

    def _count_targets(self, probed: bool) -> None:
        if probed:
            for target in self.targets:
                if target in self._answered:
                    self.target_misses[target] = 0
                else:
                    self.target_misses[target] = self.target_misses.get(target, 0) + 1
        self._answered = set()

    def requests(self, live: Iterable[int]) -> list[ProbeRequest]:
        """The ARP requests of the round `round` just started."""
        return [
            ProbeRequest(port_no, probe_mac(self.dpid, port_no), target)
            for port_no in sorted(set(live))
            for target in self.targets
        ]

    def unreachable(self) -> list[ProbeTarget]:
        """Targets no uplink has heard from for `misses` rounds in a row."""
        return [t for t in self.targets if self.target_misses.get(t, 0) >= self.params.misses]

    def state(self, port_no: int) -> str:
        path = self.paths.get(port_no)
        return path.state if path else PATH_UNKNOWN

    def forget(self, port_no: int) -> None:
        """The port is gone from the bridge."""
        self.paths.pop(port_no, None)


def meter_rate(targets: int, uplinks: int, interval: float) -> int:
    """Packets/s the probe-reply meter lets through: the expected rate with 4x headroom
    (and room for 4 uplinks), never below 20, so the meter bounds a flood of forged
    replies without ever dropping real ones."""
    expected = targets * max(uplinks, 4) / interval
    return max(20, int(expected * 4 + 0.999))


def parse_target(text: str) -> ProbeTarget:
    """'10.0.0.1' or '10.0.0.1@10' (VLAN 10); ValueError with the reason otherwise."""
    raw = text.strip()
    ip, _, vlan_text = raw.partition("@")
    try:
        addr = ipaddress.IPv4Address(ip.strip())
    except ValueError:
        raise ValueError(f"{raw!r}: not an IPv4 address") from None
    if addr.is_multicast or addr.is_unspecified or str(addr) == "255.255.255.255":
        raise ValueError(f"{raw!r}: not a unicast IPv4 address")
    vlan = 0
    if vlan_text:
        try:
            vlan = int(vlan_text.strip().removeprefix("vlan"))
        except ValueError:
            raise ValueError(f"{raw!r}: {vlan_text!r} is not a VLAN number") from None
        if not 1 <= vlan <= 4094:
            raise ValueError(f"{raw!r}: VLAN {vlan} not in 1..4094")
    return ProbeTarget(str(addr), vlan)

"""Pure placement state of one managed bridge: which uplink carries which (MAC, VLAN).

No Ryu import here. Every method takes the clock (`now`) as an argument and returns the
decisions it took (`Move`s) so the caller can turn them into OpenFlow messages and
learning packets. This mirrors Faucet's valve core: state in, decisions out.
"""

from __future__ import annotations

import collections
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from slb_ryu.core.errors import Conflict, Invalid, NotFound

# OpenFlow's LOCAL port number; kept here so the core stays free of Ryu.
OFPP_LOCAL = 0xFFFFFFFE

# Why a MAC got (or changed) its uplink. Recorded on every decision.
REASON_LEARN = "learn"
REASON_FAILOVER = "failover"
REASON_REBALANCE = "rebalance"
REASON_MANUAL = "manual"
REASON_RECOVERY = "recovery"
REASON_PORT_MOVE = "port-move"
REASON_FORGET = "forget"
REASON_DRAIN = "drain"


@dataclass
class Port:
    """A switch port as the controller sees it."""

    port_no: int
    name: str
    live: bool = True
    speed_bps: int = 0
    uplink: bool = False
    tx_bytes: int = 0  # port counters, from OpenFlow port statistics
    rx_bytes: int = 0
    held: bool = False  # a flapping uplink held out of service
    drained: bool = False  # taken out of service by the operator (maintenance)
    vlan: int = 0  # access VLAN of a local port (OVSDB tag); 0 = untagged / trunk
    path_dead: bool = False  # carrier up but probes get no reply (core/probe.py)
    path: str = "off"  # probe verdict: off, unknown, up, dead
    last_reply: float | None = None  # time of the last probe reply through it

    @property
    def usable(self) -> bool:
        """Carries traffic: link up and not withdrawn (held, drained or path-dead)."""
        return self.live and not self.withdrawn

    @property
    def withdrawn(self) -> bool:
        """Out of service by decision (flap hold, operator drain, dead path), whatever its
        carrier says: the datapath's fast-failover groups must not fall back onto it."""
        return self.held or self.drained or self.path_dead


@dataclass
class MacEntry:
    """One (MAC, VLAN) learned on a local port and the uplink it is pinned to."""

    mac: str
    vlan: int
    port_no: int
    uplink: int
    since: float
    pinned: bool = False
    ips: set[str] = field(default_factory=set)
    tx_bps: float = 0.0
    rx_bps: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        return (self.mac, self.vlan)


@dataclass(frozen=True)
class Move:
    """A placement decision: `old_uplink` None means new, `new_uplink` None means forgotten."""

    mac: str
    vlan: int
    port_no: int
    old_uplink: int | None
    new_uplink: int | None
    reason: str

    @property
    def needs_learning_packets(self) -> bool:
        """Upstream switches must re-learn when a known MAC changes uplink."""
        return (
            self.old_uplink is not None
            and self.new_uplink is not None
            and self.old_uplink != self.new_uplink
            and self.reason != REASON_RECOVERY
        )


def is_uplink_name(name: str, patterns: Sequence[str]) -> bool:
    """True when a port name matches one of the configured uplink globs."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def normalise_mac(mac: str) -> str:
    """Lower-case colon form; raises ValueError on anything that is not a MAC."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    try:
        octets = [int(p, 16) for p in parts]
    except ValueError:
        raise ValueError(f"not a MAC address: {mac!r}") from None
    return ":".join(f"{o:02x}" for o in octets)


def is_unicast_mac(mac: str) -> bool:
    return not int(mac[:2], 16) & 1


class BridgePlacement:
    """Placement for one bridge (datapath). Uplinks are recognised by name globs."""

    def __init__(self, dpid: int, uplink_patterns: Sequence[str], name: str = "") -> None:
        self.dpid = dpid
        self.name = name
        self.uplink_patterns = tuple(uplink_patterns)
        self.ports: dict[int, Port] = {}
        self.macs: dict[tuple[str, int], MacEntry] = {}
        self.active_uplink: int | None = None
        self.max_macs_per_port = 0  # 0 = unlimited
        self.probing = False  # path probing on: pipeline.probe_flows adds its flows
        self._per_port: collections.Counter[int] = collections.Counter()
        self._per_vlan: collections.Counter[int] = collections.Counter()

    # ---- ports -------------------------------------------------------------------

    @property
    def uplinks(self) -> list[Port]:
        return sorted((p for p in self.ports.values() if p.uplink), key=lambda p: p.port_no)

    @property
    def live_uplinks(self) -> list[Port]:
        return [p for p in self.uplinks if p.live]

    @property
    def usable_uplinks(self) -> list[Port]:
        return [p for p in self.uplinks if p.usable]

    @property
    def local_ports(self) -> list[Port]:
        return sorted((p for p in self.ports.values() if not p.uplink), key=lambda p: p.port_no)

    def is_uplink(self, port_no: int) -> bool:
        port = self.ports.get(port_no)
        return port is not None and port.uplink

    def names_uplink(self, port: Port) -> bool:
        """The configuration makes this port an uplink (never the bridge's LOCAL port)."""
        return port.port_no != OFPP_LOCAL and is_uplink_name(port.name, self.uplink_patterns)

    def port_name(self, port_no: int) -> str:
        port = self.ports.get(port_no)
        return port.name if port else str(port_no)

    def port_by_name(self, name: str) -> Port | None:
        return next((p for p in self.ports.values() if p.name == name), None)

    @property
    def label(self) -> str:
        """The bridge's name, or its datapath id when the name is not known yet."""
        return self.name or f"{self.dpid:016x}"

    def uplink_named(self, name: str) -> Port:
        """The uplink called `name`; NotFound / Invalid say what the bridge has instead."""
        port = self.port_by_name(name)
        if port is None or not port.uplink:
            names = ", ".join(p.name for p in self.uplinks) or "none"
            error = NotFound if port is None else Invalid
            raise error(f"{name!r} is not an uplink of bridge {self.label} (uplinks: {names})")
        return port

    def _adopt(self, port: Port) -> Port:
        """Classify a port and keep what the controller knows beyond the port description."""
        port.uplink = self.names_uplink(port)
        old = self.ports.get(port.port_no)
        if old is not None and old.name == port.name:
            port.held = port.held or old.held
            port.drained = port.drained or old.drained
            port.speed_bps = port.speed_bps or old.speed_bps
            port.tx_bytes, port.rx_bytes = old.tx_bytes, old.rx_bytes
            port.vlan = port.vlan or old.vlan
            port.path_dead, port.path, port.last_reply = old.path_dead, old.path, old.last_reply
        return port

    def set_ports(self, ports: Iterable[Port], now: float) -> list[Move]:
        """Replace the port list (switch connect); returns the moves it forced."""
        adopted = [self._adopt(port) for port in ports]
        self.ports = {}
        for port in adopted:
            self.ports[port.port_no] = port
            if port.port_no == OFPP_LOCAL and not self.name:
                self.name = port.name
        moves = self._forget_missing_ports()
        moves += self.repair(now)
        return moves

    def update_port(self, port: Port, now: float) -> list[Move]:
        """A port was added or changed state (link up/down)."""
        old = self.ports.get(port.port_no)
        self.ports[port.port_no] = self._adopt(port)
        moves: list[Move] = []
        if old is not None and old.name != port.name:
            moves += self.forget_port_macs(port.port_no)
        return moves + self.repair(now)

    def delete_port(self, port_no: int, now: float) -> list[Move]:
        """A port disappeared: its MACs go with it (a VM was shut down or migrated)."""
        self.ports.pop(port_no, None)
        moves = self.forget_port_macs(port_no)
        return moves + self.repair(now)

    # ---- MACs --------------------------------------------------------------------

    def learn(self, mac: str, vlan: int, in_port: int, now: float) -> Move | None:
        """A frame from `mac` entered local port `in_port`; pin it if it is new.

        Returns the decision, or None when nothing changed.
        """
        port = self.ports.get(in_port)
        if port is None or port.uplink or not is_unicast_mac(mac):
            return None
        entry = self.macs.get((mac, vlan))
        if entry is not None:
            if entry.port_no == in_port:
                return None
            self._per_port[entry.port_no] -= 1
            self._per_port[in_port] += 1
            entry.port_no = in_port
            return Move(mac, vlan, in_port, entry.uplink, entry.uplink, REASON_PORT_MOVE)
        if self.port_full(in_port):
            return None
        uplink = self.choose_uplink()
        if uplink is None:
            uplink = self.uplinks[0].port_no if self.uplinks else 0
        self.macs[(mac, vlan)] = MacEntry(mac, vlan, in_port, uplink, since=now)
        self._per_port[in_port] += 1
        self._per_vlan[vlan] += 1
        return Move(mac, vlan, in_port, None, uplink, REASON_LEARN)

    def port_full(self, port_no: int) -> bool:
        """The port already has `max_macs_per_port` MACs (a MAC flood must not grow state)."""
        return 0 < self.max_macs_per_port <= self._per_port[port_no]

    def learned_vlans(self) -> set[int]:
        """VLANs with at least one learned MAC (kept as a count: no scan per packet-in)."""
        return {vlan for vlan, n in self._per_vlan.items() if n > 0}

    def learn_ip(self, mac: str, vlan: int, ip: str) -> bool:
        """Record an IPv4 address the MAC used (ARP snooping); True when it is new."""
        entry = self.macs.get((mac, vlan))
        if entry is None or ip == "0.0.0.0" or ip in entry.ips:
            return False
        entry.ips.add(ip)
        return True

    def forget(self, mac: str, vlan: int) -> Move | None:
        entry = self.macs.pop((mac, vlan), None)
        if entry is None:
            return None
        self._per_port[entry.port_no] -= 1
        self._per_vlan[vlan] -= 1
        return Move(mac, vlan, entry.port_no, entry.uplink, None, REASON_FORGET)

    def move(
        self, mac: str, vlan: int, uplink: int, now: float, reason: str, pin: bool | None = None
    ) -> Move | None:
        """Move a MAC to `uplink` (manual or rebalance); raises on an impossible move."""
        entry = self.macs.get((mac, vlan))
        if entry is None:
            raise NotFound(f"MAC {mac} is not known on VLAN {vlan} of bridge {self.label}")
        port = self.ports.get(uplink)
        if port is None or not port.uplink:
            raise Invalid(f"port {uplink} is not an uplink of bridge {self.label}")
        if not port.usable:
            state = (
                "held down (flapping)"
                if port.held
                else "drained (maintenance)"
                if port.drained
                else "path-dead (probes unanswered or BFD down)"
                if port.path_dead
                else "down"
            )
            raise Conflict(f"uplink {port.name} is {state}: cannot move {mac} there")
        if pin is not None:
            entry.pinned = pin
        if entry.uplink == uplink:
            return None
        old = entry.uplink
        entry.uplink = uplink
        entry.since = now
        return Move(mac, vlan, entry.port_no, old, uplink, reason)

    def recover(self, entries: Iterable[MacEntry]) -> list[Move]:
        """Adopt placement read back from the switch's flows (controller restart)."""
        moves = []
        for entry in entries:
            if entry.port_no not in self.ports or self.is_uplink(entry.port_no):
                continue
            if not self.is_uplink(entry.uplink):
                continue
            if entry.key not in self.macs:
                self._per_port[entry.port_no] += 1
                self._per_vlan[entry.vlan] += 1
            self.macs[entry.key] = entry
            moves.append(
                Move(entry.mac, entry.vlan, entry.port_no, None, entry.uplink, REASON_RECOVERY)
            )
        return moves

    def macs_on(self, uplink: int) -> list[MacEntry]:
        return [e for e in self.macs.values() if e.uplink == uplink]

    # ---- decisions -----------------------------------------------------------------

    def uplink_load(self, uplink: int) -> float:
        """Bytes/s both directions of the MACs pinned to `uplink`."""
        return sum(e.tx_bps + e.rx_bps for e in self.macs.values() if e.uplink == uplink)

    def choose_uplink(self, exclude: int | None = None) -> int | None:
        """Least loaded live uplink, load normalised by link speed; fewest MACs breaks ties."""
        candidates = [p for p in self.usable_uplinks if p.port_no != exclude]
        if not candidates:
            return None
        counts = {p.port_no: 0 for p in candidates}
        loads = {p.port_no: 0.0 for p in candidates}
        for entry in self.macs.values():
            if entry.uplink in counts:
                counts[entry.uplink] += 1
                loads[entry.uplink] += entry.tx_bps + entry.rx_bps

        def weight(p: Port) -> float:
            return float(p.speed_bps) if p.speed_bps > 0 else 1.0

        return min(
            candidates,
            key=lambda p: (
                loads[p.port_no] / weight(p),
                counts[p.port_no] / weight(p),
                p.port_no,
            ),
        ).port_no

    def repair(self, now: float, reason: str = REASON_FAILOVER) -> list[Move]:
        """Re-pin MACs whose uplink is dead, gone or withdrawn; keep a usable active uplink."""
        live = {p.port_no for p in self.usable_uplinks}
        if self.active_uplink not in live:
            self.active_uplink = min(live) if live else None
        moves: list[Move] = []
        if not live:
            return moves
        for entry in sorted(self.macs.values(), key=lambda e: (-(e.tx_bps + e.rx_bps), e.key)):
            if entry.uplink in live:
                continue
            new = self.choose_uplink()
            assert new is not None
            old, entry.uplink, entry.since = entry.uplink, new, now
            moves.append(Move(entry.mac, entry.vlan, entry.port_no, old, new, reason))
        return moves

    def forget_port_macs(self, port_no: int) -> list[Move]:
        gone = [e.key for e in self.macs.values() if e.port_no == port_no]
        return [m for m in (self.forget(*key) for key in gone) if m is not None]

    def _forget_missing_ports(self) -> list[Move]:
        gone = [
            e.key
            for e in self.macs.values()
            if e.port_no not in self.ports or self.ports[e.port_no].uplink
        ]
        return [m for m in (self.forget(*key) for key in gone) if m is not None]

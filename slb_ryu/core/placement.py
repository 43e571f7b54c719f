"""Pure placement state of one managed bridge: which uplink carries which (MAC, VLAN).

No Ryu import here. Every method takes the clock (`now`) as an argument and returns the
decisions it took (`Move`s) so the caller can turn them into OpenFlow messages and
learning packets. This mirrors Faucet's valve core: state in, decisions out.
"""

from __future__ import annotations

import collections
import fnmatch
import heapq
import math
from collections.abc import Callable, Iterable, Sequence
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


# MacEntry fields that per-uplink tallies are kept from (see BridgePlacement._retally).
_TALLIED = frozenset({"uplink", "tx_bps", "rx_bps"})


@dataclass
class MacEntry:
    """One (MAC, VLAN) learned on a local port and the uplink it is pinned to.

    Once it belongs to a `BridgePlacement`, setting `uplink`, `tx_bps` or `rx_bps`
    (from anywhere: rebalance, stats, REST, tests) updates that placement's per-uplink
    counts and loads, so no decision ever needs a scan of every MAC.
    """

    mac: str
    vlan: int
    port_no: int
    uplink: int
    since: float
    pinned: bool = False
    ips: set[str] = field(default_factory=set)
    ip_seen: dict[str, float] = field(default_factory=dict)  # when each IP was last snooped
    tx_bps: float = 0.0
    rx_bps: float = 0.0

    def __setattr__(self, name: str, value: object) -> None:
        owner = self.__dict__.get("_owner")
        if owner is not None and name in _TALLIED:
            owner._retally(self, name, value)
        else:
            object.__setattr__(self, name, value)

    @property
    def key(self) -> tuple[str, int]:
        return (self.mac, self.vlan)

    @property
    def load(self) -> float:
        return self.tx_bps + self.rx_bps


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


# Per-uplink load sums are kept in integer units of 1/1000 byte/s: a float sum kept by
# adding and subtracting drifts from a recount, and a drift would break ties (two idle
# uplinks) differently from one decision to the next.
LOAD_UNITS = 1000


def load_units(entry: MacEntry) -> int:
    """A MAC's load (both directions) in integer units; a non-finite rate counts 0."""
    load = entry.tx_bps + entry.rx_bps
    return round(load * LOAD_UNITS) if math.isfinite(load) else 0


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
        self.max_ips_per_mac = 0  # 0 = unlimited
        # Port security: port number -> the one MAC it may send from (OVSDB
        # external_ids:attached-mac); ports not listed learn any MAC.
        self.attached_macs: dict[int, str] = {}
        self._per_port: collections.Counter[int] = collections.Counter()
        self._per_vlan: collections.Counter[int] = collections.Counter()
        # Per uplink port number (any number an entry names, live or not): its entries in
        # pinning order and the sum of their loads. Kept by _attach/_detach/_retally.
        self._on_uplink: dict[int, dict[tuple[str, int], MacEntry]] = {}
        self._load: dict[int, int] = {}  # in load_units: integers add up exactly
        self._uplinks: list[Port] | None = None  # sorted uplink ports, None = stale
        # Snooped addresses by when they were first noted: (time, MAC, VLAN, IP). Checked
        # against the entry when popped (refreshed ones go back in), so aging costs the
        # addresses due, not a scan of every MAC per timer tick.
        self._ip_due: list[tuple[float, str, int, str]] = []
        self._ip_owner: dict[tuple[int, str], str] = {}  # (VLAN, IP) -> the MAC that has it

    # ---- ports -------------------------------------------------------------------

    @property
    def uplinks(self) -> list[Port]:
        return list(self._sorted_uplinks())

    def _sorted_uplinks(self) -> list[Port]:
        """The uplinks in port order, cached until the port list changes (not a copy)."""
        if self._uplinks is None:
            ups = (p for p in self.ports.values() if p.uplink)
            self._uplinks = sorted(ups, key=lambda p: p.port_no)
        return self._uplinks

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
        self._uplinks = None
        for port in adopted:
            self.ports[port.port_no] = port
            if port.port_no == OFPP_LOCAL and not self.name:
                self.name = port.name
        moves = self._forget_missing_ports()
        moves += self.repair(now)
        return moves

    def update_port(self, port: Port, now: float, repin: bool = True) -> list[Move]:
        """A port was added or changed state (link up/down). `repin=False`: keep a usable
        active uplink but leave the `stranded()` MACs to the caller (it re-pins them in
        slices)."""
        old = self.ports.get(port.port_no)
        self.ports[port.port_no] = self._adopt(port)
        self._uplinks = None
        moves: list[Move] = []
        if old is not None and old.name != port.name:
            moves += self.forget_port_macs(port.port_no)
        return moves + self.repair(now, limit=None if repin else 0)

    def delete_port(self, port_no: int, now: float) -> list[Move]:
        """A port disappeared: its MACs go with it (a VM was shut down or migrated)."""
        self.ports.pop(port_no, None)
        self._uplinks = None
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
        self._attach(MacEntry(mac, vlan, in_port, uplink, since=now))
        return Move(mac, vlan, in_port, None, uplink, REASON_LEARN)

    def port_full(self, port_no: int) -> bool:
        """The port already has `max_macs_per_port` MACs (a MAC flood must not grow state)."""
        return 0 < self.max_macs_per_port <= self._per_port[port_no]

    def learned_vlans(self) -> set[int]:
        """VLANs with at least one learned MAC (kept as a count: no scan per packet-in)."""
        return {vlan for vlan, n in self._per_vlan.items() if n > 0}

    def learn_ip(self, mac: str, vlan: int, ip: str, now: float = 0.0) -> str:
        """Record an IPv4 address the MAC used (ARP snooping).

        Returns "new", "seen" (refreshed), "full" (the MAC already has
        `max_ips_per_mac` addresses: a VM sending ARPs from random addresses must not
        grow our state or the learning packets of its next move) or "ignored".

        An address belongs to the MAC that used it last in its VLAN: another MAC of the
        bridge that had it loses it. A VM whose MAC changed (or a NIC replaced) leaves its
        old MAC behind until it ages; a move of that old MAC must not announce the
        address for it, or the fabric's ARP caches point at a MAC nobody answers to
        (seen: tests/integration/test_operator.py, a drain after a MAC change).
        """
        entry = self.macs.get((mac, vlan))
        if entry is None or ip == "0.0.0.0":
            return "ignored"
        if ip in entry.ips:
            entry.ip_seen[ip] = now
            return "seen"
        if 0 < self.max_ips_per_mac <= len(entry.ips):
            return "full"
        before = self._ip_owner.get((vlan, ip))
        if before is not None and before != mac:
            self.drop_ip(before, vlan, ip)
        entry.ips.add(ip)
        entry.ip_seen[ip] = now
        self._ip_owner[(vlan, ip)] = mac
        heapq.heappush(self._ip_due, (now, mac, vlan, ip))
        return "new"

    def drop_ip(self, mac: str, vlan: int, ip: str) -> bool:
        """Forget that the MAC uses `ip` (aged, claimed by a fabric host, or used by
        another MAC since); True if it had it."""
        entry = self.macs.get((mac, vlan))
        if self._ip_owner.get((vlan, ip)) == mac:
            del self._ip_owner[(vlan, ip)]
        if entry is None or ip not in entry.ips:
            return False
        entry.ips.discard(ip)
        entry.ip_seen.pop(ip, None)
        return True

    def age_ips(self, now: float, max_age: float) -> list[tuple[str, int, str]]:
        """Forget snooped addresses not used for `max_age` seconds; returns what went.

        Runs on every timer tick (4/s): a scan of every MAC cost ~2.5 % of a CPU at
        10,000 MACs while idle, so it pops only the addresses noted `max_age` ago."""
        gone = []
        due = self._ip_due
        while due and now - due[0][0] >= max_age:
            noted, mac, vlan, ip = heapq.heappop(due)
            entry = self.macs.get((mac, vlan))
            if entry is None or ip not in entry.ips:
                continue  # forgotten with its MAC, claimed, or aged already
            seen = entry.ip_seen.get(ip, noted)
            if now - seen >= max_age:
                self.drop_ip(mac, vlan, ip)
                gone.append((mac, vlan, ip))
            else:  # used since: due again max_age after that use
                heapq.heappush(due, (seen, mac, vlan, ip))
        return gone

    def forget(self, mac: str, vlan: int) -> Move | None:
        entry = self.macs.get((mac, vlan))
        if entry is None:
            return None
        self._detach(entry)
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
        self.set_uplink(entry, uplink, now)
        return Move(mac, vlan, entry.port_no, old, uplink, reason)

    def recover(self, entries: Iterable[MacEntry]) -> list[Move]:
        """Adopt placement read back from the switch's flows (controller restart)."""
        moves = []
        for entry in entries:
            if entry.port_no not in self.ports or self.is_uplink(entry.port_no):
                continue
            if not self.is_uplink(entry.uplink):
                continue
            old = self.macs.get(entry.key)
            if old is not None:
                self._detach(old)
            self._attach(entry)
            moves.append(
                Move(entry.mac, entry.vlan, entry.port_no, None, entry.uplink, REASON_RECOVERY)
            )
        return moves

    def macs_on(self, uplink: int) -> list[MacEntry]:
        """The MACs pinned to `uplink`, in the order they were pinned there."""
        return list(self._on_uplink.get(uplink, {}).values())

    def mac_count(self, uplink: int) -> int:
        return len(self._on_uplink.get(uplink, ()))

    # ---- incremental tallies -------------------------------------------------------

    def set_uplink(self, entry: MacEntry, uplink: int, now: float) -> None:
        """Pin `entry` to `uplink` (the one way placement changes an entry's uplink)."""
        entry.uplink = uplink  # tallied by _retally through MacEntry.__setattr__
        entry.since = now

    def _attach(self, entry: MacEntry) -> None:
        self.macs[entry.key] = entry
        self._per_port[entry.port_no] += 1
        self._per_vlan[entry.vlan] += 1
        self._on_uplink.setdefault(entry.uplink, {})[entry.key] = entry
        self._load[entry.uplink] = self._load.get(entry.uplink, 0) + load_units(entry)
        object.__setattr__(entry, "_owner", self)
        for ip in entry.ips:
            self._ip_owner[(entry.vlan, ip)] = entry.mac

    def _detach(self, entry: MacEntry) -> None:
        for ip in entry.ips:
            if self._ip_owner.get((entry.vlan, ip)) == entry.mac:
                del self._ip_owner[(entry.vlan, ip)]
        del self.macs[entry.key]
        self._per_port[entry.port_no] -= 1
        self._per_vlan[entry.vlan] -= 1
        self._untally(entry)
        object.__setattr__(entry, "_owner", None)

    def _untally(self, entry: MacEntry) -> None:
        on = self._on_uplink[entry.uplink]
        del on[entry.key]
        if on:
            self._load[entry.uplink] -= load_units(entry)
        else:  # exact zero for an empty uplink: float residue must not break ties
            del self._on_uplink[entry.uplink]
            del self._load[entry.uplink]

    def _retally(self, entry: MacEntry, name: str, value: object) -> None:
        """Set a tallied field of an attached entry, keeping counts and loads true."""
        if name != "uplink":  # a load: only the sum changes (stats set these every poll)
            before = load_units(entry)
            object.__setattr__(entry, name, value)
            self._load[entry.uplink] += load_units(entry) - before
            return
        self._untally(entry)
        object.__setattr__(entry, name, value)
        self._on_uplink.setdefault(entry.uplink, {})[entry.key] = entry
        self._load[entry.uplink] = self._load.get(entry.uplink, 0) + load_units(entry)

    # ---- decisions -----------------------------------------------------------------

    def uplink_load(self, uplink: int) -> float:
        """Bytes/s both directions of the MACs pinned to `uplink`."""
        return self._load.get(uplink, 0) / LOAD_UNITS

    def choose_uplink(self, exclude: int | None = None) -> int | None:
        """Least loaded live uplink, load normalised by link speed; fewest MACs breaks ties.

        O(uplinks): counts and loads are kept as MACs are pinned, moved and measured.
        """
        best: tuple[float, float, int] | None = None
        for p in self._sorted_uplinks():
            if not p.usable or p.port_no == exclude:
                continue
            weight = float(p.speed_bps) if p.speed_bps > 0 else 1.0
            on = self._on_uplink.get(p.port_no)
            load = self._load.get(p.port_no, 0) / LOAD_UNITS
            rank = (load / weight, len(on or ()) / weight, p.port_no)
            if best is None or rank < best:
                best = rank
        return None if best is None else best[2]

    def repair(
        self, now: float, reason: str = REASON_FAILOVER, limit: int | None = None
    ) -> list[Move]:
        """Re-pin MACs whose uplink is dead, gone or withdrawn; keep a usable active uplink.

        O(moved log moved): only the entries of uplinks that are not usable are visited,
        heaviest first so the big talkers spread before the tie-break by count. With
        `limit`, only that many of them (the first of `stranded()`).
        """
        live = {p.port_no for p in self.usable_uplinks}
        if self.active_uplink not in live:
            self.active_uplink = min(live) if live else None
        moves: list[Move] = []
        if not live:
            return self._repin_orphans(now, reason)
        for entry in self.stranded()[:limit] if limit != 0 else ():
            new = self.choose_uplink()
            assert new is not None
            old = entry.uplink
            self.set_uplink(entry, new, now)
            moves.append(Move(entry.mac, entry.vlan, entry.port_no, old, new, reason))
        return moves

    def stranded(self) -> list[MacEntry]:
        """MACs pinned to an uplink that is not usable, in `repair`'s order: the ones
        carrying traffic heaviest first (by MAC and VLAN among equals), then the idle ones
        in the order they were pinned there (sorting 5,000 idle MACs by key cost ~3 ms of
        a failover's first piece for nothing: any order spreads idle MACs the same)."""
        live = {p.port_no for p in self.usable_uplinks}
        on = [e for u, on in self._on_uplink.items() if u not in live for e in on.values()]
        busy = [e for e in on if e.tx_bps or e.rx_bps]
        if not busy:
            return on
        idle = [e for e in on if not (e.tx_bps or e.rx_bps)]
        return sorted(busy, key=lambda e: (-e.load, e.key)) + idle

    def _repin_orphans(self, now: float, reason: str) -> list[Move]:
        """No usable uplink: MACs whose uplink port is gone altogether still go to an
        existing (dead) uplink. Their flows must name an uplink the pipeline knows: its
        flood and fast-failover flows are what carry a VM's broadcast to its neighbours
        and, once any uplink's link returns, its traffic out, before the controller acts."""
        existing = [p.port_no for p in self.uplinks]
        if not existing:
            return []
        moves = []
        orphans = [e for u, on in self._on_uplink.items() if u not in existing for e in on.values()]
        for entry in sorted(orphans, key=lambda e: e.key):
            old = entry.uplink
            self.set_uplink(entry, existing[0], now)
            moves.append(Move(entry.mac, entry.vlan, entry.port_no, old, existing[0], reason))
        return moves

    def recount(self) -> tuple[dict[int, int], dict[int, int]]:
        """Per-uplink counts and loads from a full scan (tests and benchmarks check the
        incremental tallies against it)."""
        counts: dict[int, int] = {}
        loads: dict[int, int] = {}
        for e in self.macs.values():
            counts[e.uplink] = counts.get(e.uplink, 0) + 1
            loads[e.uplink] = loads.get(e.uplink, 0) + load_units(e)
        return counts, loads

    def tallies(self) -> tuple[dict[int, int], dict[int, int]]:
        """The incremental per-uplink counts and loads (in load units)."""
        counts = {u: len(on) for u, on in self._on_uplink.items()}
        return counts, dict(self._load)

    def forget_port_macs(self, port_no: int) -> list[Move]:
        """Forget the MACs learned on one port (it went away or changed VLAN)."""
        return self._forget_where(lambda e: e.port_no == port_no)

    def _forget_missing_ports(self) -> list[Move]:
        """Forget MACs whose port is gone or is now an uplink (switch reconnect)."""
        return self._forget_where(
            lambda e: e.port_no not in self.ports or self.ports[e.port_no].uplink
        )

    def _forget_where(self, gone: Callable[[MacEntry], bool]) -> list[Move]:
        keys = [e.key for e in self.macs.values() if gone(e)]
        return [m for m in (self.forget(*key) for key in keys) if m is not None]

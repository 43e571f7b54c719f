"""The controller core of one bridge: events and a clock in, OpenFlow work out.

Like Faucet's valve, it holds no Ryu object: the app feeds it port descriptions,
port status changes and packet-ins, and sends what comes back (`Output`). It keeps
what it believes the switch holds (`installed`, `groups`) and only emits the
difference, so a reconnect or a restart converges instead of reshuffling.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from slb_ryu import pipeline
from slb_ryu.pipeline import FlowSpec, GroupSpec
from slb_ryu.placement import (
    REASON_FORGET,
    REASON_LEARN,
    REASON_MANUAL,
    REASON_RECOVERY,
    BridgePlacement,
    MacEntry,
    Move,
    Port,
    normalise_mac,
)

MAC_KINDS = {
    pipeline.KIND_SRC,
    pipeline.KIND_ARP_SNOOP,
    pipeline.KIND_REFLECTION,
    pipeline.KIND_DST,
}


@dataclass
class LearningPackets:
    """Frames to send for one moved MAC through `out_port`."""

    out_port: int
    mac: str
    vlan: int
    ips: tuple[str, ...]


@dataclass
class Output:
    """What the app must send, in order: (object, command, spec), then learning packets."""

    mods: list[tuple[str, str, Any]] = field(default_factory=list)
    learning: list[LearningPackets] = field(default_factory=list)
    reinject: bool = False

    def extend(self, other: Output) -> None:
        self.mods += other.mods
        self.learning += other.learning
        self.reinject = self.reinject or other.reinject


class EventLog:
    """Bounded ring of recent events plus monotonically growing counters."""

    def __init__(self, size: int = 1000) -> None:
        self.events: collections.deque[dict] = collections.deque(maxlen=size)
        self.counters: collections.Counter[str] = collections.Counter()
        self.seq = 0

    def add(self, now: float, kind: str, **fields: Any) -> None:
        self.seq += 1
        self.counters[kind] += 1
        self.events.append({"seq": self.seq, "time": now, "type": kind, **fields})

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount


class BridgeCore:
    """Placement, pipeline state and event log of one managed bridge."""

    def __init__(
        self,
        dpid: int,
        uplink_patterns: Iterable[str],
        events: EventLog | None = None,
        learning_packets: bool = True,
    ) -> None:
        self.placement = BridgePlacement(dpid, tuple(uplink_patterns))
        self.events = events or EventLog()
        self.learning_packets = learning_packets
        self.installed: dict[tuple, FlowSpec] = {}
        self.groups: dict[int, GroupSpec] = {}
        self.synced = False

    @property
    def dpid(self) -> int:
        return self.placement.dpid

    # ---- connection ------------------------------------------------------------------

    def connect(
        self,
        ports: Iterable[Port],
        switch_groups: Iterable[GroupSpec],
        switch_flows: Iterable[FlowSpec],
        ages: dict,
        now: float,
    ) -> Output:
        """Switch (re)connected: adopt its placement, then fix its tables to match ours."""
        flows = list(switch_flows)
        moves = self.placement.set_ports(ports, now)
        if not self.placement.macs:
            recovered = self.placement.recover(pipeline.entries_from_flows(flows, ages, now))
            if recovered:
                self.events.add(now, "recovery", dpid=self.dpid, macs=len(recovered))
            moves += self.placement._repair(now)
        self._log_moves(moves, now)
        self.installed = {f.key: f for f in flows if pipeline.cookie_kind(f.cookie) is not None}
        self.groups = {g.group_id: g for g in switch_groups}
        out = Output()
        self._sync_groups(out)
        self._sync(out, pipeline.desired_flows(self.placement), set(self.installed))
        self._learning(moves, out, now)
        self.synced = True
        return out

    def port_status(self, reason: str, port: Port, now: float) -> Output:
        """OpenFlow port status: 'add', 'modify' or 'delete'."""
        was = self.placement.ports.get(port.port_no)
        if reason == "delete":
            moves = self.placement.delete_port(port.port_no, now)
        else:
            moves = self.placement.update_port(port, now)
        now_port = self.placement.ports.get(port.port_no)
        if now_port is not None and now_port.uplink and (was is None or was.live != now_port.live):
            kind = "uplink-up" if now_port.live else "uplink-down"
            self.events.add(now, kind, dpid=self.dpid, uplink=now_port.name)
        return self._apply(moves, now)

    # ---- packets ---------------------------------------------------------------------

    def packet_in(
        self,
        kind: int | None,
        in_port: int,
        src: str,
        vlan: int,
        arp_spa: str | None,
        now: float,
    ) -> Output:
        """A packet sent to the controller by the table-1 miss or the ARP snoop flow."""
        out = Output()
        if not self.synced:
            self.events.count("packet_in_before_sync")
            return out
        if kind == pipeline.KIND_SRC_MISS:
            move = self.placement.learn(src, vlan, in_port, now)
            if move is not None:
                out = self._apply([move], now)
            entry = self.placement.macs.get((src, vlan))
            out.reinject = entry is not None and entry.port_no == in_port
            if not out.reinject:
                self.events.count("packet_in_dropped")
        elif kind != pipeline.KIND_ARP_SNOOP:
            self.events.count("packet_in_unexpected")
            return out
        if arp_spa and self.placement.learn_ip(src, vlan, arp_spa):
            self.events.add(now, "ip", dpid=self.dpid, mac=src, vlan=vlan, ip=arp_spa)
        return out

    # ---- operator actions ------------------------------------------------------------

    def move(self, mac: str, vlan: int, uplink: str, now: float, pin: bool | None) -> Output:
        """Manual move (REST): raises KeyError/ValueError with a message on bad input."""
        port = self.placement.port_by_name(uplink)
        if port is None or not port.uplink:
            raise ValueError(f"{uplink!r} is not an uplink of this bridge")
        mac = normalise_mac(mac)
        entry = self.placement.macs.get((mac, vlan))
        old_pin = entry.pinned if entry else None
        move = self.placement.move(mac, vlan, port.port_no, now, REASON_MANUAL, pin)
        out = self._apply([move] if move else [], now)
        if move is None and entry is not None and entry.pinned != old_pin:
            self._sync_mac(entry.key, out)
        return out

    # ---- internals -------------------------------------------------------------------

    def _apply(self, moves: list[Move], now: float) -> Output:
        out = Output()
        self._log_moves(moves, now)
        self._sync_groups(out)
        desired = {f.key: f for f in pipeline.base_flows(self.placement)}
        base = {
            k for k, f in self.installed.items() if pipeline.cookie_kind(f.cookie) not in MAC_KINDS
        }
        self._sync(out, desired, base)
        for key in dict.fromkeys((m.mac, m.vlan) for m in moves):
            self._sync_mac(key, out)
        self._learning(moves, out, now)
        return out

    def _sync_mac(self, key: tuple[str, int], out: Output) -> None:
        entry = self.placement.macs.get(key)
        desired = {f.key: f for f in pipeline.mac_flows(entry)} if entry else {}
        mac, vlan = key
        vid = pipeline.vlan_vid(vlan)
        current = {
            k
            for k, f in self.installed.items()
            if pipeline.cookie_kind(f.cookie) in MAC_KINDS and _mentions(f, mac, vid)
        }
        self._sync(out, desired, current)

    def _sync(self, out: Output, desired: dict[tuple, FlowSpec], current: set) -> None:
        """Emit adds/modifies for `desired` and deletes for keys in `current` not desired."""
        for key, spec in desired.items():
            have = self.installed.get(key)
            if have == spec:
                continue
            command = "modify" if have is not None and have.cookie == spec.cookie else "add"
            out.mods.append(("flow", command, spec))
            self.installed[key] = spec
        for key in sorted(current - set(desired), key=repr):
            out.mods.append(("flow", "delete", self.installed.pop(key)))

    def _sync_groups(self, out: Output) -> None:
        for spec in pipeline.groups(self.placement):
            have = self.groups.get(spec.group_id)
            if have != spec:
                out.mods.append(("group", "add" if have is None else "modify", spec))
                self.groups[spec.group_id] = spec

    def _learning(self, moves: list[Move], out: Output, now: float) -> None:
        if not self.learning_packets:
            return
        for move in moves:
            if not move.needs_learning_packets or move.new_uplink is None:
                continue
            port = self.placement.ports.get(move.new_uplink)
            if port is None or not port.live:
                continue
            entry = self.placement.macs.get((move.mac, move.vlan))
            ips = tuple(sorted(entry.ips)) if entry else ()
            out.learning.append(LearningPackets(move.new_uplink, move.mac, move.vlan, ips))
            self.events.add(
                now,
                "learning-packets",
                dpid=self.dpid,
                mac=move.mac,
                vlan=move.vlan,
                uplink=port.name,
                packets=max(1, len(ips)),
            )

    def _log_moves(self, moves: list[Move], now: float) -> None:
        name = self.placement.port_name
        for m in moves:
            kind = {REASON_LEARN: "learn", REASON_FORGET: "forget", REASON_RECOVERY: "recover"}.get(
                m.reason, "move"
            )
            self.events.add(
                now,
                kind,
                dpid=self.dpid,
                mac=m.mac,
                vlan=m.vlan,
                port=name(m.port_no),
                reason=m.reason,
                **{
                    "from": None if m.old_uplink is None else name(m.old_uplink),
                    "to": None if m.new_uplink is None else name(m.new_uplink),
                },
            )

    def entry(self, mac: str, vlan: int) -> MacEntry | None:
        return self.placement.macs.get((mac, vlan))


def _mentions(flow: FlowSpec, mac: str, vid: int) -> bool:
    fields = dict(flow.match)
    return fields.get("vlan_vid") == vid and mac in (fields.get("eth_src"), fields.get("eth_dst"))

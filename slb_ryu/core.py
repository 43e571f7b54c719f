"""The controller core of one bridge: events and a clock in, OpenFlow work out.

Like Faucet's valve, it holds no Ryu object: the app feeds it port descriptions,
port status changes and packet-ins, and sends what comes back (`Output`). It keeps
what it believes the switch holds (`installed`, `groups`) and only emits the
difference, so a reconnect or a restart converges instead of reshuffling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from slb_ryu import pipeline
from slb_ryu.events import EventLog
from slb_ryu.load import LoadTracker
from slb_ryu.pipeline import FlowSpec, GroupSpec
from slb_ryu.placement import (
    REASON_FORGET,
    REASON_LEARN,
    REASON_MANUAL,
    REASON_REBALANCE,
    REASON_RECOVERY,
    BridgePlacement,
    MacEntry,
    Move,
    Port,
    normalise_mac,
)
from slb_ryu.rebalance import DEFAULT_PARAMS, MacLoad, RebalanceParams, UplinkState, imbalance, plan

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


class BridgeCore:
    """Placement, pipeline state and event log of one managed bridge."""

    def __init__(
        self,
        dpid: int,
        uplink_patterns: Iterable[str],
        events: EventLog | None = None,
        learning_packets: bool = True,
        params: RebalanceParams = DEFAULT_PARAMS,
        half_life: float = 10.0,
        speeds: dict[str, int] | None = None,
    ) -> None:
        self.placement = BridgePlacement(dpid, tuple(uplink_patterns))
        self.events = events or EventLog()
        self.learning_packets = learning_packets
        self.params = params
        self.loads = LoadTracker(half_life=half_life)
        self.speeds = dict(speeds or {})
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
        moves = self.placement.set_ports(map(self._speed, ports), now)
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
            moves = self.placement.update_port(self._speed(port), now)
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

    # ---- load and rebalancing ------------------------------------------------------------

    def flow_stats(self, samples: Iterable[tuple[FlowSpec, int, float]], now: float) -> None:
        """Byte counters of our per-MAC flows: source flows are tx, destination flows rx."""
        counters: dict[tuple[str, int], list] = {}
        for spec, byte_count, age in samples:
            kind = pipeline.cookie_kind(spec.cookie)
            if kind not in (pipeline.KIND_SRC, pipeline.KIND_DST):
                continue
            fields = dict(spec.match)
            mac = fields.get("eth_src" if kind == pipeline.KIND_SRC else "eth_dst")
            vid = int(fields.get("vlan_vid", 0))
            key = (str(mac), vid & 0xFFF if vid & pipeline.OFPVID_PRESENT else 0)
            slot = counters.setdefault(key, [None, None, None, None])
            direction = 0 if kind == pipeline.KIND_SRC else 1
            slot[direction], slot[direction + 2] = byte_count, age
        for key, (tx, rx, tx_age, rx_age) in counters.items():
            entry = self.placement.macs.get(key)
            if entry is None or tx is None or rx is None:
                continue
            entry.tx_bps, entry.rx_bps = self.loads.update(key, tx, rx, now, tx_age, rx_age)

    def port_stats(self, counters: dict[int, tuple[int, int]]) -> None:
        """Port byte counters (tx, rx) by port number, for the uplink view and metrics."""
        for port_no, (tx, rx) in counters.items():
            port = self.placement.ports.get(port_no)
            if port is not None:
                port.tx_bytes, port.rx_bytes = tx, rx

    def rebalance(self, now: float) -> Output:
        """Move MACs between live uplinks as `rebalance.plan` decides; learning packets follow."""
        uplinks = [UplinkState(p.port_no, p.live, p.speed_bps) for p in self.placement.uplinks]
        loads = [
            MacLoad(e.key, e.uplink, e.tx_bps + e.rx_bps, e.pinned, e.since)
            for e in self.placement.macs.values()
        ]
        before = imbalance(uplinks, loads)
        moves = []
        for planned in plan(uplinks, loads, now, self.params):
            mac, vlan = planned.key
            move = self.placement.move(mac, vlan, planned.new_uplink, now, REASON_REBALANCE)
            if move is not None:
                moves.append(move)
        if moves:
            after = imbalance(
                uplinks,
                [
                    MacLoad(e.key, e.uplink, e.tx_bps + e.rx_bps, e.pinned, e.since)
                    for e in self.placement.macs.values()
                ],
            )
            self.events.add(
                now, "rebalance", dpid=self.dpid, moves=len(moves), before=before, after=after
            )
        return self._apply(moves, now)

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

    def set_pinned(self, mac: str, vlan: int, pinned: bool, now: float) -> Output:
        """Pin a MAC where it is, or unpin it (REST); raises KeyError for an unknown MAC."""
        mac = normalise_mac(mac)
        entry = self.placement.macs.get((mac, vlan))
        if entry is None:
            raise KeyError(f"unknown MAC {mac} on VLAN {vlan}")
        out = Output()
        if entry.pinned != pinned:
            entry.pinned = pinned
            self.events.add(now, "pin" if pinned else "unpin", dpid=self.dpid, mac=mac, vlan=vlan)
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
            if key not in self.placement.macs:
                self.loads.forget(key)
            self._sync_mac(key, out)
        self._learning(moves, out, now)
        return out

    def _speed(self, port: Port) -> Port:
        if port.name in self.speeds:
            port.speed_bps = self.speeds[port.name]
        return port

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

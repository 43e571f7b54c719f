"""A small OpenFlow 1.3 datapath that runs the pipeline's own plain data (test support).

In the spirit of Faucet's FakeOFTable: instead of asserting which flows exist (shape),
tests send a frame through `desired_flows` + `groups` and look at where it comes out
(behaviour), so a change of layout that keeps the behaviour keeps the tests green.

Semantics modelled (OpenFlow 1.3 as Open vSwitch implements it):
- tables are walked from 0; in each, the highest-priority matching flow wins; two
  matching flows of the same priority are an error (OpenFlow leaves the winner undefined);
  no match is a drop (OpenFlow 1.3 table-miss default);
- match fields: in_port, eth_src, eth_dst, eth_type, vlan_vid, metadata, each exact or
  (value, mask); vlan_vid uses OXM encoding (OFPVID_NONE = untagged, OFPVID_PRESENT|vid);
  an unknown field raises, so a new pipeline field cannot be silently ignored;
- instructions in OpenFlow order: meter, apply-actions, write-metadata, goto-table;
- actions: output (to the ingress port is dropped unless OFPP_IN_PORT is used: OVS's
  xlate_output_action "skipping output to input port"), controller (a punt, marked
  metered when the flow has a meter), group, push_vlan, pop_vlan, set_vlan_vid;
- groups: "all" runs every bucket on its own copy of the frame; "ff" (fast failover)
  runs the first bucket whose watch port is live and nothing when none is;
- OVS extensions the pipeline uses: `controller_meter` (a punt through its own meter),
  `resubmit` (run that table's matching flow, its goto chain included, then go on with
  the next action), registers reg0/reg1/reg2 (0 unless a flow sets them), and the `learn_*`
  actions, whose learned flows are NOT modelled: a table that only the datapath fills
  is empty here, i.e. the model is a datapath that has seen nothing from the fabric
  (no guard hit, no claimed IP). The learned side is tested live (integration).
Outputs to a port that is not live are still reported: liveness only steers
fast-failover groups, so a test can catch a flow that sends to a dead link.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from slb_ryu.core.pipeline import (
    OFPVID_NONE,
    OFPVID_PRESENT,
    FlowSpec,
    GroupSpec,
    desired_flows,
    groups,
)
from slb_ryu.core.placement import BridgePlacement

OFPP_IN_PORT = 0xFFFFFFF8
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_8021Q = 0x8100
MAX_TABLES = 255


@dataclass(frozen=True)
class Frame:
    """An Ethernet frame: `vlan` is the 802.1Q VID, None when untagged."""

    eth_src: str
    eth_dst: str
    vlan: int | None = None
    eth_type: int = ETH_TYPE_IPV4

    def tagged(self, vlan: int | None) -> Frame:
        return dataclasses.replace(self, vlan=vlan)


@dataclass(frozen=True)
class Punt:
    """A copy sent to the controller: by which flow, how many bytes, through a meter?"""

    table: int
    cookie: int
    frame: Frame
    max_len: int
    metered: bool


@dataclass
class Result:
    """What the datapath did with one frame."""

    outputs: list[tuple[int, Frame]] = field(default_factory=list)
    punts: list[Punt] = field(default_factory=list)
    to_in_port: list[Frame] = field(default_factory=list)  # outputs OVS dropped
    trace: list[FlowSpec] = field(default_factory=list)  # the flows that matched

    @property
    def ports(self) -> list[int]:
        return [port for port, _ in self.outputs]

    @property
    def dropped(self) -> bool:
        return not self.outputs and not self.punts


def _mac(value: str) -> int:
    return int(value.replace(":", ""), 16)


@dataclass
class _Packet:
    """The frame under processing plus its pipeline fields."""

    in_port: int
    frame: Frame
    metadata: int = 0
    reg0: int = 0
    reg1: int = 0
    reg2: int = 0

    def field(self, name: str) -> int:
        if name == "in_port":
            return self.in_port
        if name == "eth_src":
            return _mac(self.frame.eth_src)
        if name == "eth_dst":
            return _mac(self.frame.eth_dst)
        if name == "eth_type":
            return self.frame.eth_type
        if name == "vlan_vid":
            return OFPVID_NONE if self.frame.vlan is None else OFPVID_PRESENT | self.frame.vlan
        if name == "metadata":
            return self.metadata
        if name in ("reg0", "reg1", "reg2"):
            return getattr(self, name)
        if name == "arp_op":
            return 1 if self.frame.eth_type == ETH_TYPE_ARP else 0  # requests only
        raise ValueError(f"FakeOFTable does not model match field {name!r}")


def _as_int(name: str, value: object) -> int:
    if name in ("eth_src", "eth_dst"):
        return _mac(str(value))
    return int(value)  # type: ignore[call-overload]


def matches(flow: FlowSpec, packet: _Packet) -> bool:
    """OpenFlow match: every field equal under its mask (absent fields are wildcards)."""
    for name, wanted in flow.match:
        have = packet.field(name)
        if isinstance(wanted, tuple):
            value, mask = (_as_int(name, w) for w in wanted)
            if have & mask != value & mask:
                return False
        elif have != _as_int(name, wanted):
            return False
    return True


class FakeOFTable:
    """Flows and groups of one switch; `process` runs one frame through them."""

    def __init__(self, flows: Iterable[FlowSpec], group_specs: Iterable[GroupSpec]) -> None:
        self.tables: dict[int, list[FlowSpec]] = {}
        for flow in flows:
            self.tables.setdefault(flow.table, []).append(flow)
        for table in self.tables.values():
            table.sort(key=lambda f: -f.priority)
        self.groups = {g.group_id: g for g in group_specs}

    @classmethod
    def of(cls, bridge: BridgePlacement) -> FakeOFTable:
        """The table the pipeline wants for this placement."""
        return cls(desired_flows(bridge).values(), groups(bridge))

    def lookup(self, table: int, packet: _Packet) -> FlowSpec | None:
        hits = [f for f in self.tables.get(table, []) if matches(f, packet)]
        if not hits:
            return None
        if len(hits) > 1 and hits[1].priority == hits[0].priority:
            raise AssertionError(f"ambiguous match in table {table}: {hits[0]} and {hits[1]}")
        return hits[0]

    def process(self, in_port: int, frame: Frame, live: Iterable[int]) -> Result:
        """Send `frame` in on `in_port`; `live` are the ports whose link is up."""
        live_ports = frozenset(live)
        packet = _Packet(in_port, frame)
        result = Result()
        self._walk(0, packet, live_ports, result)
        return result

    def _walk(
        self, table: int | None, packet: _Packet, live: frozenset[int], result: Result
    ) -> None:
        while table is not None:
            flow = self.lookup(table, packet)
            if flow is None:
                break
            result.trace.append(flow)
            self._apply(flow.actions, packet, flow, live, result)
            if flow.write_metadata is not None:
                packet.metadata = flow.write_metadata
            if flow.goto is not None and flow.goto <= table:
                raise AssertionError(f"goto_table {flow.goto} from table {table}")
            table = flow.goto
            if table is not None and table > MAX_TABLES:
                raise AssertionError(f"goto_table {table}")

    def _apply(
        self,
        actions: Iterable[tuple[str, int]],
        packet: _Packet,
        flow: FlowSpec,
        live: frozenset[int],
        result: Result,
    ) -> None:
        """Apply-actions: each action sees the frame as the previous ones left it."""
        for action in actions:
            kind, arg = action[0], action[1]
            frame = packet.frame
            if kind == "output":
                if arg == OFPP_IN_PORT:
                    result.outputs.append((packet.in_port, frame))
                elif arg == packet.in_port:
                    result.to_in_port.append(frame)
                else:
                    result.outputs.append((arg, frame))
            elif kind == "controller":
                result.punts.append(
                    Punt(flow.table, flow.cookie, frame, arg, metered=flow.meter is not None)
                )
            elif kind == "push_vlan":
                if arg != ETH_TYPE_8021Q or frame.vlan is not None:
                    raise AssertionError(f"push_vlan {arg:#x} on {frame} is not modelled")
                packet.frame = frame.tagged(0)
            elif kind == "pop_vlan":
                if frame.vlan is None:
                    raise AssertionError(f"pop_vlan on untagged {frame}")
                packet.frame = frame.tagged(None)
            elif kind == "set_vlan_vid":
                if frame.vlan is None or not arg & OFPVID_PRESENT:
                    raise AssertionError(f"set_vlan_vid {arg:#x} on {frame}")
                packet.frame = frame.tagged(arg & 0xFFF)
            elif kind == "controller_meter":
                result.punts.append(Punt(flow.table, flow.cookie, frame, arg, metered=True))
            elif kind == "resubmit":
                self._walk(arg, packet, live, result)
            elif kind in ("learn_fabric", "learn_claim", "learn_local", "learn_pending"):
                pass  # learned flows are not modelled (see the module docstring)
            elif kind == "group":
                self._group(arg, packet, flow, live, result)
            else:
                raise ValueError(f"FakeOFTable does not model action {kind!r}")

    def _group(
        self, group_id: int, packet: _Packet, flow: FlowSpec, live: frozenset[int], result: Result
    ) -> None:
        group = self.groups.get(group_id)
        if group is None:
            raise AssertionError(f"flow {flow} uses missing group {group_id}")
        if group.type == "all":
            chosen = [actions for _, actions in group.buckets]
        elif group.type == "ff":
            if any(watch is None for watch, _ in group.buckets):
                raise AssertionError(f"fast-failover group {group_id} bucket without watch port")
            chosen = [actions for watch, actions in group.buckets if watch in live][:1]
        else:
            raise ValueError(f"FakeOFTable does not model group type {group.type!r}")
        for actions in chosen:  # each bucket works on its own copy of the frame
            self._apply(actions, dataclasses.replace(packet), flow, live, result)

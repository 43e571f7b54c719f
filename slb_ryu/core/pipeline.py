"""The OpenFlow 1.3 pipeline, as plain data: the one place that decides which flows exist.

`FlowSpec` and `GroupSpec` describe flows and groups without Ryu, so the pipeline can be
unit-tested and diffed (desired vs installed). `ofmsgs` turns them into Ryu messages.
flows/PIPELINE.md documents every table, priority and cookie defined here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from slb_ryu.core.placement import BridgePlacement, MacEntry
from slb_ryu.core.probe import PROBE_MAC_PREFIX, probe_mac

# Tables.
TABLE_CLASSIFY = 0  # uplink or local ingress
TABLE_LOCAL_SRC = 1  # per (in_port, MAC, VLAN): pins the uplink, counts tx bytes
TABLE_UPLINK_IN = 2  # admission from the fabric: reflections, active uplink
TABLE_FORWARD = 3  # delivery to local MACs, floods, out to the pinned uplink

# Cookies: 0x51b0 in the top 16 bits marks our flows; then an 8-bit kind and 8 flag bits.
COOKIE_MAGIC = 0x51B0 << 48
COOKIE_MAGIC_MASK = 0xFFFF << 48
COOKIE_KIND_MASK = COOKIE_MAGIC_MASK | (0xFF << 40)
KIND_CLASSIFY = 0x01
KIND_SRC_MISS = 0x02
KIND_SRC = 0x03
KIND_ARP_SNOOP = 0x04
KIND_ADMIT = 0x05
KIND_REFLECTION = 0x06
KIND_DST = 0x07
KIND_FLOOD = 0x08
KIND_TO_UPLINK = 0x09
KIND_DROP = 0x0A
KIND_MIGRATION = 0x0B
KIND_PROBE = 0x0C  # path probing (core/probe.py): replies punted, other probe frames dropped
FLAG_PINNED = 0x01


def cookie(kind: int, flags: int = 0) -> int:
    return COOKIE_MAGIC | (kind << 40) | (flags << 32)


def cookie_kind(value: int) -> int | None:
    """The kind of one of our cookies, None for a flow that is not ours."""
    if value & COOKIE_MAGIC_MASK != COOKIE_MAGIC:
        return None
    return (value >> 40) & 0xFF


def cookie_flags(value: int) -> int:
    return (value >> 32) & 0xFF


# Metadata values written before TABLE_FORWARD. From a local port: the uplink's port
# number (which is also its fast-failover group id). From the fabric: one of these.
META_FABRIC_ACTIVE = 1 << 32
META_FABRIC_STANDBY = 2 << 32

# Groups: one fast-failover group per uplink (id = port number), one flood group of
# local ports per VLAN (id = FLOOD_GROUP_BASE + VLAN, 0 = untagged).
FLOOD_GROUP_BASE = 0x10000
FLOOD_GROUP = FLOOD_GROUP_BASE

# The meter on every flow that sends unsolicited packets to the controller.
METER_ID = 1
# Probe replies have their own meter: a packet-in flood on METER_ID must not starve
# them (that would make uplinks look path-dead).
PROBE_METER_ID = 2

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
LINK_LOCAL_MULTICAST = ("01:80:c2:00:00:00", "ff:ff:ff:ff:ff:f0")
OFPVID_PRESENT = 0x1000
OFPVID_NONE = 0x0000
CONTROLLER_MAX_LEN = 0xFFFF  # OFPCML_NO_BUFFER: whole packet, nothing buffered
SNOOP_MAX_LEN = 128

Match = tuple[tuple[str, object], ...]
Action = tuple[str, int]


@dataclass(frozen=True)
class FlowSpec:
    """One flow: match fields use Ryu's OFPMatch names; masked values are (value, mask)."""

    table: int
    priority: int
    match: Match
    cookie: int
    actions: tuple[Action, ...] = ()
    write_metadata: int | None = None
    goto: int | None = None
    meter: int | None = None

    @property
    def key(self) -> tuple[int, int, Match]:
        """What OpenFlow treats as the same flow (table, priority, match)."""
        return (self.table, self.priority, self.match)


@dataclass(frozen=True)
class GroupSpec:
    group_id: int
    type: str  # "ff" (fast failover) or "all"
    buckets: tuple[tuple[int | None, tuple[Action, ...]], ...]  # (watch_port, actions)


@dataclass(frozen=True)
class MeterSpec:
    """A packets-per-second drop meter (rate-limits what the switch sends us)."""

    meter_id: int
    rate_pps: int
    burst: int


def match(**fields: object) -> Match:
    return tuple(sorted(fields.items()))


def vlan_vid(vlan: int) -> int:
    """OXM vlan_vid for a VLAN number, 0 meaning untagged."""
    return OFPVID_PRESENT | vlan if vlan else OFPVID_NONE


def vlan_of(vid: int) -> int:
    """The VLAN number of an OXM vlan_vid (the inverse of `vlan_vid`), 0 for untagged."""
    return vid & 0xFFF if vid & OFPVID_PRESENT else 0


def vlans(bridge: BridgePlacement) -> list[int]:
    """VLANs with a flood domain: 0 (untagged), access-port VLANs and learned VLANs."""
    found = {0} | {p.vlan for p in bridge.local_ports} | bridge.learned_vlans()
    return sorted(found)


def _controller(table: int, priority: int, fields: Match, kind: int, max_len: int) -> FlowSpec:
    """A metered flow to the controller: the switch, not the controller, absorbs floods."""
    return FlowSpec(
        table, priority, fields, cookie(kind), actions=(("controller", max_len),), meter=METER_ID
    )


def base_flows(bridge: BridgePlacement) -> list[FlowSpec]:
    """Flows that depend on ports, VLANs and the active uplink, not on individual MACs."""
    flows = [
        FlowSpec(TABLE_CLASSIFY, 200, match(eth_dst=LINK_LOCAL_MULTICAST), cookie(KIND_DROP)),
        FlowSpec(TABLE_CLASSIFY, 0, (), cookie(KIND_CLASSIFY), goto=TABLE_LOCAL_SRC),
        _controller(TABLE_LOCAL_SRC, 0, (), KIND_SRC_MISS, CONTROLLER_MAX_LEN),
        FlowSpec(
            TABLE_UPLINK_IN,
            0,
            (),
            cookie(KIND_ADMIT),
            write_metadata=META_FABRIC_STANDBY,
            goto=TABLE_FORWARD,
        ),
        FlowSpec(TABLE_FORWARD, 0, (), cookie(KIND_DROP)),
    ]
    if bridge.active_uplink is not None:
        flows.append(
            FlowSpec(
                TABLE_UPLINK_IN,
                100,
                match(in_port=bridge.active_uplink),
                cookie(KIND_ADMIT),
                write_metadata=META_FABRIC_ACTIVE,
                goto=TABLE_FORWARD,
            )
        )
    for port in bridge.local_ports:
        if port.vlan:  # access port: tag untagged frames, refuse tagged ones
            flows += [
                FlowSpec(
                    TABLE_CLASSIFY,
                    100,
                    match(in_port=port.port_no, vlan_vid=OFPVID_NONE),
                    cookie(KIND_CLASSIFY),
                    actions=(("push_vlan", 0x8100), ("set_vlan_vid", vlan_vid(port.vlan))),
                    goto=TABLE_LOCAL_SRC,
                ),
                FlowSpec(TABLE_CLASSIFY, 90, match(in_port=port.port_no), cookie(KIND_DROP)),
            ]
    flows += probe_flows(bridge)
    in_use = vlans(bridge)
    for vlan in in_use:
        vid = vlan_vid(vlan)
        flows.append(
            FlowSpec(
                TABLE_FORWARD,
                20,
                match(metadata=META_FABRIC_ACTIVE, vlan_vid=vid),
                cookie(KIND_FLOOD),
                actions=(("group", FLOOD_GROUP_BASE + vlan),),
            )
        )
    for uplink in bridge.uplinks:
        port_no = uplink.port_no
        flows += [
            FlowSpec(
                TABLE_CLASSIFY,
                100,
                match(in_port=port_no),
                cookie(KIND_CLASSIFY),
                goto=TABLE_UPLINK_IN,
            ),
            FlowSpec(
                TABLE_FORWARD,
                10,
                match(metadata=port_no),
                cookie(KIND_TO_UPLINK),
                actions=(("group", port_no),),
            ),
        ]
        for vlan in in_use:
            flows.append(
                FlowSpec(
                    TABLE_FORWARD,
                    20,
                    match(eth_dst=MULTICAST, metadata=port_no, vlan_vid=vlan_vid(vlan)),
                    cookie(KIND_FLOOD),
                    actions=(("group", FLOOD_GROUP_BASE + vlan), ("group", port_no)),
                )
            )
    return flows


def probe_flows(bridge: BridgePlacement) -> list[FlowSpec]:
    """Path probing (core/probe.py), when on: punt ARP replies to an uplink's own probe
    MAC arriving on that uplink (metered, its own meter), so a reply on U counts for U;
    drop every other frame to or from a probe MAC (ours reflected through the other
    switch, or another host's) so probes never reach a VM nor get learned."""
    if not bridge.probing:
        return []
    flows = [
        FlowSpec(TABLE_CLASSIFY, 140, match(eth_dst=PROBE_MAC_PREFIX), cookie(KIND_PROBE)),
        FlowSpec(TABLE_CLASSIFY, 140, match(eth_src=PROBE_MAC_PREFIX), cookie(KIND_PROBE)),
    ]
    for uplink in bridge.uplinks:
        flows.append(
            FlowSpec(
                TABLE_CLASSIFY,
                150,
                match(
                    in_port=uplink.port_no,
                    eth_dst=probe_mac(bridge.dpid, uplink.port_no),
                    eth_type=0x0806,
                    arp_op=2,
                ),
                cookie(KIND_PROBE),
                actions=(("controller", SNOOP_MAX_LEN),),
                meter=PROBE_METER_ID,
            )
        )
    return flows


def _deliver(bridge: BridgePlacement, port_no: int, vlan: int) -> tuple[Action, ...]:
    """Output to a local port, untagging for an access port of that VLAN."""
    port = bridge.ports.get(port_no)
    if port is not None and port.vlan and port.vlan == vlan:
        return (("pop_vlan", 0), ("output", port_no))
    return (("output", port_no),)


def mac_flows(bridge: BridgePlacement, entry: MacEntry) -> list[FlowSpec]:
    """The five flows of one learned (MAC, VLAN)."""
    vid = vlan_vid(entry.vlan)
    flags = FLAG_PINNED if entry.pinned else 0
    src = match(in_port=entry.port_no, eth_src=entry.mac, vlan_vid=vid)
    return [
        FlowSpec(
            TABLE_LOCAL_SRC,
            100,
            src,
            cookie(KIND_SRC, flags),
            write_metadata=entry.uplink,
            goto=TABLE_FORWARD,
        ),
        FlowSpec(
            TABLE_LOCAL_SRC,
            110,
            match(in_port=entry.port_no, eth_src=entry.mac, vlan_vid=vid, eth_type=0x0806),
            cookie(KIND_ARP_SNOOP, flags),
            actions=(("controller", SNOOP_MAX_LEN),),
            write_metadata=entry.uplink,
            goto=TABLE_FORWARD,
        ),
        _controller(
            TABLE_UPLINK_IN,
            210,
            match(eth_src=entry.mac, vlan_vid=vid, eth_type=0x0806),
            KIND_MIGRATION,
            SNOOP_MAX_LEN,
        ),
        FlowSpec(
            TABLE_UPLINK_IN,
            200,
            match(eth_src=entry.mac, vlan_vid=vid),
            cookie(KIND_REFLECTION),
        ),
        FlowSpec(
            TABLE_FORWARD,
            100,
            match(eth_dst=entry.mac, vlan_vid=vid),
            cookie(KIND_DST),
            actions=_deliver(bridge, entry.port_no, entry.vlan),
        ),
    ]


def groups(bridge: BridgePlacement) -> list[GroupSpec]:
    """A fast-failover group per uplink and a flood group per VLAN.

    Fast failover: the uplink itself first, then the others in port order; uplinks held
    down for flapping, drained or path-dead are left out so the datapath cannot fall back
    onto them.
    """
    uplinks = [p.port_no for p in bridge.uplinks if not p.withdrawn]
    specs = []
    for port in bridge.uplinks:
        order = [port.port_no] + [p for p in uplinks if p != port.port_no]
        if port.withdrawn:
            order = order[1:]
        specs.append(GroupSpec(port.port_no, "ff", tuple((p, (("output", p),)) for p in order)))
    for vlan in vlans(bridge):
        members = [p for p in bridge.local_ports if p.vlan in (0, vlan)]
        if vlan == 0:
            members = [p for p in members if not p.vlan]
        specs.append(
            GroupSpec(
                FLOOD_GROUP_BASE + vlan,
                "all",
                tuple((None, _deliver(bridge, p.port_no, vlan)) for p in members),
            )
        )
    return specs


def meters(rate_pps: int, probe_pps: int = 0) -> list[MeterSpec]:
    """The packet-in meter, and the probe-reply meter when probing is on."""
    specs = [MeterSpec(METER_ID, rate_pps, rate_pps)]
    if probe_pps:
        specs.append(MeterSpec(PROBE_METER_ID, probe_pps, probe_pps))
    return specs


def desired_flows(bridge: BridgePlacement) -> dict[tuple, FlowSpec]:
    """Every flow the bridge should have, keyed like OpenFlow keys flows."""
    flows = base_flows(bridge)
    for entry in bridge.macs.values():
        flows += mac_flows(bridge, entry)
    return {f.key: f for f in flows}


def entries_from_flows(flows: Iterable[FlowSpec], ages: dict, now: float) -> list[MacEntry]:
    """Rebuild placement from our table-1 source flows (controller restart).

    `ages` maps a flow key to its duration in seconds, used for `since`.
    """
    entries = []
    for flow in flows:
        if flow.table != TABLE_LOCAL_SRC or cookie_kind(flow.cookie) != KIND_SRC:
            continue
        fields = dict(flow.match)
        try:
            vid = int(fields["vlan_vid"])
            entry = MacEntry(
                mac=str(fields["eth_src"]),
                vlan=vlan_of(vid),
                port_no=int(fields["in_port"]),
                uplink=int(flow.write_metadata or 0),
                since=now - float(ages.get(flow.key, 0.0)),
                pinned=bool(cookie_flags(flow.cookie) & FLAG_PINNED),
            )
        except (KeyError, TypeError, ValueError):
            continue
        entries.append(entry)
    return entries

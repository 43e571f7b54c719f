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
TABLE_LOCAL_MISS = 2  # unknown source on a local port: guard, learn (metered), forward
TABLE_UPLINK_IN = 3  # admission from the fabric: reflections, fabric-seen learning
TABLE_FORWARD = 4  # delivery to local MACs, floods, out to the pinned uplink
TABLE_FABRIC_SEEN = 5  # learned by the datapath: source MACs seen on the fabric lately
TABLE_IP_CLAIMS = 6  # learned by the datapath: IPv4 addresses fabric hosts ARPed from lately

# Cookies: 0x51b0 in the top 16 bits marks our flows; then an 8-bit kind and 8 flag bits.
COOKIE_MAGIC = 0x51B0 << 48
COOKIE_MAGIC_MASK = 0xFFFF << 48
COOKIE_KIND_MASK = COOKIE_MAGIC_MASK | (0xFF << 40)
# Flows the datapath learns itself (fabric-seen) carry another magic: the controller
# never reads them back at connect; they expire on their own, except a learned source's
# mark and echo guard, which it deletes (learned_while_learning).
COOKIE_LEARNED = 0x51B1 << 48
# ... except the learning-in-progress marks, which have a cookie of their own (kind
# KIND_PENDING under the learned magic): the controller asks for exactly those (OVS
# indexes rules by cookie, so the request costs the marks, not all of table 5) to learn
# any source whose learning copy never arrived (core/marks.py).
COOKIE_PENDING_MARK = COOKIE_LEARNED | (0x11 << 40)
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
KIND_GUARD = 0x0C  # a local frame whose source MAC the fabric showed lately (hijack/loop)
KIND_PORT_FULL = 0x0D  # a local port holding max_macs_per_port MACs: new sources dropped
KIND_PORT_SECURITY = 0x0E  # a source other than the port's attached MAC (OVSDB)
KIND_GUARD_ANNOUNCE = 0x0F  # an ARP/RARP from a guarded source: the controller decides
ETH_TYPE_RARP = 0x8035
KIND_PROBE = 0x10  # path probing (core/probe.py): replies punted, other probe frames dropped
KIND_PENDING = 0x11  # a source whose learning copy already went to the controller
FLAG_PINNED = 0x01
FLAG_SEND_FLOW_REM = 0x1  # OFPFF_SEND_FLOW_REM, kept here so the core stays free of Ryu


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
# number (which is also its fast-failover group id). From the fabric: META_FABRIC plus
# the uplink it came in on.
META_FABRIC = 1 << 32

# Groups: one fast-failover group per uplink (id = port number), one flood group of
# local ports per VLAN (id = FLOOD_GROUP_BASE + VLAN, 0 = untagged), one admission
# group per (uplink, VLAN) whose first live bucket decides if that uplink's broadcast
# is flooded (id = ADMIT_GROUP_BASE + port << 12 + VLAN).
FLOOD_GROUP_BASE = 0x10000
FLOOD_GROUP = FLOOD_GROUP_BASE
ADMIT_GROUP_BASE = 0x20000000
MAX_ADMIT_PORT = 0xFFFF

# Meters: one per local port for everything about that port's frames that reaches us
# (learning, guard reports, ARP snooping, and the migration check of its MACs' ARPs
# coming back from the fabric): a port flooding MACs or ARPs exhausts its own meter,
# not its neighbours', and the total is bounded by `packet_in_rate` per port.
METER_ID = 1  # the old shared meter (removed from switches on sync)
METER_LOCAL_PORT = 2  # the bridge's LOCAL port
METER_PORT_BASE = 0x100  # + port number for every other local port
MAX_METER_PORT = 0xFF00
# Probe replies have their own meter: a packet-in flood must not starve them (that
# would make uplinks look path-dead).
PROBE_METER_ID = 3

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
LINK_LOCAL_MULTICAST = ("01:80:c2:00:00:00", "ff:ff:ff:ff:ff:f0")
GROUP_BIT = ("01:00:00:00:00:00", "01:00:00:00:00:00")  # multicast/broadcast address
OFPVID_PRESENT = 0x1000
OFPVID_NONE = 0x0000
CONTROLLER_MAX_LEN = 0xFFFF  # OFPCML_NO_BUFFER: whole packet, nothing buffered
SNOOP_MAX_LEN = 128
OFPP_LOCAL_NO = 0xFFFFFFFE
LOCAL_SEEN_PRIORITY = 190  # datapath-learned drops in TABLE_UPLINK_IN (echo of a new MAC)
PENDING_PRIORITY = 50  # datapath-learned "learning in progress" marks in TABLE_FABRIC_SEEN
PENDING_HOLD = 2  # seconds one learning copy stands for a new source's later frames
PENDING_MIN_AGE = 0.5  # s: a mark this old whose copy has not arrived is taken as lost

Match = tuple[tuple[str, object], ...]
# ("output", port), ("group", id), ("controller", max_len), ("controller_meter", max_len,
# meter), ("resubmit", table), ("learn_fabric", hard_timeout), ("push_vlan", ethertype),
# ("set_vlan_vid", vid), ("pop_vlan", 0)
Action = tuple


@dataclass(frozen=True)
class Tuning:
    """Bridge-wide numbers the flows carry (see options.py for each)."""

    mac_idle_timeout: int = 300  # idle_timeout of a MAC's source flow (0 = never ages)
    guard_window: int = 5  # seconds a fabric-seen MAC may not be learned locally (0 = off)
    packet_in_rate: int = 200  # per local port, packets/s

    @property
    def claim_window(self) -> int:
        """Seconds a fabric host's ARP keeps its sender IP 'claimed' (as long as a VM's
        snooped IP lives, so a claim outlives the poisoning ARP it must stop)."""
        return self.mac_idle_timeout or 300


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
    idle_timeout: int = 0
    flags: int = 0

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


def port_meter(port_no: int) -> int:
    """The meter of one local port (everything that port makes the switch send us)."""
    if port_no == OFPP_LOCAL_NO or port_no >= MAX_METER_PORT:
        return METER_LOCAL_PORT
    return METER_PORT_BASE + port_no


def admit_group(uplink: int, vlan: int) -> int:
    return ADMIT_GROUP_BASE + (uplink << 12) + vlan


def _controller(
    table: int, priority: int, fields: Match, kind: int, max_len: int, meter: int
) -> FlowSpec:
    """A metered flow to the controller: the switch, not the controller, absorbs floods."""
    return FlowSpec(
        table, priority, fields, cookie(kind), actions=(("controller", max_len),), meter=meter
    )


def _local_miss_flows(bridge: BridgePlacement, port_no: int, tuning: Tuning) -> list[FlowSpec]:
    """Table 2 for one local port: guard hits, a full port, and learning + forwarding.

    An unknown source is forwarded by the datapath itself (through the active uplink's
    fast-failover group, where unicast replies come back and are flooded to local ports)
    while a copy goes to the controller, so a new VM works with the controller down;
    the per-port meter bounds both, so a MAC flood stays a trickle either way. The
    datapath also learns a short-lived drop of that source in the uplink-admission
    table: the echo of the new MAC's broadcast through the other switch is not taken
    for a fabric host (which would trip the guard against the VM itself).
    """
    meter = port_meter(port_no)
    # The learning copy also marks the source "in progress" (table 5, reg2=1) for
    # PENDING_HOLD s: its next frames are forwarded without another packet-in, so a
    # chatty new VM costs the controller one packet-in, not one per frame until its
    # flows are in (and with the controller down, one per PENDING_HOLD s).
    actions: tuple[Action, ...] = (
        ("learn_pending", PENDING_HOLD),
        ("controller", CONTROLLER_MAX_LEN),
    )
    if tuning.guard_window:
        actions = (("learn_local", tuning.guard_window),) + actions
    flows = [
        _controller(
            TABLE_LOCAL_MISS,
            200,
            match(in_port=port_no, reg0=1),
            KIND_GUARD,
            SNOOP_MAX_LEN,
            meter,
        )
    ]
    # A VM live-migrated here announces itself (GARP, or RARP from QEMU) while the
    # fabric may still remember it: such frames go to the controller whole (not
    # forwarded), which learns and re-injects a real announcement, refuses the rest.
    for eth_type in (0x0806, ETH_TYPE_RARP):
        flows.append(
            _controller(
                TABLE_LOCAL_MISS,
                210,
                match(in_port=port_no, reg0=1, eth_type=eth_type),
                KIND_GUARD_ANNOUNCE,
                CONTROLLER_MAX_LEN,
                meter,
            )
        )
    flows.append(
        FlowSpec(
            TABLE_LOCAL_MISS,
            120,
            match(in_port=port_no, reg2=1),
            cookie(KIND_PENDING),
            write_metadata=bridge.active_uplink or 0,
            goto=TABLE_FORWARD,
            meter=meter,
        )
    )
    if bridge.port_full(port_no):
        flows.append(
            _controller(
                TABLE_LOCAL_MISS, 150, match(in_port=port_no), KIND_PORT_FULL, SNOOP_MAX_LEN, meter
            )
        )
    attached = bridge.attached_macs.get(port_no)
    learn = match(in_port=port_no)
    if attached:  # port security: only the attached MAC is learned and forwarded
        learn = match(in_port=port_no, eth_src=attached)
        flows.append(
            _controller(
                TABLE_LOCAL_MISS,
                90,
                match(in_port=port_no),
                KIND_PORT_SECURITY,
                SNOOP_MAX_LEN,
                meter,
            )
        )
    flows.append(
        FlowSpec(
            TABLE_LOCAL_MISS,
            100,
            learn,
            cookie(KIND_SRC_MISS),
            actions=actions,
            write_metadata=bridge.active_uplink or 0,
            goto=TABLE_FORWARD,
            meter=meter,
        )
    )
    return flows


def base_flows(bridge: BridgePlacement, tuning: Tuning = Tuning()) -> list[FlowSpec]:
    """Flows that depend on ports, VLANs and the active uplink, not on individual MACs."""
    # Table 5 holds both the fabric-seen marks (reg0) and the learning-in-progress
    # marks (reg2): every source miss looks there.
    miss_actions: tuple[Action, ...] = (("resubmit", TABLE_FABRIC_SEEN),)
    flows = [
        FlowSpec(TABLE_CLASSIFY, 200, match(eth_dst=LINK_LOCAL_MULTICAST), cookie(KIND_DROP)),
        # No station sends from a group address (IEEE 802): such a frame is dropped and
        # counted here (n_packets), never learned, never forwarded, on any port.
        FlowSpec(TABLE_CLASSIFY, 200, match(eth_src=GROUP_BIT), cookie(KIND_DROP)),
        FlowSpec(TABLE_CLASSIFY, 0, (), cookie(KIND_CLASSIFY), goto=TABLE_LOCAL_SRC),
        FlowSpec(
            TABLE_LOCAL_SRC,
            0,
            (),
            cookie(KIND_SRC_MISS),
            actions=miss_actions,
            goto=TABLE_LOCAL_MISS,
        ),
        FlowSpec(TABLE_LOCAL_MISS, 0, (), cookie(KIND_DROP)),
        FlowSpec(TABLE_UPLINK_IN, 0, (), cookie(KIND_DROP)),
        FlowSpec(TABLE_FORWARD, 0, (), cookie(KIND_DROP)),
        FlowSpec(TABLE_FABRIC_SEEN, 0, (), cookie(KIND_DROP)),
        FlowSpec(TABLE_IP_CLAIMS, 0, (), cookie(KIND_DROP)),
    ]
    for port in bridge.local_ports:
        flows += _local_miss_flows(bridge, port.port_no, tuning)
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
    learn: tuple[Action, ...] = ()
    if tuning.guard_window:
        learn = (("learn_fabric", tuning.guard_window),)
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
                TABLE_UPLINK_IN,
                100,
                match(in_port=port_no),
                cookie(KIND_ADMIT),
                actions=learn,
                write_metadata=META_FABRIC | port_no,
                goto=TABLE_FORWARD,
            ),
            # ARP from a fabric host also records its sender IP as claimed, so a VM
            # ARPing with that address does not get it announced at its next move.
            FlowSpec(
                TABLE_UPLINK_IN,
                110,
                match(in_port=port_no, eth_type=0x0806),
                cookie(KIND_ADMIT),
                actions=learn + (("learn_claim", tuning.claim_window),),
                write_metadata=META_FABRIC | port_no,
                goto=TABLE_FORWARD,
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
            if port_no <= MAX_ADMIT_PORT:
                flows.append(
                    FlowSpec(
                        TABLE_FORWARD,
                        20,
                        match(metadata=META_FABRIC | port_no, vlan_vid=vlan_vid(vlan)),
                        cookie(KIND_FLOOD),
                        actions=(("group", admit_group(port_no, vlan)),),
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


def mac_flows(
    bridge: BridgePlacement, entry: MacEntry, tuning: Tuning = Tuning()
) -> list[FlowSpec]:
    """The five flows of one learned (MAC, VLAN).

    The source flow ages: idle for `mac_idle_timeout` seconds, the switch removes it and
    tells us (flow-removed), and the controller forgets the MAC. The timeout lives in
    the switch, so a restarted controller reads it back with the flow.
    """
    vid = vlan_vid(entry.vlan)
    flags = FLAG_PINNED if entry.pinned else 0
    src = match(in_port=entry.port_no, eth_src=entry.mac, vlan_vid=vid)
    aging = tuning.mac_idle_timeout
    return [
        FlowSpec(
            TABLE_LOCAL_SRC,
            100,
            src,
            cookie(KIND_SRC, flags),
            write_metadata=entry.uplink,
            goto=TABLE_FORWARD,
            idle_timeout=aging,
            flags=FLAG_SEND_FLOW_REM if aging else 0,
        ),
        FlowSpec(
            TABLE_LOCAL_SRC,
            110,
            match(in_port=entry.port_no, eth_src=entry.mac, vlan_vid=vid, eth_type=0x0806),
            cookie(KIND_ARP_SNOOP, flags),
            actions=(
                ("resubmit", TABLE_IP_CLAIMS),  # reg1=1 in the packet-in: claimed
                ("controller_meter", SNOOP_MAX_LEN, port_meter(entry.port_no)),
            ),
            write_metadata=entry.uplink,
            goto=TABLE_FORWARD,
        ),
        _controller(
            TABLE_UPLINK_IN,
            210,
            match(eth_src=entry.mac, vlan_vid=vid, eth_type=0x0806),
            KIND_MIGRATION,
            SNOOP_MAX_LEN,
            port_meter(entry.port_no),
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


def learned_while_learning(
    in_port: int, mac: str, vlan: int, tuning: Tuning = Tuning()
) -> list[FlowSpec]:
    """What the datapath learned for a new local source's first frame (table 2): its
    learning-in-progress mark (table 5) and its echo guard (table 3, when guard_window is
    on), as specs a strict delete matches exactly (OVS stores a learned VLAN as the 13
    bits of vlan_tci, the same as an OXM vlan_vid without mask).

    Once the controller has installed the MAC's own flows both are redundant (table 1
    takes its frames; its reflection drop takes the echo), and left to expire one by one
    they are a flow-table change apiece: OVS re-validates every datapath flow after each,
    so 10,000 marks expiring over 2 s kept its revalidator at 100 % CPU for those 2 s
    (and again at guard_window). Deleted together once a second they cost a pass or two.
    """
    vid = vlan_vid(vlan)
    flows = [
        FlowSpec(
            TABLE_FABRIC_SEEN,
            PENDING_PRIORITY,
            match(in_port=in_port, eth_src=mac, vlan_vid=vid),
            COOKIE_PENDING_MARK,
        )
    ]
    if tuning.guard_window:
        flows.append(
            FlowSpec(
                TABLE_UPLINK_IN,
                LOCAL_SEEN_PRIORITY,
                match(eth_src=mac, vlan_vid=vid),
                COOKIE_LEARNED,
            )
        )
    return flows


def admit_order(bridge: BridgePlacement) -> list[int]:
    """Uplinks in the order the datapath picks the broadcast-accepting one: the active
    uplink first, then the other usable ones by port number (as `repair` would)."""
    usable = [p.port_no for p in bridge.usable_uplinks]
    if bridge.active_uplink in usable:
        usable.remove(bridge.active_uplink)
        usable.insert(0, bridge.active_uplink)
    return usable


def groups(bridge: BridgePlacement) -> list[GroupSpec]:
    """Fast-failover group per uplink, flood group per VLAN, admission group per both.

    Fast failover: the uplink itself first, then the others in port order; uplinks held
    down for flapping, drained or path-dead are left out so the datapath cannot fall back
    onto them.
    Admission (uplink U, VLAN V): fast failover over `admit_order`, where only U's own
    bucket floods V; so fabric broadcast is taken from the first live uplink, and when
    it dies the next one takes over in the datapath, with or without the controller.
    """
    uplinks = [p.port_no for p in bridge.uplinks if not p.withdrawn]
    specs = []
    for port in bridge.uplinks:
        order = [port.port_no] + [p for p in uplinks if p != port.port_no]
        if port.withdrawn:
            order = order[1:]
        specs.append(GroupSpec(port.port_no, "ff", tuple((p, (("output", p),)) for p in order)))
    in_use = vlans(bridge)
    for vlan in in_use:
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
    order = admit_order(bridge)
    for port in bridge.uplinks:
        if port.port_no > MAX_ADMIT_PORT:
            continue
        for vlan in in_use:
            buckets = tuple(
                (w, (("group", FLOOD_GROUP_BASE + vlan),) if w == port.port_no else ())
                for w in order
            )
            specs.append(GroupSpec(admit_group(port.port_no, vlan), "ff", buckets))
    return specs


def meters(bridge: BridgePlacement, rate_pps: int, probe_pps: int = 0) -> list[MeterSpec]:
    """One meter per local port, each `rate_pps` packets/s; and the probe-reply meter
    when path probing is on."""
    ids = {port_meter(p.port_no) for p in bridge.local_ports}
    specs = [MeterSpec(m, rate_pps, rate_pps) for m in sorted(ids)]
    if probe_pps:
        specs.append(MeterSpec(PROBE_METER_ID, probe_pps, probe_pps))
    return specs


def desired_flows(bridge: BridgePlacement, tuning: Tuning = Tuning()) -> dict[tuple, FlowSpec]:
    """Every flow the bridge should have, keyed like OpenFlow keys flows."""
    flows = base_flows(bridge, tuning)
    for entry in bridge.macs.values():
        flows += mac_flows(bridge, entry, tuning)
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

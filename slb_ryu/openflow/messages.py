"""Translation between the pipeline's plain-data specs and Ryu OpenFlow 1.3 messages.

Messages are built with `datapath=None`-free Ryu parser classes bound to the caller's
datapath; parsing flow statistics back into `FlowSpec`s lets the app diff what the
switch has against what it wants (restart recovery, reconnect sync).
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from ryu.lib.pack_utils import msg_pack_into
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu.core.pipeline import (
    COOKIE_KIND_MASK,
    COOKIE_LEARNED,
    COOKIE_MAGIC,
    COOKIE_MAGIC_MASK,
    COOKIE_PENDING_MARK,
    KIND_SRC,
    LOCAL_SEEN_PRIORITY,
    PENDING_PRIORITY,
    TABLE_FABRIC_SEEN,
    TABLE_FORWARD,
    TABLE_IP_CLAIMS,
    TABLE_LOCAL_SRC,
    TABLE_UPLINK_IN,
    Action,
    FlowSpec,
    GroupSpec,
    MeterSpec,
    cookie,
)

NXAC2PT_METER_ID = 5  # Open vSwitch's controller2 'meter_id' property (not in Ryu 4.34)


def _controller2_prop_base() -> Any:
    """Ryu 4.34 keeps NXActionController2Prop local to its generator; reach it through
    the action class's closure so a meter_id property can be registered (else Ryu fails
    to parse our own flows back)."""
    init = parser.NXActionController2.__init__
    cells = dict(zip(init.__code__.co_freevars, init.__closure__ or (), strict=True))
    return cells["NXActionController2Prop"].cell_contents


_Prop = _controller2_prop_base()


@_Prop.register_type(NXAC2PT_METER_ID)
class _Controller2MeterId(_Prop):
    """`controller(meter_id=N)`: OVS meters only the copy sent to the controller, so an
    ARP-snoop copy can be rate-limited without rate-limiting the ARP itself."""

    _arg_name = "meter_id"

    @classmethod
    def parser_prop(cls, buf: bytes, length: int) -> tuple[int, int]:
        (meter_id,) = struct.unpack_from("!I", buf, 0)
        return meter_id, 4

    @classmethod
    def serialize_prop(cls, meter_id: int) -> bytearray:
        data = bytearray()
        msg_pack_into("!HHI", data, 0, NXAC2PT_METER_ID, 8, meter_id)
        return data


def _learn(kind: str, hard_timeout: int) -> parser.NXActionLearn:
    """A datapath-learned flow keyed by this frame's (eth_src, VLAN), for `hard_timeout`
    seconds after the last such frame.

    learn_fabric: into the fabric-seen table, setting reg0=1 (the local-miss table then
    refuses that source on a local port). learn_pending: also there, below it, keyed by
    in_port too, setting reg2=1 (learning in progress: forwarded, not punted again).
    learn_local: a drop in the uplink-admission
    table (the echo of a not-yet-learned local MAC's broadcast is not 'fabric').
    """
    specs = [
        parser.NXFlowSpecMatch(src=("eth_src", 0), dst=("eth_src", 0), n_bits=48),
        parser.NXFlowSpecMatch(src=("vlan_tci", 0), dst=("vlan_tci", 0), n_bits=13),
    ]
    if kind == "learn_fabric":
        table, priority = TABLE_FABRIC_SEEN, 100
        specs.append(parser.NXFlowSpecLoad(src=1, dst=("reg0", 0), n_bits=1))
    elif kind == "learn_pending":
        table, priority = TABLE_FABRIC_SEEN, PENDING_PRIORITY
        # NXM_OF_IN_PORT (16 bits): OVS cannot match part of the 32-bit OXM in_port, and
        # learning OXM_OF_IN_PORT[0..15] left the mark without any in_port at all.
        port = ("in_port_nxm", 0)
        specs.insert(0, parser.NXFlowSpecMatch(src=port, dst=port, n_bits=16))
        specs.append(parser.NXFlowSpecLoad(src=1, dst=("reg2", 0), n_bits=1))
    elif kind == "learn_claim":
        table, priority = TABLE_IP_CLAIMS, 100
        specs = [
            specs[1],
            parser.NXFlowSpecMatch(src=0x0806, dst=("eth_type", 0), n_bits=16),
            parser.NXFlowSpecMatch(src=("arp_spa", 0), dst=("arp_spa", 0), n_bits=32),
            parser.NXFlowSpecLoad(src=1, dst=("reg1", 0), n_bits=1),
        ]
    else:
        table, priority = TABLE_UPLINK_IN, LOCAL_SEEN_PRIORITY
    return parser.NXActionLearn(
        table_id=table,
        specs=specs,
        hard_timeout=hard_timeout,
        priority=priority,
        cookie=COOKIE_PENDING_MARK if kind == "learn_pending" else COOKIE_LEARNED,
    )


FLOW_COMMANDS = {
    "add": ofp.OFPFC_ADD,
    "modify": ofp.OFPFC_MODIFY_STRICT,
    "delete": ofp.OFPFC_DELETE_STRICT,
}
GROUP_COMMANDS = {"add": ofp.OFPGC_ADD, "modify": ofp.OFPGC_MODIFY, "delete": ofp.OFPGC_DELETE}
GROUP_TYPES = {"ff": ofp.OFPGT_FF, "all": ofp.OFPGT_ALL}


def _action(action: Action) -> parser.OFPAction:
    kind, arg = action[0], action[1]
    if kind == "output":
        return parser.OFPActionOutput(arg)
    if kind == "controller":
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, arg)
    if kind == "controller_meter":
        return parser.NXActionController2(max_len=arg, meter_id=action[2])
    if kind == "resubmit":
        return parser.NXActionResubmitTable(table_id=arg)
    if kind in ("learn_fabric", "learn_local", "learn_claim", "learn_pending"):
        return _learn(kind, arg)
    if kind == "group":
        return parser.OFPActionGroup(arg)
    if kind == "push_vlan":
        return parser.OFPActionPushVlan(arg)
    if kind == "set_vlan_vid":
        return parser.OFPActionSetField(vlan_vid=arg)
    if kind == "pop_vlan":
        return parser.OFPActionPopVlan()
    raise ValueError(f"unknown action {kind}")


def flow_mod(datapath: Any, spec: FlowSpec, command: str = "add") -> parser.OFPFlowMod:
    """A flow-mod for `spec`; delete matches strictly on table, priority and match."""
    instructions = []
    if command != "delete":
        if spec.meter is not None:
            instructions.append(parser.OFPInstructionMeter(spec.meter, ofp.OFPIT_METER))
        if spec.actions:
            instructions.append(
                parser.OFPInstructionActions(
                    ofp.OFPIT_APPLY_ACTIONS, [_action(a) for a in spec.actions]
                )
            )
        if spec.write_metadata is not None:
            instructions.append(
                parser.OFPInstructionWriteMetadata(spec.write_metadata, 0xFFFFFFFFFFFFFFFF)
            )
        if spec.goto is not None:
            instructions.append(parser.OFPInstructionGotoTable(spec.goto))
    return parser.OFPFlowMod(
        datapath,
        cookie=spec.cookie,
        cookie_mask=COOKIE_MAGIC_MASK if command == "delete" else 0,
        table_id=spec.table,
        command=FLOW_COMMANDS[command],
        priority=spec.priority,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**dict(spec.match)),
        instructions=instructions,
        idle_timeout=spec.idle_timeout,
        flags=spec.flags,
    )


def group_mod(datapath: Any, spec: GroupSpec, command: str = "add") -> parser.OFPGroupMod:
    buckets = []
    for watch_port, actions in spec.buckets:
        buckets.append(
            parser.OFPBucket(
                watch_port=ofp.OFPP_ANY if watch_port is None else watch_port,
                actions=[_action(a) for a in actions],
            )
        )
    return parser.OFPGroupMod(
        datapath, GROUP_COMMANDS[command], GROUP_TYPES[spec.type], spec.group_id, buckets
    )


def meter_mod(datapath: Any, spec: MeterSpec, command: str = "add") -> parser.OFPMeterMod:
    commands = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY, "delete": ofp.OFPMC_DELETE}
    band = parser.OFPMeterBandDrop(rate=spec.rate_pps, burst_size=spec.burst)
    return parser.OFPMeterMod(
        datapath,
        command=commands[command],
        flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS,
        meter_id=spec.meter_id,
        bands=[band],
    )


def spec_from_meter_config(stat: Any) -> MeterSpec | None:
    drops = [b for b in stat.bands if isinstance(b, parser.OFPMeterBandDrop)]
    if not drops:
        return None
    return MeterSpec(stat.meter_id, drops[0].rate, drops[0].burst_size)


# Flow-stats requests select by cookie; Ryu's defaults fill in the rest: all tables, any
# out_port and out_group, an empty match.


def our_flows_request(datapath: Any) -> parser.OFPFlowStatsRequest:
    """Flow statistics of every flow carrying our cookie, in all tables."""
    return parser.OFPFlowStatsRequest(datapath, cookie=COOKIE_MAGIC, cookie_mask=COOKIE_MAGIC_MASK)


def kind_flows_request(
    datapath: Any, kind: int, shard: int = 0, bits: int = 0
) -> parser.OFPFlowStatsRequest:
    """Flow statistics of our flows of one kind (any flags), e.g. the per-MAC counters.

    With `bits`, only the per-MAC flows (source: table 1 by eth_src, destination: table 4
    by eth_dst) whose MAC ends in `shard` in its low `bits` bits: OVS selects them with a
    masked match, so a poll can be asked for in pieces (openflow/stats.py)."""
    if not bits:
        return parser.OFPFlowStatsRequest(
            datapath, cookie=cookie(kind), cookie_mask=COOKIE_KIND_MASK
        )
    field, table = ("eth_src", TABLE_LOCAL_SRC) if kind == KIND_SRC else ("eth_dst", TABLE_FORWARD)
    value = f"00:00:00:00:00:{shard:02x}"
    mask = f"00:00:00:00:00:{(1 << bits) - 1:02x}"
    return parser.OFPFlowStatsRequest(
        datapath,
        table_id=table,  # OVS scans the rules of that table only (a masked cookie has no index)
        cookie=cookie(kind),
        cookie_mask=COOKIE_KIND_MASK,
        match=parser.OFPMatch(**{field: (value, mask)}),
    )


def marks_request(datapath: Any) -> parser.OFPFlowStatsRequest:
    """Flow statistics of the learning-in-progress marks only (openflow/marks.py): their
    own cookie with a full mask, which OVS looks up through its cookie index."""
    return parser.OFPFlowStatsRequest(
        datapath,
        table_id=TABLE_FABRIC_SEEN,
        cookie=COOKIE_PENDING_MARK,
        cookie_mask=0xFFFFFFFFFFFFFFFF,
    )


def packet_out(datapath: Any, in_port: int, out_port: int, data: bytes) -> parser.OFPPacketOut:
    """Send `data` as if it entered `in_port`; OFPP_TABLE re-runs the pipeline."""
    return parser.OFPPacketOut(
        datapath,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=in_port,
        actions=[parser.OFPActionOutput(out_port)],
        data=data,
    )


# ---- flow-mods packed directly ------------------------------------------------------
# Learning a MAC installs five flows; Ryu's message objects cost ~60 us each to build and
# serialise, a quarter of the learning CPU at scale. `flow_mod_bytes` packs the same
# bytes (a unit test compares it with Ryu's serialiser for every flow of the pipeline).

_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")  # header + ofp_flow_mod up to the match
_OXM_FIELDS = {  # name: (OXM field number, value size)
    "in_port": (ofp.OFPXMT_OFB_IN_PORT, 4),
    "metadata": (ofp.OFPXMT_OFB_METADATA, 8),
    "eth_dst": (ofp.OFPXMT_OFB_ETH_DST, 6),
    "eth_src": (ofp.OFPXMT_OFB_ETH_SRC, 6),
    "eth_type": (ofp.OFPXMT_OFB_ETH_TYPE, 2),
    "vlan_vid": (ofp.OFPXMT_OFB_VLAN_VID, 2),
    "arp_op": (ofp.OFPXMT_OFB_ARP_OP, 2),
}


class Unpackable(ValueError):
    """A flow this packer does not cover (a field, action or flag it does not know): the
    caller sends it through Ryu's serialiser instead (`flow_mod`)."""


def _oxm_value(name: str, value: Any, size: int) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.replace(":", ""))
    return int(value).to_bytes(size, "big")


def _oxm(name: str, value: Any) -> tuple[int, bytes]:
    if name not in _OXM_FIELDS:
        raise Unpackable(f"match field {name}")
    field, size = _OXM_FIELDS[name]
    if isinstance(value, tuple):
        data = _oxm_value(name, value[0], size) + _oxm_value(name, value[1], size)
        head = (ofp.OFPXMC_OPENFLOW_BASIC << 16) | (field << 9) | (1 << 8) | 2 * size
    else:
        data = _oxm_value(name, value, size)
        head = (ofp.OFPXMC_OPENFLOW_BASIC << 16) | (field << 9) | size
    return field, struct.pack("!I", head) + data


def _match_bytes(fields: tuple[tuple[str, object], ...]) -> bytes:
    oxms = sorted((_oxm(name, value) for name, value in fields), key=lambda f: f[0])
    body = b"".join(data for _, data in oxms)
    length = 4 + len(body)
    return struct.pack("!HH", ofp.OFPMT_OXM, length) + body + b"\x00" * (-length % 8)


@functools.lru_cache(maxsize=1024)
def _nx_action_bytes(action: Action) -> bytes:
    """Nicira actions on per-MAC flows (the ARP snoop's `resubmit` and metered
    `controller`): Ryu's own encoding, made once per distinct action and reused."""
    buf = bytearray()
    _action(action).serialize(buf, 0)
    return bytes(buf)


def _action_bytes(action: Action) -> bytes:
    kind, arg = action[0], action[1]
    if kind in ("resubmit", "controller_meter"):
        return _nx_action_bytes(action)
    if kind == "output":
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, arg, ofp.OFPCML_MAX)
    if kind == "controller":
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, ofp.OFPP_CONTROLLER, arg)
    if kind == "group":
        return struct.pack("!HHI", ofp.OFPAT_GROUP, 8, arg)
    if kind == "push_vlan":
        return struct.pack("!HHH2x", ofp.OFPAT_PUSH_VLAN, 8, arg)
    if kind == "pop_vlan":
        return struct.pack("!HH4x", ofp.OFPAT_POP_VLAN, 8)
    if kind == "set_vlan_vid":
        _, oxm = _oxm("vlan_vid", arg)
        return struct.pack("!HH", ofp.OFPAT_SET_FIELD, 16) + oxm + b"\x00" * 6
    raise Unpackable(f"action {kind}")


def _instructions_bytes(spec: FlowSpec) -> bytes:
    out = b""
    if spec.meter is not None:
        out += struct.pack("!HHI", ofp.OFPIT_METER, 8, spec.meter)
    if spec.actions:
        actions = b"".join(_action_bytes(a) for a in spec.actions)
        out += struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions
    if spec.write_metadata is not None:
        mask = 0xFFFFFFFFFFFFFFFF
        out += struct.pack("!HH4xQQ", ofp.OFPIT_WRITE_METADATA, 24, spec.write_metadata, mask)
    if spec.goto is not None:
        out += struct.pack("!HHB3x", ofp.OFPIT_GOTO_TABLE, 8, spec.goto)
    return out


def flow_mod_bytes(spec: FlowSpec, command: str = "add", xid: int = 0) -> bytes:
    """The wire form of `flow_mod(dp, spec, command)` with `xid`, packed directly;
    `Unpackable` for what only `flow_mod` (Ryu's serialiser) knows."""
    body = _match_bytes(spec.match)
    if command != "delete":
        body += _instructions_bytes(spec)
    length = _FLOW_MOD.size + len(body)
    head = _FLOW_MOD.pack(
        ofp.OFP_VERSION,
        ofp.OFPT_FLOW_MOD,
        length,
        xid,
        spec.cookie,
        COOKIE_MAGIC_MASK if command == "delete" else 0,
        spec.table,
        FLOW_COMMANDS[command],
        spec.idle_timeout,
        0,  # hard_timeout
        spec.priority,
        ofp.OFP_NO_BUFFER,
        ofp.OFPP_ANY,
        ofp.OFPG_ANY,
        spec.flags,
    )
    return head + body


_PACKET_OUT = struct.Struct("!BBHIIIH6xHHIH6x")  # header, packet-out, one output action


def packet_out_bytes(in_port: int, out_port: int, data: bytes, xid: int = 0) -> bytes:
    """The wire form of `packet_out(dp, in_port, out_port, data)`, packed directly.

    Learning packets go out by the thousand after a failover; Ryu's message objects cost
    tens of microseconds each for a message that is a fixed header and the frame.
    """
    length = _PACKET_OUT.size + len(data)
    head = _PACKET_OUT.pack(
        ofp.OFP_VERSION,
        ofp.OFPT_PACKET_OUT,
        length,
        xid,
        ofp.OFP_NO_BUFFER,
        in_port,
        16,  # actions_len: one ofp_action_output
        ofp.OFPAT_OUTPUT,
        16,
        out_port,
        ofp.OFPCML_MAX,
    )
    return head + data


def _normalise(field: str, value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_normalise(field, v) for v in value)
    if isinstance(value, str):
        return value.lower()
    return value


def _action_spec(action: Any) -> Action | None:
    if isinstance(action, parser.OFPActionOutput):
        if action.port == ofp.OFPP_CONTROLLER:
            return ("controller", action.max_len)
        return ("output", action.port)
    if isinstance(action, parser.OFPActionGroup):
        return ("group", action.group_id)
    if isinstance(action, parser.OFPActionPushVlan):
        return ("push_vlan", action.ethertype)
    if isinstance(action, parser.OFPActionPopVlan):
        return ("pop_vlan", 0)
    if isinstance(action, parser.OFPActionSetField) and action.key == "vlan_vid":
        return ("set_vlan_vid", action.value)
    if isinstance(action, parser.NXActionController2):
        return ("controller_meter", getattr(action, "max_len", 0), getattr(action, "meter_id", 0))
    if isinstance(action, parser.NXActionResubmitTable):
        return ("resubmit", action.table_id)
    if isinstance(action, parser.NXActionLearn) and action.table_id == TABLE_FABRIC_SEEN:
        kind = "learn_pending" if action.priority == PENDING_PRIORITY else "learn_fabric"
        return (kind, action.hard_timeout)
    if isinstance(action, parser.NXActionLearn) and action.table_id == TABLE_IP_CLAIMS:
        return ("learn_claim", action.hard_timeout)
    if isinstance(action, parser.NXActionLearn) and action.table_id == TABLE_UPLINK_IN:
        return ("learn_local", action.hard_timeout)
    return None


def spec_from_stats(stat: Any) -> FlowSpec:
    """A `FlowSpec` from one OFPFlowStats entry (unknown actions are kept out)."""
    actions: list[Action] = []
    write_metadata = None
    goto = None
    meter = None
    for inst in stat.instructions:
        if isinstance(inst, parser.OFPInstructionActions):
            actions += [a for a in map(_action_spec, inst.actions) if a is not None]
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            write_metadata = inst.metadata
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = inst.table_id
        elif isinstance(inst, parser.OFPInstructionMeter):
            meter = inst.meter_id
    match = tuple(sorted((k, _normalise(k, v)) for k, v in stat.match.items()))
    return FlowSpec(
        table=stat.table_id,
        priority=stat.priority,
        match=match,
        cookie=stat.cookie,
        actions=tuple(actions),
        write_metadata=write_metadata,
        goto=goto,
        meter=meter,
        idle_timeout=stat.idle_timeout,
        flags=stat.flags,
    )


def spec_from_group_desc(stat: Any) -> GroupSpec:
    types = {v: k for k, v in GROUP_TYPES.items()}
    buckets = []
    for bucket in stat.buckets:
        watch = None if bucket.watch_port == ofp.OFPP_ANY else bucket.watch_port
        acts = tuple(a for a in map(_action_spec, bucket.actions) if a is not None)
        buckets.append((watch, acts))
    return GroupSpec(stat.group_id, types.get(stat.type, str(stat.type)), tuple(buckets))


FLOW_REMOVED_REASONS = {
    ofp.OFPRR_IDLE_TIMEOUT: "idle",
    ofp.OFPRR_HARD_TIMEOUT: "hard",
    ofp.OFPRR_DELETE: "delete",
    ofp.OFPRR_GROUP_DELETE: "group-delete",
}


def removed_from_msg(msg: Any) -> tuple[FlowSpec, str]:
    """The (table, priority, match, cookie) of a flow-removed message and why it went."""
    match = tuple(sorted((k, _normalise(k, v)) for k, v in msg.match.items()))
    spec = FlowSpec(table=msg.table_id, priority=msg.priority, match=match, cookie=msg.cookie)
    return spec, FLOW_REMOVED_REASONS.get(msg.reason, str(msg.reason))

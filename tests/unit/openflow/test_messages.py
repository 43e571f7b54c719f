"""Specs to Ryu messages and back: what the app sends is what recovery reads."""

import pytest
from ryu.ofproto import ofproto_protocol
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu.core import pipeline
from slb_ryu.core.placement import OFPP_LOCAL, BridgePlacement, Port
from slb_ryu.openflow import messages as ofmsgs


def datapath():
    return ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)


def bridge():
    bp = BridgePlacement(1, ["up*"])
    bp.set_ports([Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm")], 0.0)
    bp.learn("02:00:00:00:01:01", 0, 3, 1.0)
    bp.learn("02:00:00:00:01:02", 10, 3, 1.0)
    bp.macs[("02:00:00:00:01:02", 10)].pinned = True
    return bp


def parse_instructions(buf, offset):
    out = []
    while offset < len(buf):
        inst = parser.OFPInstruction.parser(buf, offset)
        out.append(inst)
        offset += inst.len
    return out


def as_stats(mod):
    """What a switch would report for a flow-mod: serialise, then parse match and
    instructions back from the bytes (Nicira actions included)."""
    mod.serialize()
    match = parser.OFPMatch.parser(mod.buf, ofp.OFP_HEADER_SIZE + 40)
    offset = ofp.OFP_HEADER_SIZE + 40 + (match.length + 7) // 8 * 8
    return parser.OFPFlowStats(
        table_id=mod.table_id,
        duration_sec=3,
        duration_nsec=0,
        priority=mod.priority,
        idle_timeout=mod.idle_timeout,
        hard_timeout=0,
        flags=mod.flags,
        cookie=mod.cookie,
        packet_count=0,
        byte_count=0,
        match=match,
        instructions=parse_instructions(bytes(mod.buf), offset),
    )


def test_every_desired_flow_roundtrips_through_openflow():
    dp = datapath()
    desired = pipeline.desired_flows(bridge()).values()
    kinds = {a[0] for spec in desired for a in spec.actions}
    assert {"learn_fabric", "learn_local", "learn_claim", "resubmit", "controller_meter"} <= kinds
    for spec in desired:
        back = ofmsgs.spec_from_stats(as_stats(ofmsgs.flow_mod(dp, spec)))
        assert back == spec


def test_metered_controller_action_carries_its_meter_on_the_wire():
    """Ryu 4.34 has no meter_id property for controller2: ours must encode as OVS's
    controller(meter_id=N) (property type 5, 32-bit id) and parse back."""
    action = ofmsgs._action(("controller_meter", 128, 0x103))
    buf = bytearray()
    action.serialize(buf, 0)
    assert bytes(buf).find(bytes.fromhex("000500080000" + "0103")) > 0
    back = parser.OFPAction.parser(bytes(buf), 0)
    assert (back.max_len, back.meter_id) == (128, 0x103)


def test_flow_removed_gives_the_flow_and_the_reason():
    spec = next(
        f
        for f in pipeline.desired_flows(bridge()).values()
        if pipeline.cookie_kind(f.cookie) == pipeline.KIND_SRC
    )
    msg = parser.OFPFlowRemoved(
        datapath(),
        cookie=spec.cookie,
        priority=spec.priority,
        reason=ofp.OFPRR_IDLE_TIMEOUT,
        table_id=spec.table,
        match=parser.OFPMatch(**dict(spec.match)),
    )
    removed, reason = ofmsgs.removed_from_msg(msg)
    assert reason == "idle" and removed.key == spec.key and removed.cookie == spec.cookie


def test_delete_is_strict_on_our_cookie_and_has_no_instructions():
    spec = next(iter(pipeline.desired_flows(bridge()).values()))
    mod = ofmsgs.flow_mod(datapath(), spec, "delete")
    assert mod.command == ofp.OFPFC_DELETE_STRICT and mod.instructions == []
    assert mod.cookie_mask == pipeline.COOKIE_MAGIC_MASK


def test_groups_roundtrip():
    dp = datapath()
    for spec in pipeline.groups(bridge()):
        mod = ofmsgs.group_mod(dp, spec)
        mod.serialize()
        desc = parser.OFPGroupDescStats(mod.type, mod.group_id, mod.buckets)
        assert ofmsgs.spec_from_group_desc(desc) == spec


def test_packet_out_and_stats_request():
    dp = datapath()
    out = ofmsgs.packet_out(dp, 3, ofp.OFPP_TABLE, b"\x00" * 60)
    out.serialize()
    assert out.in_port == 3 and out.actions[0].port == ofp.OFPP_TABLE
    req = ofmsgs.our_flows_request(dp)
    assert req.cookie == pipeline.COOKIE_MAGIC and req.table_id == ofp.OFPTT_ALL


def test_packed_packet_out_equals_ryu_serialiser():
    from ryu.ofproto import ofproto_v1_3 as ofp

    frame = bytes(range(60))
    for in_port, out_port in ((ofp.OFPP_CONTROLLER, 2), (3, ofp.OFPP_TABLE), (1, 65000)):
        msg = ofmsgs.packet_out(datapath(), in_port, out_port, frame)
        msg.set_xid(0x1234)
        msg.serialize()
        assert ofmsgs.packet_out_bytes(in_port, out_port, frame, xid=0x1234) == bytes(msg.buf)


def _every_flow():
    bp = bridge()
    bp.set_ports(
        [
            Port(OFPP_LOCAL, "br"),
            Port(1, "up1"),
            Port(2, "up2"),
            Port(3, "vm"),
            Port(4, "acc", vlan=30),
        ],
        0.0,
    )
    bp.learn("02:00:00:00:01:03", 30, 4, 1.0)
    bp.probing = True  # path probing's flows too (arp_op matches)
    return list(pipeline.desired_flows(bp).values())


def test_packed_flow_mods_equal_ryu_serialiser_for_every_pipeline_flow():
    flows = _every_flow()
    kinds = {pipeline.cookie_kind(f.cookie) for f in flows}
    assert len(kinds) >= 10  # every kind of flow the pipeline has, incl. access ports
    assert any(isinstance(v, tuple) for f in flows for _, v in f.match)  # masked fields
    packed_kinds = set()
    for spec in flows:
        for command in ("add", "modify", "delete"):
            msg = ofmsgs.flow_mod(datapath(), spec, command)
            msg.set_xid(77)
            msg.serialize()
            try:
                packed = ofmsgs.flow_mod_bytes(spec, command, xid=77)
            except ofmsgs.Unpackable:
                continue  # sent through Ryu's serialiser (app.send), never wrong bytes
            assert packed == bytes(msg.buf), (spec, command)
            packed_kinds.add(pipeline.cookie_kind(spec.cookie))
    # The per-MAC flows, thousands of them at scale, take the packed path.
    per_mac = {pipeline.KIND_SRC, pipeline.KIND_DST, pipeline.KIND_REFLECTION}
    per_mac |= {pipeline.KIND_ARP_SNOOP, pipeline.KIND_MIGRATION}  # Nicira actions too
    assert per_mac <= packed_kinds


def test_a_flow_the_packer_does_not_cover_is_unpackable_not_wrong():
    """The app falls back to Ryu's serialiser for these (app.send)."""
    odd_match = pipeline.FlowSpec(1, 5, pipeline.match(ip_proto=6), pipeline.cookie(1))
    odd_action = pipeline.FlowSpec(1, 5, (), pipeline.cookie(1), actions=(("set_queue", 1),))
    for spec in (odd_match, odd_action):
        with pytest.raises(ofmsgs.Unpackable):
            ofmsgs.flow_mod_bytes(spec, "add", 1)

"""The pipeline's encodings: what forwarding behaviour cannot show.

Where frames go is proved in test_pipeline_behaviour.py (FakeOFTable); here: cookies,
the vlan_vid encoding, the per-MAC flow count and the restart-recovery round trip.
"""

from slb_ryu.core import pipeline as pl
from slb_ryu.core.placement import OFPP_LOCAL, BridgePlacement, MacEntry, Port


def bridge():
    bp = BridgePlacement(1, ["up*"])
    bp.set_ports(
        [Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm1"), Port(4, "vm2")],
        0.0,
    )
    return bp


def by_table(flows):
    out = {}
    for f in flows:
        out.setdefault(f.table, []).append(f)
    return out


def test_cookies_mark_our_flows_and_carry_kind_and_flags():
    c = pl.cookie(pl.KIND_SRC, pl.FLAG_PINNED)
    assert pl.cookie_kind(c) == pl.KIND_SRC
    assert pl.cookie_flags(c) & pl.FLAG_PINNED
    assert pl.cookie_kind(0) is None
    assert pl.cookie_kind(0x1234 << 48) is None


def test_vlan_vid_encodes_untagged_as_none_and_tags_with_present_bit():
    assert pl.vlan_vid(0) == pl.OFPVID_NONE
    assert pl.vlan_vid(10) == pl.OFPVID_PRESENT | 10
    for vlan in (0, 1, 10, 4094):
        assert pl.vlan_of(pl.vlan_vid(vlan)) == vlan
    assert pl.vlan_of(10) == 0  # no OFPVID_PRESENT bit: untagged


def test_base_flows_classify_uplinks_and_never_send_fabric_frames_to_uplinks():
    bp = bridge()
    flows = pl.base_flows(bp)
    tables = by_table(flows)
    classify = {dict(f.match).get("in_port"): f.goto for f in tables[0] if f.priority == 100}
    assert classify == {1: pl.TABLE_UPLINK_IN, 2: pl.TABLE_UPLINK_IN}
    # Everything reaching the forward table from the fabric carries META_FABRIC, and no
    # flow matching that metadata outputs to an uplink, its group, or a group that does.
    admitted = [f for f in tables[pl.TABLE_UPLINK_IN] if f.write_metadata is not None]
    assert {f.write_metadata for f in admitted} == {pl.META_FABRIC | 1, pl.META_FABRIC | 2}
    groups = {g.group_id: g for g in pl.groups(bp)}

    def outputs(actions, seen=()):
        for kind, arg, *_ in actions:
            if kind == "output":
                yield arg
            elif kind == "group" and arg not in seen:
                for _, bucket in groups[arg].buckets:
                    yield from outputs(bucket, seen + (arg,))

    fabric = [
        f
        for f in tables[pl.TABLE_FORWARD]
        if dict(f.match).get("metadata", 0) & pl.META_FABRIC or "metadata" not in dict(f.match)
    ]
    assert fabric
    for f in fabric:
        assert not set(outputs(f.actions)) & {1, 2}, f


def test_fabric_broadcast_is_taken_from_the_first_live_uplink_in_the_datapath():
    """Admission group (U, V): fast failover over [active, others]; only U's own bucket
    floods. So with the active uplink dead, the next one's broadcast is flooded with no
    controller involved, and never two uplinks' at once."""
    bp = bridge()
    groups = {g.group_id: g for g in pl.groups(bp)}
    for uplink in (1, 2):
        g = groups[pl.admit_group(uplink, 0)]
        assert g.type == "ff" and [w for w, _ in g.buckets] == [1, 2]
        flooding = [w for w, actions in g.buckets if actions]
        assert flooding == [uplink]
        assert dict(g.buckets)[uplink] == (("group", pl.FLOOD_GROUP),)
    bp.active_uplink = 2
    assert [w for w, _ in pl.groups(bp)[-1].buckets] == [2, 1]
    bp.update_port(Port(1, "up1", live=False), 1.0)
    bp.update_port(Port(2, "up2", live=False), 1.0)
    assert all(g.buckets == () for g in pl.groups(bp) if g.group_id >= pl.ADMIT_GROUP_BASE)


def test_unknown_local_sources_are_guarded_metered_learned_and_forwarded():
    bp = bridge()
    flows = [f for f in pl.base_flows(bp) if f.table == pl.TABLE_LOCAL_MISS]
    by_port = {}
    for f in flows:
        by_port.setdefault(dict(f.match).get("in_port"), []).append(f)
    assert set(by_port) == {None, 3, 4, OFPP_LOCAL}
    *announce, guard, pending, learn = sorted(by_port[3], key=lambda f: (-f.priority, f.match))
    # Learning in progress (reg2, set by the learning copy's learn_pending): forwarded
    # like the learning flow, metered the same, but no second packet-in.
    assert dict(pending.match) == {"in_port": 3, "reg2": 1} and pending.actions == ()
    assert pending.meter == pl.port_meter(3) and pending.goto == pl.TABLE_FORWARD
    assert pending.write_metadata == bp.active_uplink
    assert pl.cookie_kind(pending.cookie) == pl.KIND_PENDING
    assert guard.priority > pending.priority > learn.priority  # never past the guard
    assert {dict(f.match)["eth_type"] for f in announce} == {0x0806, pl.ETH_TYPE_RARP}
    assert all(pl.cookie_kind(f.cookie) == pl.KIND_GUARD_ANNOUNCE for f in announce)
    assert dict(guard.match) == {"in_port": 3, "reg0": 1} and guard.meter == pl.port_meter(3)
    assert pl.cookie_kind(guard.cookie) == pl.KIND_GUARD
    assert learn.meter == pl.port_meter(3) and learn.goto == pl.TABLE_FORWARD
    assert learn.write_metadata == bp.active_uplink
    assert ("learn_local", 5) in learn.actions and (
        "controller",
        pl.CONTROLLER_MAX_LEN,
    ) in learn.actions
    assert ("learn_pending", pl.PENDING_HOLD) in learn.actions
    assert pl.port_meter(OFPP_LOCAL) == pl.METER_LOCAL_PORT
    miss = [f for f in pl.base_flows(bp) if f.table == pl.TABLE_LOCAL_SRC][0]
    assert (
        miss.actions == (("resubmit", pl.TABLE_FABRIC_SEEN),) and miss.goto == pl.TABLE_LOCAL_MISS
    )
    admit = [f for f in pl.base_flows(bp) if f.table == pl.TABLE_UPLINK_IN and f.priority == 100]
    assert all(f.actions == (("learn_fabric", 5),) for f in admit) and len(admit) == 2
    arp = [f for f in pl.base_flows(bp) if f.table == pl.TABLE_UPLINK_IN and f.priority == 110]
    assert all(f.actions == (("learn_fabric", 5), ("learn_claim", 300)) for f in arp)
    off = pl.base_flows(bp, pl.Tuning(guard_window=0))
    assert not [a for f in off for a in f.actions if a[0] in ("learn_fabric", "learn_local")]
    # Learning-in-progress marks live in table 5 too: the miss still looks there.
    assert [f.actions for f in off if f.table == pl.TABLE_LOCAL_SRC and f.priority == 0] == [
        (("resubmit", pl.TABLE_FABRIC_SEEN),)
    ]


def test_a_full_port_drops_new_sources_instead_of_forwarding_them():
    bp = bridge()
    bp.max_macs_per_port = 1
    bp.learn("00:00:00:00:00:01", 0, 3, 1.0)
    full = [f for f in pl.base_flows(bp) if pl.cookie_kind(f.cookie) == pl.KIND_PORT_FULL]
    assert [dict(f.match) for f in full] == [{"in_port": 3}]
    assert full[0].goto is None and full[0].meter == pl.port_meter(3)


def test_mac_flows_pin_count_reflect_and_deliver():
    entry = MacEntry("00:00:00:00:00:01", 0, 3, 2, since=0.0, pinned=True)
    flows = {(f.table, f.priority): f for f in pl.mac_flows(bridge(), entry)}
    src = flows[(pl.TABLE_LOCAL_SRC, 100)]
    assert dict(src.match) == {"in_port": 3, "eth_src": entry.mac, "vlan_vid": 0}
    assert src.write_metadata == 2 and src.goto == pl.TABLE_FORWARD
    assert pl.cookie_flags(src.cookie) & pl.FLAG_PINNED
    assert src.idle_timeout == 300 and src.flags == pl.FLAG_SEND_FLOW_REM
    snoop = flows[(pl.TABLE_LOCAL_SRC, 110)]
    assert dict(snoop.match)["eth_type"] == 0x0806
    # only the copy is metered (controller meter_id), never the VM's ARP itself
    assert snoop.actions == (
        ("resubmit", pl.TABLE_IP_CLAIMS),
        ("controller_meter", pl.SNOOP_MAX_LEN, pl.port_meter(3)),
    )
    assert snoop.meter is None and snoop.goto == pl.TABLE_FORWARD
    reflection = flows[(pl.TABLE_UPLINK_IN, 200)]
    assert reflection.actions == () and reflection.goto is None  # drop
    dst = flows[(pl.TABLE_FORWARD, 100)]
    assert dst.actions == (("output", 3),)


def test_tagged_vlan_match():
    entry = MacEntry("00:00:00:00:00:01", 10, 3, 1, since=0.0)
    src = pl.mac_flows(bridge(), entry)[0]
    assert dict(src.match)["vlan_vid"] == pl.OFPVID_PRESENT | 10


def test_groups_fast_failover_order_and_flood_of_local_ports():
    groups = {g.group_id: g for g in pl.groups(bridge())}
    assert groups[1].type == "ff"
    assert [b[0] for b in groups[1].buckets] == [1, 2]
    assert [b[0] for b in groups[2].buckets] == [2, 1]
    flood = groups[pl.FLOOD_GROUP]
    assert flood.type == "all"
    assert sorted(b[1][0][1] for b in flood.buckets) == [3, 4, OFPP_LOCAL]


def test_vm_broadcast_goes_to_locals_and_own_uplink_only():
    bp = bridge()
    flows = [
        f
        for f in pl.base_flows(bp)
        if f.table == pl.TABLE_FORWARD and dict(f.match).get("metadata") == 2
    ]
    bcast = [f for f in flows if "eth_dst" in dict(f.match)][0]
    assert bcast.actions == (("group", pl.FLOOD_GROUP), ("group", 2))
    unicast = [f for f in flows if "eth_dst" not in dict(f.match)][0]
    assert unicast.actions == (("group", 2),)
    assert bcast.priority > unicast.priority


def test_desired_flows_unique_keys_and_recovery_roundtrip():
    bp = bridge()
    bp.learn("00:00:00:00:00:01", 0, 3, 1.0)
    bp.learn("00:00:00:00:00:02", 7, 4, 1.0)
    bp.macs[("00:00:00:00:00:02", 7)].pinned = True
    desired = pl.desired_flows(bp)
    assert len(desired) == len(pl.base_flows(bp)) + 5 * 2
    ages = {k: 30.0 for k in desired}
    entries = pl.entries_from_flows(desired.values(), ages, now=100.0)
    got = {(e.mac, e.vlan): (e.port_no, e.uplink, e.pinned, e.since) for e in entries}
    want = {k: (e.port_no, e.uplink, e.pinned, 70.0) for k, e in bp.macs.items()}
    assert got == want

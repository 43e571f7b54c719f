"""The pipeline as plain data: which flows and groups a bridge state produces."""

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


def test_base_flows_classify_uplinks_and_never_send_fabric_frames_to_uplinks():
    bp = bridge()
    flows = pl.base_flows(bp)
    tables = by_table(flows)
    classify = {dict(f.match).get("in_port"): f.goto for f in tables[0] if f.priority == 100}
    assert classify == {1: pl.TABLE_UPLINK_IN, 2: pl.TABLE_UPLINK_IN}
    # Everything reaching the forward table from the fabric carries FABRIC_* metadata,
    # and no flow matching that metadata outputs to an uplink or its group.
    fabric = [
        f
        for f in tables[3]
        if dict(f.match).get("metadata") in (pl.META_FABRIC_ACTIVE, pl.META_FABRIC_STANDBY)
    ]
    for f in fabric:
        assert ("group", 1) not in f.actions and ("group", 2) not in f.actions
        assert not any(a == ("output", p) for a in f.actions for p in (1, 2))
    active = [f for f in tables[2] if dict(f.match).get("in_port") == 1]
    assert active and active[0].write_metadata == pl.META_FABRIC_ACTIVE


def test_no_active_flow_without_live_uplink():
    bp = bridge()
    bp.update_port(Port(1, "up1", live=False), 1.0)
    bp.update_port(Port(2, "up2", live=False), 1.0)
    assert not [f for f in pl.base_flows(bp) if f.table == 2 and f.priority == 100]


def test_mac_flows_pin_count_reflect_and_deliver():
    entry = MacEntry("00:00:00:00:00:01", 0, 3, 2, since=0.0, pinned=True)
    flows = {(f.table, f.priority): f for f in pl.mac_flows(bridge(), entry)}
    src = flows[(pl.TABLE_LOCAL_SRC, 100)]
    assert dict(src.match) == {"in_port": 3, "eth_src": entry.mac, "vlan_vid": 0}
    assert src.write_metadata == 2 and src.goto == pl.TABLE_FORWARD
    assert pl.cookie_flags(src.cookie) & pl.FLAG_PINNED
    snoop = flows[(pl.TABLE_LOCAL_SRC, 110)]
    assert dict(snoop.match)["eth_type"] == 0x0806
    assert snoop.actions[0][0] == "controller"
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
    flows = [f for f in pl.base_flows(bp) if f.table == 3 and dict(f.match).get("metadata") == 2]
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


def vlan_bridge():
    bp = BridgePlacement(1, ["up*"])
    ports = [Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2")]
    ports += [Port(3, "vm10", vlan=10), Port(4, "vm20", vlan=20), Port(5, "trunk")]
    bp.set_ports(ports, 0.0)
    return bp


def test_access_port_tags_on_ingress_and_untags_on_delivery():
    bp = vlan_bridge()
    flows = pl.base_flows(bp)
    push = [f for f in flows if f.table == 0 and dict(f.match).get("in_port") == 3]
    tagging = [f for f in push if f.priority == 100][0]
    assert dict(tagging.match)["vlan_vid"] == pl.OFPVID_NONE
    assert tagging.actions == (("push_vlan", 0x8100), ("set_vlan_vid", pl.OFPVID_PRESENT | 10))
    assert [f.actions for f in push if f.priority == 90] == [()]  # tagged frames: drop
    bp.learn("02:00:00:00:00:0a", 10, 3, 1.0)
    bp.learn("02:00:00:00:00:0b", 10, 5, 1.0)  # a trunk VM sending tagged frames
    entries = {e.port_no: e for e in bp.macs.values()}
    dst = [f for f in pl.mac_flows(bp, entries[3]) if f.table == pl.TABLE_FORWARD][0]
    assert dst.actions == (("pop_vlan", 0), ("output", 3))
    dst = [f for f in pl.mac_flows(bp, entries[5]) if f.table == pl.TABLE_FORWARD][0]
    assert dst.actions == (("output", 5),)


def test_flood_groups_per_vlan_contain_only_that_vlan_and_trunks():
    groups = {g.group_id: g for g in pl.groups(vlan_bridge())}
    members = {
        vid: sorted(b[1][-1][1] for b in groups[pl.FLOOD_GROUP_BASE + vid].buckets)
        for vid in (0, 10, 20)
    }
    assert members == {0: [5, OFPP_LOCAL], 10: [3, 5, OFPP_LOCAL], 20: [4, 5, OFPP_LOCAL]}
    assert groups[pl.FLOOD_GROUP_BASE + 10].buckets[0][1][0] == ("pop_vlan", 0)


def test_fabric_broadcast_flood_is_per_vlan_and_unknown_vlans_are_dropped():
    bp = vlan_bridge()
    fabric = [
        f
        for f in pl.base_flows(bp)
        if f.table == 3 and dict(f.match).get("metadata") == pl.META_FABRIC_ACTIVE
    ]
    by_vid = {dict(f.match)["vlan_vid"]: f.actions for f in fabric}
    assert by_vid == {
        pl.OFPVID_NONE: (("group", pl.FLOOD_GROUP_BASE),),
        pl.OFPVID_PRESENT | 10: (("group", pl.FLOOD_GROUP_BASE + 10),),
        pl.OFPVID_PRESENT | 20: (("group", pl.FLOOD_GROUP_BASE + 20),),
    }


def test_held_uplink_left_out_of_fast_failover_groups():
    bp = bridge()
    bp.ports[2].held = True
    groups = {g.group_id: g for g in pl.groups(bp)}
    assert [b[0] for b in groups[1].buckets] == [1]
    assert [b[0] for b in groups[2].buckets] == [1]

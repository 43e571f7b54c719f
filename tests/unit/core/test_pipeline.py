"""The pipeline's encodings: what forwarding behaviour cannot show.

Where frames go is proved in test_pipeline_behaviour.py (FakeOFTable); here: cookies,
the vlan_vid encoding, the per-MAC flow count and the restart-recovery round trip.
"""

from slb_ryu.core import pipeline as pl
from slb_ryu.core.placement import OFPP_LOCAL, BridgePlacement, Port


def bridge():
    bp = BridgePlacement(1, ["up*"])
    bp.set_ports(
        [Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm1"), Port(4, "vm2")],
        0.0,
    )
    return bp


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

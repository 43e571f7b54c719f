"""The test datapath itself: OpenFlow semantics on hand-written flows, not the pipeline."""

import pytest
from fakeoftable import ETH_TYPE_ARP, OFPP_IN_PORT, FakeOFTable, Frame

from slb_ryu.core.pipeline import OFPVID_NONE, OFPVID_PRESENT, FlowSpec, GroupSpec, match

A = "02:00:00:00:00:0a"
B = "02:00:00:00:00:0b"
BCAST = "ff:ff:ff:ff:ff:ff"


def flow(table, priority, fields=(), actions=(), **kw):
    return FlowSpec(table, priority, fields, 0, actions=actions, **kw)


def test_highest_priority_match_wins_and_miss_drops():
    fake = FakeOFTable(
        [
            flow(0, 10, match(eth_dst=B), (("output", 2),)),
            flow(0, 20, match(eth_dst=B, in_port=1), (("output", 3),)),
            flow(0, 5, match(in_port=1), (("output", 4),)),
        ],
        [],
    )
    assert fake.process(1, Frame(A, B), live=()).ports == [3]
    assert fake.process(5, Frame(A, B), live=()).ports == [2]
    assert fake.process(1, Frame(A, A), live=()).ports == [4]
    assert fake.process(5, Frame(A, A), live=()).dropped


def test_equal_priority_overlap_is_an_error():
    fake = FakeOFTable([flow(0, 1, match(in_port=1)), flow(0, 1, match(eth_dst=B))], [])
    with pytest.raises(AssertionError, match="ambiguous"):
        fake.process(1, Frame(A, B), live=())


def test_masked_mac_metadata_goto_and_vlan_presence():
    multicast = ("01:00:00:00:00:00", "01:00:00:00:00:00")
    fake = FakeOFTable(
        [
            flow(0, 1, match(vlan_vid=OFPVID_NONE), write_metadata=7, goto=2),
            flow(0, 0, (), write_metadata=9, goto=2),
            flow(2, 3, match(metadata=7, eth_dst=multicast), (("output", 1),)),
            flow(2, 2, match(metadata=7), (("output", 2),)),
            flow(2, 2, match(metadata=9, vlan_vid=OFPVID_PRESENT | 10), (("output", 3),)),
        ],
        [],
    )
    assert fake.process(5, Frame(A, BCAST), live=()).ports == [1]
    assert fake.process(5, Frame(A, "01:00:5e:00:00:01"), live=()).ports == [1]
    assert fake.process(5, Frame(A, B), live=()).ports == [2]
    assert fake.process(5, Frame(A, B, vlan=10), live=()).ports == [3]
    assert fake.process(5, Frame(A, B, vlan=11), live=()).dropped


def test_fast_failover_takes_first_live_bucket_or_nothing():
    ff = GroupSpec(1, "ff", ((1, (("output", 1),)), (2, (("output", 2),))))
    fake = FakeOFTable([flow(0, 0, (), (("group", 1),))], [ff])
    assert fake.process(9, Frame(A, B), live={1, 2}).ports == [1]
    assert fake.process(9, Frame(A, B), live={2}).ports == [2]
    assert fake.process(9, Frame(A, B), live={9}).dropped


def test_all_group_buckets_get_copies_and_ingress_output_is_dropped():
    flood = GroupSpec(
        5,
        "all",
        (
            (None, (("pop_vlan", 0), ("output", 1))),
            (None, (("output", 2),)),
            (None, (("output", 3),)),
        ),
    )
    fake = FakeOFTable([flow(0, 0, (), (("group", 5), ("output", 4)))], [flood])
    result = fake.process(3, Frame(A, B, vlan=10), live=())
    assert result.outputs == [
        (1, Frame(A, B)),
        (2, Frame(A, B, vlan=10)),
        (4, Frame(A, B, vlan=10)),
    ]
    assert result.to_in_port == [Frame(A, B, vlan=10)]
    explicit = FakeOFTable([flow(0, 0, (), (("output", OFPP_IN_PORT),))], [])
    assert explicit.process(3, Frame(A, B), live=()).ports == [3]


def test_push_set_vid_then_later_tables_see_the_tag_and_punts_note_the_meter():
    fake = FakeOFTable(
        [
            flow(
                0,
                1,
                match(vlan_vid=OFPVID_NONE),
                (("push_vlan", 0x8100), ("set_vlan_vid", OFPVID_PRESENT | 20)),
                goto=1,
            ),
            flow(1, 1, match(vlan_vid=OFPVID_PRESENT | 20), (("controller", 128),), meter=1),
        ],
        [],
    )
    result = fake.process(1, Frame(A, B, eth_type=ETH_TYPE_ARP), live=())
    assert not result.outputs
    [punt] = result.punts
    assert punt.frame.vlan == 20 and punt.metered and punt.max_len == 128


def test_unknown_fields_actions_and_missing_groups_fail_loudly():
    frame = Frame(A, B)
    with pytest.raises(ValueError, match="ip_proto"):
        FakeOFTable([flow(0, 0, (("ip_proto", 6),))], []).process(1, frame, live=())
    with pytest.raises(ValueError, match="set_queue"):
        FakeOFTable([flow(0, 0, (), (("set_queue", 1),))], []).process(1, frame, live=())
    with pytest.raises(AssertionError, match="missing group"):
        FakeOFTable([flow(0, 0, (), (("group", 3),))], []).process(1, frame, live=())
    with pytest.raises(AssertionError, match="goto_table"):
        FakeOFTable([flow(0, 0, (), goto=0)], []).process(1, frame, live=())

"""The learning-in-progress marks read from a flow-stats reply's bytes, as OVS sends
them: the same (port, MAC, VLAN, age) as Ryu's full parse, other flows skipped."""

import struct

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser
from test_stats import reply

from slb_ryu.core import pipeline
from slb_ryu.openflow import marks

pytestmark = pytest.mark.usefixtures("lazy_flow_stats")


def entry(match, cookie, sec=1, nsec=500_000_000, table=pipeline.TABLE_FABRIC_SEEN):
    """One ofp_flow_stats entry of a datapath-learned flow (a match, no instructions)."""
    body = bytearray()
    match.serialize(body, 0)
    length = ofp.OFP_FLOW_STATS_0_SIZE + len(body)
    head = struct.pack(
        ofp.OFP_FLOW_STATS_0_PACK_STR,
        length, table, sec, nsec, pipeline.PENDING_PRIORITY, 0, 2, 0, cookie, 1, 60,
    )  # fmt: skip
    return head + bytes(body)


def raw_entries():
    mark = pipeline.COOKIE_PENDING_MARK
    untagged = parser.OFPMatch(in_port=3, eth_src="02:00:00:00:03:01", vlan_vid=(0, 0x1FFF))
    tagged = parser.OFPMatch(in_port=4, eth_src="02:00:00:00:03:02", vlan_vid=(0x1000 | 10, 0x1FFF))
    seen = parser.OFPMatch(eth_src="02:00:00:00:09:09", vlan_vid=(0, 0x1FFF))
    return [
        entry(untagged, mark, 1, 500_000_000),
        entry(tagged, mark, 0, 250_000_000),
        entry(seen, pipeline.COOKIE_LEARNED),  # a fabric-seen flow: not a mark
    ]


def test_marks_from_bytes_equal_ryus_full_parse():
    raw = raw_entries()
    msg = reply(raw)
    fast = marks.marks(msg.body)
    assert fast == [(3, "02:00:00:00:03:01", 0, 1.5), (4, "02:00:00:00:03:02", 10, 0.25)]
    full = [parser.OFPFlowStats.parser(bytearray(b), 0) for b in raw]
    assert [m for m in map(marks._mark_from_ryu, full) if m is not None] == fast


class FakeDp:
    id = 7

    def __init__(self):
        self.xid = 100

    def set_xid(self, msg):
        self.xid += 1
        msg.xid = self.xid


def test_request_asks_for_the_marks_cookie_exactly_and_a_few_at_a_time():
    dp = FakeDp()
    reader = marks.MarkReader()
    req = reader.request(dp)
    assert req.table_id == pipeline.TABLE_FABRIC_SEEN
    assert (req.cookie, req.cookie_mask) == (pipeline.COOKIE_PENDING_MARK, 2**64 - 1)
    more = [reader.request(dp) for _ in range(marks.MAX_OUTSTANDING - 1)]
    assert all(r is not None for r in more)  # a late reply does not stop the next read
    assert reader.request(dp) is None  # but unanswered requests do not pile up
    first = reply(raw_entries()[:1], flags=ofp.OFPMPF_REPLY_MORE, xid=req.xid)
    assert reader.reply(first) == (7, [(3, "02:00:00:00:03:01", 0, 1.5)])
    assert reader.owns(req.xid)  # more to come
    assert reader.reply(reply(raw_entries()[1:], xid=req.xid))[1] == [
        (4, "02:00:00:00:03:02", 10, 0.25)
    ]
    assert not reader.owns(req.xid) and reader.request(dp) is not None  # one slot freed


def test_only_the_marks_learn_action_carries_the_marks_cookie():
    from slb_ryu.openflow import messages as ofmsgs

    assert ofmsgs._learn("learn_pending", 2).cookie == pipeline.COOKIE_PENDING_MARK
    for kind in ("learn_fabric", "learn_local", "learn_claim"):
        assert ofmsgs._learn(kind, 5).cookie == pipeline.COOKIE_LEARNED
    assert pipeline.cookie_kind(pipeline.COOKIE_PENDING_MARK) is None  # never read back


def test_marks_learn_the_whole_16_bit_nxm_in_port():
    """OVS cannot match part of the 32-bit OXM in_port: learning OXM_OF_IN_PORT[0..15]
    left the marks without an in_port (seen live), NXM_OF_IN_PORT keeps it."""
    from slb_ryu.openflow import messages as ofmsgs

    first = ofmsgs._learn("learn_pending", 2).specs[0]
    assert (first.src, first.dst, first.n_bits) == (("in_port_nxm", 0), ("in_port_nxm", 0), 16)


@pytest.mark.parametrize("kind, index", [("learn_pending", 0), ("learn_local", 1)])
def test_the_strict_delete_of_a_learned_flow_names_what_the_learn_makes(kind, index):
    """A strict delete finds only a flow of the same table, priority and match: the
    specs `learned_while_learning` deletes must be those `_learn` has OVS make (the
    learned fields, whole: in_port 16 bits, eth_src 48, vlan_tci 13 = OXM vlan_vid)."""
    from slb_ryu.openflow import messages as ofmsgs

    learn = ofmsgs._learn(kind, 2)
    spec = pipeline.learned_while_learning(5, "02:00:00:00:00:01", 10)[index]
    assert (spec.table, spec.priority, spec.cookie) == (
        learn.table_id,
        learn.priority,
        learn.cookie,
    )
    fields = [(s.dst[0], s.n_bits) for s in learn.specs if hasattr(s, "dst") and s.dst]
    named = {"in_port_nxm": "in_port", "vlan_tci": "vlan_vid"}
    matched = {named.get(name, name) for name, _bits in fields if name not in ("reg0", "reg2")}
    assert matched == {name for name, _ in spec.match}
    assert dict(fields)["eth_src"] == 48 and dict(fields)["vlan_tci"] == 13
    assert dict(spec.match)["vlan_vid"] == pipeline.OFPVID_PRESENT | 10
    wire = ofmsgs.flow_mod_bytes(spec, "delete")
    assert wire[25] == ofp.OFPFC_DELETE_STRICT  # command byte after cookie, mask, table

"""Flow-stats replies read straight from the wire bytes.

Replies are built with Ryu's own serialisers (OFPMatch, OFPInstruction*) around the
fixed ofp_flow_stats header and parsed through Ryu's real message parser, with the
lazy body class installed: the counters read from the bytes must equal what Ryu's
full parse gives, and the handshake's full reading of the same entries must not change.
"""

import struct

import pytest
from ryu.ofproto import ofproto_parser, ofproto_protocol
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu.core import pipeline
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.placement import OFPP_LOCAL, BridgePlacement, Port
from slb_ryu.core.sync import owner
from slb_ryu.openflow import messages as ofmsgs
from slb_ryu.openflow import stats

DP = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)
pytestmark = pytest.mark.usefixtures("lazy_flow_stats")


def flows():
    bp = BridgePlacement(1, ["up*"])
    bp.set_ports([Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm")], 0.0)
    for i, vlan in enumerate((0, 10, 4094, 0)):
        bp.learn(f"02:00:00:00:01:{i:02x}", vlan, 3, 1.0)
    bp.macs[("02:00:00:00:01:01", 10)].pinned = True
    return list(pipeline.desired_flows(bp).values())


def entry(spec, byte_count, sec, nsec):
    """One ofp_flow_stats entry: Ryu's header format, match and instruction serialisers."""
    mod = ofmsgs.flow_mod(DP, spec)
    body = bytearray()
    match_len = mod.match.serialize(body, 0)
    for inst in mod.instructions:
        inst.serialize(body, len(body))
    length = ofp.OFP_FLOW_STATS_0_SIZE + len(body)
    head = struct.pack(
        ofp.OFP_FLOW_STATS_0_PACK_STR,
        length, spec.table, sec, nsec, spec.priority, spec.idle_timeout, 0, spec.flags,
        spec.cookie, 7, byte_count,
    )  # fmt: skip
    assert match_len % 8 == 0
    return head + bytes(body)


def reply(entries, flags=0, xid=99):
    body = b"".join(entries)
    length = ofp.OFP_MULTIPART_REPLY_SIZE + len(body)
    head = struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, length, xid)
    head += struct.pack("!HH4x", ofp.OFPMP_FLOW, flags)  # ofp_multipart_reply
    data = head + body
    return ofproto_parser.msg(DP, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, length, xid, data)


def test_counters_from_bytes_equal_ryus_full_parse():
    specs = flows()
    raw = [entry(s, 1000 + i, 3 + i, 250_000_000) for i, s in enumerate(specs)]
    msg = reply(raw)
    assert all(isinstance(e, stats.LazyFlowStats) for e in msg.body)
    fast = stats.counters(msg.body)
    full = [parser.OFPFlowStats.parser(bytearray(b), 0) for b in raw]
    slow = [c for c in map(stats._counter_from_ryu, full) if c is not None]
    assert fast == slow
    per_mac = {pipeline.KIND_SRC, pipeline.KIND_DST}
    want = [
        (pipeline.cookie_kind(s.cookie), owner(s), 1000 + i, 3 + i + 0.25)
        for i, s in enumerate(specs)
        if pipeline.cookie_kind(s.cookie) in per_mac
    ]
    assert fast == want and len(fast) == 8  # src and dst of 4 MACs, nothing else


def test_lazy_entries_still_read_fully_for_the_handshake():
    specs = flows()
    msg = reply([entry(s, 5, 1, 0) for s in specs])
    assert [ofmsgs.spec_from_stats(e) for e in msg.body] == specs
    assert msg.body[0].byte_count == 5 and msg.body[0].length >= 48


def test_truncated_entry_is_a_parse_error_not_a_hang():
    data = entry(flows()[0], 1, 1, 0)
    bad = struct.pack("!H", 8) + data[2:]
    assert reply([bad]) is None  # Ryu logs the malformed message and drops it


class FakeDp:
    id = 7
    xid = 0

    def set_xid(self, msg):
        self.xid += 1
        msg.set_xid(self.xid)


def test_poller_sums_multipart_replies_then_feeds_the_core():
    core = BridgeCore(7, ["up*"])
    core.connect(
        [Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm")], [], [], {}, 0.0
    )
    core.packet_in(pipeline.KIND_SRC_MISS, 3, "02:00:00:00:01:00", 0, None, 1.0)
    specs = [s for s in pipeline.desired_flows(core.placement).values()]
    src = [s for s in specs if pipeline.cookie_kind(s.cookie) == pipeline.KIND_SRC]
    dst = [s for s in specs if pipeline.cookie_kind(s.cookie) == pipeline.KIND_DST]
    counted = []
    poller = stats.StatsPoller(counted.append)
    dp = FakeDp()
    reqs = poller.requests(dp)
    assert len(reqs) == 3 and all(poller.owns(r.xid) for r in reqs)
    poller.requests(dp)  # the first poll never completed: given up
    assert counted == ["stats_poll_lost"] and not poller.owns(reqs[0].xid)
    cores = {7: core}
    for poll, byte_count in enumerate((0, 100_000)):
        if poll:
            poller.requests(dp)
        x_src, x_dst, x_port = sorted(poller.polls)
        more = reply([entry(src[0], byte_count, 1, 0)], ofp.OFPMPF_REPLY_MORE, x_src)
        poller.reply(more, cores.get)
        poller.reply(reply([], 0, x_src), cores.get)
        assert poller.owns(x_dst)
        poller.reply(reply([entry(dst[0], byte_count, 1, 0)], 0, x_dst), cores.get)
        ports = parser.OFPPortStatsReply(DP, body=[_port(1, 11, 22)], flags=0)
        ports.xid = x_port
        poller.reply(ports, cores.get)
        assert not poller.polls
    entry_ = core.entry("02:00:00:00:01:00", 0)
    assert entry_.tx_bps > 0 and entry_.rx_bps > 0
    assert core.placement.ports[1].tx_bytes == 11
    assert counted.count("stats_replies") == 4 and poller.last_seconds >= 0


def _port(port_no, tx, rx):
    zeros = dict.fromkeys(parser.OFPPortStats._fields, 0)
    return parser.OFPPortStats(**(zeros | {"port_no": port_no, "tx_bytes": tx, "rx_bytes": rx}))


def test_shard_bits_grow_with_the_macs_up_to_sixteen_shards():
    assert [stats.shard_bits(n) for n in (0, 100, 1000)] == [0, 0, 0]  # one request per kind
    assert [stats.shard_bits(n) for n in (1001, 2000, 2001, 5000)] == [1, 1, 2, 3]
    assert stats.shard_bits(10_000) == 4 and stats.shard_bits(1_000_000) == 4
    # no more shards than the timer can ask for within the spread (e.g. 1 s interval: 3)
    assert stats.shard_bits(10_000, max_shards=3) == 1 and stats.shard_bits(10_000, 1) == 0


def test_a_shard_request_selects_its_macs_by_their_low_bits():
    whole = ofmsgs.kind_flows_request(DP, pipeline.KIND_SRC)
    assert "eth_src" not in dict(whole.match.items())
    src = ofmsgs.kind_flows_request(DP, pipeline.KIND_SRC, 3, 4)
    dst = ofmsgs.kind_flows_request(DP, pipeline.KIND_DST, 3, 4)
    assert dict(src.match.items()) == {"eth_src": ("00:00:00:00:00:03", "00:00:00:00:00:0f")}
    assert dict(dst.match.items()) == {"eth_dst": ("00:00:00:00:00:03", "00:00:00:00:00:0f")}
    assert src.cookie == pipeline.cookie(pipeline.KIND_SRC) and src.cookie_mask == whole.cookie_mask
    assert (src.table_id, dst.table_id) == (pipeline.TABLE_LOCAL_SRC, pipeline.TABLE_FORWARD)
    src.serialize()  # on the wire: OXM eth_src with its mask (class 0x8000, field 4, HM)
    oxm = b"\x80\x00\x09\x0c" + bytes.fromhex("000000000003" + "00000000000f")
    assert oxm in bytes(src.buf)


def test_a_large_poll_asks_for_its_shards_spread_over_the_interval():
    core = BridgeCore(7, ["up*"])
    core.connect(
        [Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm")], [], [], {}, 0.0
    )
    macs = ["02:00:00:00:01:00", "02:00:00:00:01:01"]  # one in each of 2 shards
    for mac in macs:
        core.packet_in(pipeline.KIND_SRC_MISS, 3, mac, 0, None, 1.0)
    specs = pipeline.desired_flows(core.placement).values()
    per_mac = {
        (pipeline.cookie_kind(s.cookie), owner(s)[0]): s
        for s in specs
        if pipeline.cookie_kind(s.cookie) in (pipeline.KIND_SRC, pipeline.KIND_DST)
    }
    counted = []
    poller = stats.StatsPoller(counted.append)
    dp = FakeDp()
    first = poller.requests(dp, 1500, spread_over=4.0)  # 1,500 MACs: 1 bit, 2 shards
    assert len(first) == 3  # shard 0 (source, destination) and the port counters
    x_src, x_dst, _ = (r.xid for r in first)
    assert dict(first[0].match.items())["eth_src"] == ("00:00:00:00:00:00", "00:00:00:00:00:01")
    start = poller.polls[x_src].sent
    cores = {7: core}
    poller.reply(
        reply([entry(per_mac[(pipeline.KIND_SRC, macs[0])], 9, 1, 0)], 0, x_src), cores.get
    )
    assert poller.due(start + 9.0) == []  # shard 0 is still being read
    poller.reply(
        reply([entry(per_mac[(pipeline.KIND_DST, macs[0])], 9, 1, 0)], 0, x_dst), cores.get
    )
    assert (macs[0], 0) in core.loads and (macs[1], 0) not in core.loads  # as soon as read
    assert poller.due(start + 1.9) == []  # shard 1 is due 2 s (4 s / 2 shards) after 0
    nxt = poller.due(start + 2.0)
    assert [c for c, _ in nxt] == [dp, dp] and poller.due(start + 2.0) == []
    assert [dict(r.match.items()) for _, r in nxt] == [
        {"eth_src": ("00:00:00:00:00:01", "00:00:00:00:00:01")},
        {"eth_dst": ("00:00:00:00:00:01", "00:00:00:00:00:01")},
    ]
    assert counted == [] and poller.last_seconds == 0.0  # the flow poll is not done yet
    for (_, r), kind in zip(nxt, (pipeline.KIND_SRC, pipeline.KIND_DST), strict=True):
        poller.reply(reply([entry(per_mac[(kind, macs[1])], 9, 1, 0)], 0, r.xid), cores.get)
    assert (macs[1], 0) in core.loads and counted == ["stats_replies"]
    assert poller.due(start + 9.0) == []  # the last shard: nothing more to ask
    assert not any(p.kind == "flow" for p in poller.polls.values())
    # a new poll while a shard waits gives the old one up
    poller.requests(dp, 1500, spread_over=4.0)
    x_src2 = min(x for x, p in poller.polls.items() if p.kind == "flow")
    poller.reply(reply([], 0, x_src2), cores.get)
    poller.reply(reply([], 0, x_src2 + 1), cores.get)
    assert poller.waiting
    poller.requests(dp, 1500, spread_over=4.0)
    assert counted.count("stats_poll_lost") == 2  # the port poll of before, then this

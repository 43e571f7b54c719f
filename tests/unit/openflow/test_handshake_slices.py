"""The handshake reads a big flow table in slices: a pause every FLOW_SLICE entries of a
reply (at 10,000 MACs a 64 KiB reply is ~30 ms of Ryu parsing), the same flows and the
same recovered placement as in one go, and a connection lost during a pause ends its
handshake cleanly. Replies are real wire bytes through Ryu's parser (lazy body class)."""

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser
from test_handshake import FakeDatapath, port
from test_handshake import reply as handshake_reply
from test_stats import entry
from test_stats import reply as flow_reply

from slb_ryu.core import pipeline
from slb_ryu.core.events import EventLog
from slb_ryu.core.placement import OFPP_LOCAL, BridgePlacement, Port
from slb_ryu.openflow import handshake

MACS = 40
pytestmark = pytest.mark.usefixtures("lazy_flow_stats")


def placement() -> BridgePlacement:
    bp = BridgePlacement(1, ["up*"])
    bp.set_ports([Port(OFPP_LOCAL, "br"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm")], 0.0)
    for i in range(MACS):
        bp.learn(f"02:00:00:00:02:{i:02x}", (0, 10)[i % 2], 3, 1.0)
    bp.macs[("02:00:00:00:02:01", 10)].pinned = True
    return bp


def connections(pause):
    calls = []
    conns = handshake.Connections(
        EventLog(),
        on_accept=lambda dp: None,
        on_lost=lambda dp: calls.append(("lost", dp)),
        on_synced=lambda dp, c: calls.append(("synced", dp, c)),
        pause=pause,
    )
    return conns, calls


def flows_reply(dp, raw, flags, xid):
    msg = flow_reply(raw, flags, xid)
    msg.datapath = dp
    return msg


def up_to_flows(conns, dp):
    """Accept `dp` and answer ports, groups and meters: the flows are asked for next."""
    conns.main(dp)
    ports = [port(1, "up1"), port(2, "up2"), port(3, "vm"), port(ofp.OFPP_LOCAL, "br")]
    for cls, body in (
        (parser.OFPPortDescStatsReply, ports),
        (parser.OFPGroupDescStatsReply, ()),
        (parser.OFPMeterConfigStatsReply, ()),
    ):
        assert conns.collect(handshake_reply(cls, dp, dp.sent[-1].xid, body))
    assert isinstance(dp.sent[-1], parser.OFPFlowStatsRequest)
    return dp.sent[-1].xid


def test_a_big_flow_table_is_read_in_slices_with_the_same_result(monkeypatch):
    monkeypatch.setattr(handshake, "FLOW_SLICE", 16)
    bp = placement()
    specs = list(pipeline.desired_flows(bp).values())
    assert len(specs) > 6 * 16
    pauses = []
    conns, calls = connections(lambda: pauses.append(1))
    dp = FakeDatapath()
    xid = up_to_flows(conns, dp)
    half = len(specs) // 2
    raw = [entry(s, 1000, 30, 0) for s in specs]
    assert conns.collect(flows_reply(dp, raw[:half], ofp.OFPMPF_REPLY_MORE, xid))
    assert len(pauses) == (half - 1) // 16 and not calls
    assert conns.collect(flows_reply(dp, raw[half:], 0, xid))
    assert len(pauses) == (half - 1) // 16 + (len(specs) - half - 1) // 16
    (_, synced_dp, collector) = calls[-1]
    assert synced_dp is dp and collector.flows == specs
    assert set(collector.ages.values()) == {30.0}
    got = {e.key: (e.port_no, e.uplink, e.pinned) for e in collector.recovered}
    want = {k: (e.port_no, e.uplink, e.pinned) for k, e in bp.macs.items()}
    assert got == want and len(collector.recovered) == MACS


def test_a_connection_lost_during_a_pause_ends_its_handshake_quietly(monkeypatch):
    monkeypatch.setattr(handshake, "FLOW_SLICE", 16)
    specs = list(pipeline.desired_flows(placement()).values())
    dp = FakeDatapath()

    def pause():
        if conns.accepted(dp):
            dp.close()
            conns.dead(dp)  # Ryu's DEAD event, handled while the reader paused

    conns, calls = connections(pause)
    xid = up_to_flows(conns, dp)
    assert conns.collect(flows_reply(dp, [entry(s, 1, 0, 0) for s in specs], 0, xid))
    assert calls == [("lost", dp)] and conns.handshaking(dp) is None
    assert not conns.accepted(dp)

"""The connection state machine: who speaks for a datapath id, probes, stalls, the collector."""

from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.ofproto import ofproto_protocol
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu.core.events import EventLog
from slb_ryu.openflow.handshake import Collector, Connections

DPID = 0x51


class FakeDatapath(ofproto_protocol.ProtocolDesc):
    """What Connections uses of a Ryu Datapath: id, state, address, xids, send, close."""

    def __init__(self, dpid=DPID, port=40000):
        super().__init__(ofp.OFP_VERSION)
        self.id, self.state, self.is_active = dpid, MAIN_DISPATCHER, True
        self.address = ("127.0.0.1", port)
        self.xid, self.sent, self.closed = 0, [], False

    def set_xid(self, msg):
        self.xid += 1
        msg.xid = self.xid
        return self.xid

    def send_msg(self, msg):
        self.sent.append(msg)

    def close(self):
        self.closed, self.state = True, DEAD_DISPATCHER


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make():
    clock, log, calls = Clock(), EventLog(), []
    conns = Connections(
        log,
        on_accept=lambda dp: calls.append(("accept", dp)),
        on_lost=lambda dp: calls.append(("lost", dp)),
        on_synced=lambda dp, c: calls.append(("synced", dp, c)),
        clock=clock,
        wall=clock,
    )
    return conns, clock, log, calls


def reply(cls, dp, xid, body=(), more=False):
    msg = cls(dp)
    msg.xid, msg.body, msg.flags = xid, list(body), ofp.OFPMPF_REPLY_MORE if more else 0
    return msg


def port(no, name, mac="02:00:00:00:00:01"):
    return parser.OFPPort(no, mac, name.encode(), 0, 0, 0, 0, 0, 0, 10**6, 0)


def finish(conns, dp, mac="02:00:00:00:00:01"):
    """Answer the four handshake requests (ports, groups, meters, flows)."""
    body = [port(1, "eth1", mac), port(ofp.OFPP_LOCAL, "br0", mac)]
    for cls in (
        parser.OFPPortDescStatsReply,
        parser.OFPGroupDescStatsReply,
        parser.OFPMeterConfigStatsReply,
        parser.OFPFlowStatsReply,
    ):
        ports = body if cls is parser.OFPPortDescStatsReply else ()
        assert conns.collect(reply(cls, dp, dp.sent[-1].xid, ports))


def test_first_connection_is_accepted_and_synced_after_four_replies():
    conns, _, log, calls = make()
    dp = FakeDatapath()
    conns.main(dp)
    assert conns.accepted(dp) and calls == [("accept", dp)]
    assert isinstance(dp.sent[0], parser.OFPPortDescStatsRequest)
    finish(conns, dp)
    kinds = [type(m).__name__ for m in dp.sent]
    assert kinds == [
        "OFPPortDescStatsRequest",
        "OFPGroupDescStatsRequest",
        "OFPMeterConfigStatsRequest",
        "OFPFlowStatsRequest",
    ]
    (_, synced_dp, collector) = calls[-1]
    assert synced_dp is dp and [p.name for p in collector.ports] == ["eth1", "br0"]
    assert conns.handshaking(dp) is None and log.counters["switch-connect"] == 1


def test_multipart_more_flag_keeps_collecting_and_wrong_xid_or_type_is_ignored():
    conns, _, _, calls = make()
    dp = FakeDatapath()
    conns.main(dp)
    xid = dp.sent[0].xid
    assert not conns.collect(reply(parser.OFPPortDescStatsReply, dp, xid + 7))
    assert not conns.collect(reply(parser.OFPGroupDescStatsReply, dp, xid))
    assert conns.collect(reply(parser.OFPPortDescStatsReply, dp, xid, [port(1, "a")], more=True))
    assert conns.collect(reply(parser.OFPPortDescStatsReply, dp, xid, [port(2, "b")]))
    assert [p.name for p in conns.handshaking(dp).ports] == ["a", "b"]
    assert len(dp.sent) == 2 and len(calls) == 1


def test_a_second_connection_is_held_probed_and_refused_while_the_first_answers():
    conns, clock, log, calls = make()
    real, rogue = FakeDatapath(port=1), FakeDatapath(port=2)
    conns.main(real)
    finish(conns, real)
    conns.main(rogue)
    assert conns.accepted(real) and not conns.accepted(rogue)
    echo = real.sent[-1]
    assert isinstance(echo, parser.OFPEchoRequest) and not rogue.sent
    assert not conns.collect(reply(parser.OFPPortDescStatsReply, rogue, 1))
    clock.now += 1
    conns.echo_reply(real, echo.xid)
    assert rogue.closed and not real.closed and conns.accepted(real)
    assert log.counters["switch_impostor"] == 1
    assert [e["type"] for e in log.events][-1] == "switch-impostor"
    problems = conns.problems({DPID: "br0"})
    assert len(problems) == 1 and "127.0.0.1:2" in problems[0] and "br0" in problems[0]
    assert ("lost", real) not in calls
    conns.dead(rogue)  # Ryu's DEAD event of the refused one changes nothing
    assert conns.accepted(real) and ("lost", real) not in calls
    clock.now += 301
    assert conns.problems({}) == []


def test_a_dead_first_connection_is_replaced_after_the_probe_times_out():
    conns, clock, log, calls = make()
    old, new = FakeDatapath(port=1), FakeDatapath(port=2)
    conns.main(old)
    finish(conns, old)
    conns.main(new)
    clock.now += 3.5
    conns.expire()
    assert old.closed and conns.accepted(new) and ("lost", old) in calls
    assert ("accept", new) in calls and log.counters["switch_impostor"] == 0


def test_a_reconnect_after_the_old_connection_closed_is_accepted_at_once():
    conns, _, _, calls = make()
    old, new = FakeDatapath(port=1), FakeDatapath(port=2)
    conns.main(old)
    finish(conns, old)
    conns.dead(old)
    assert ("lost", old) in calls
    conns.main(new)
    assert conns.accepted(new) and isinstance(new.sent[0], parser.OFPPortDescStatsRequest)


def test_the_held_newcomer_is_accepted_when_the_first_connection_dies_meanwhile():
    conns, _, _, _ = make()
    old, new = FakeDatapath(port=1), FakeDatapath(port=2)
    conns.main(old)
    conns.main(new)
    old.state = DEAD_DISPATCHER
    conns.dead(old)
    assert conns.accepted(new) and not new.closed


def test_stalled_handshakes_are_closed_after_the_timeout_others_untouched():
    conns, clock, log, calls = make()
    real = FakeDatapath(port=1)
    conns.main(real)
    finish(conns, real)
    stuck_in_ryu = FakeDatapath(dpid=None, port=2)  # HELLO + FEATURES, then silence
    conns.opening(stuck_in_ryu)
    stalled = FakeDatapath(dpid=0x99, port=3)  # accepted, never answers our requests
    conns.main(stalled)
    clock.now += 9
    conns.expire()
    assert not stuck_in_ryu.closed and not stalled.closed
    clock.now += 1.5
    conns.expire()
    assert stuck_in_ryu.closed and stalled.closed and not real.closed
    assert conns.accepted(real) and not conns.accepted(stalled)
    assert log.counters["handshake_timeout"] == 2
    assert ("lost", real) not in calls


def test_restart_runs_the_handshake_again_on_the_accepted_connection():
    conns, _, _, calls = make()
    dp, other = FakeDatapath(), FakeDatapath(dpid=7)
    conns.main(dp)
    finish(conns, dp)
    conns.restart(dp)
    conns.restart(other)  # not accepted: nothing
    assert isinstance(conns.handshaking(dp), Collector) and not other.sent
    finish(conns, dp)
    assert [c[0] for c in calls].count("synced") == 2


def test_a_switch_with_other_port_macs_than_the_last_connection_is_another_switch():
    conns, _, _, calls = make()
    first, same, other = FakeDatapath(port=1), FakeDatapath(port=2), FakeDatapath(port=3)
    for dp, mac in ((first, "02:00:00:00:00:01"), (same, "02:00:00:00:00:01")):
        conns.main(dp)
        finish(conns, dp, mac)
        assert calls[-1][2].same_switch
        conns.dead(dp)
    conns.main(other)
    finish(conns, other, "02:66:00:00:00:01")
    assert not calls[-1][2].same_switch

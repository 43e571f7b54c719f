"""Learning packet repeats and the re-send of packets a dead connection may have lost."""

from slb_ryu.core.bridge import LearningPackets
from slb_ryu.openflow.pacing import LearningLedger

A = LearningPackets(2, "02:00:00:00:00:01", 0, ())
B = LearningPackets(1, "02:00:00:00:00:02", 10, ("10.0.0.2",))


def test_repeats_come_due_in_order_with_the_count_left():
    ledger = LearningLedger(repeat=3, interval=1.0)
    ledger.sent(7, "conn", A, now=0.0)
    ledger.sent(7, "conn", B, now=0.5)
    assert ledger.due(0.9) == []
    assert ledger.due(1.6) == [(7, A, 1), (7, B, 1)]
    ledger.sent(7, "conn", A, now=1.6, left=1)
    assert ledger.due(2.0) == []
    assert ledger.due(3.0, limit=5) == [(7, A, 0)]


def test_no_repeat_when_repeat_is_one_and_limit_bounds_a_slice():
    ledger = LearningLedger(repeat=1)
    ledger.sent(7, "c", A, 0.0)
    assert ledger.due(100.0) == []
    ledger = LearningLedger(repeat=2, interval=0.1)
    for i in range(5):
        ledger.sent(7, "c", LearningPackets(2, f"02:00:00:00:00:{i:02x}", 0, ()), 0.0)
    assert len(ledger.due(1.0, limit=3)) == 3 and len(ledger.due(1.0)) == 2


def test_packets_into_a_replaced_connection_are_reported_lost_once():
    ledger = LearningLedger(confirm_after=2.0)
    ledger.sent(7, "old", A, now=0.0)
    ledger.sent(8, "other", B, now=0.0)
    live = {7: "new", 8: "other"}

    def current(dpid, conn):
        return live.get(dpid) == conn

    assert ledger.lost(1.0, current) == []  # too early to judge
    assert ledger.lost(2.5, current) == [(7, A)]
    assert ledger.lost(9.0, current) == []

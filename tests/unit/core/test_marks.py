"""Learning copies that never arrived are recovered from the datapath's marks, through
the same checks as a real copy (port security, port limit) and within the port's
packet-in budget, once per mark."""

from slb_ryu.core import pipeline as pl
from slb_ryu.core.bridge import BridgeCore, Limits
from slb_ryu.core.marks import LearnBudget
from slb_ryu.core.placement import OFPP_LOCAL, Port
from slb_ryu.core.sync import owner

VM1, VM2 = 3, 4
OLD = 1.0  # s: a mark old enough for its copy to count as lost


def mac(i: int) -> str:
    return f"02:00:00:00:03:{i:02x}"


def core(max_macs: int = 64, rate: int = 200) -> BridgeCore:
    c = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=max_macs, packet_in_rate=rate))
    ports = [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2")]
    ports += [Port(VM1, "vm1"), Port(VM2, "vm2")]
    c.connect(ports, [], [], {}, now=0.0)
    return c


def recovered(c: BridgeCore) -> int:
    return c.events.counters["learning_copy_recovered"]


def test_marked_unknown_source_is_learned_with_its_flows_counted_and_evented():
    c = core()
    out = c.learning_marks([(VM1, mac(1), 0, OLD)], now=10.0)
    entry = c.entry(mac(1), 0)
    assert entry is not None and entry.port_no == VM1 and entry.uplink in (1, 2)
    assert {owner(s) for o, _, s in out.mods if o == "flow"} >= {(mac(1), 0)}
    per_mac = [s for o, _, s in out.mods if o == "flow" and owner(s) == (mac(1), 0)]
    assert len(per_mac) == 5  # the same five flows a copy would have installed
    assert recovered(c) == 1
    events = [e for e in list(c.events.events) if e["type"] == "learning-copy-recovered"]
    assert events and events[-1]["mac"] == mac(1) and events[-1]["port"] == "vm1"


def test_young_mark_waits_for_its_copy():
    c = core()
    out = c.learning_marks([(VM1, mac(1), 0, pl.PENDING_MIN_AGE / 2)], now=10.0)
    assert out.mods == [] and c.entry(mac(1), 0) is None and recovered(c) == 0


def deleted(out) -> set[tuple]:
    """(table, priority, match) of every flow `out` deletes."""
    return {s.key for o, cmd, s in out.mods if o == "flow" and cmd == "delete"}


def mark_key(port: int, m: str, vid: int = 0) -> tuple:
    return (
        pl.TABLE_FABRIC_SEEN,
        pl.PENDING_PRIORITY,
        pl.match(in_port=port, eth_src=m, vlan_vid=vid),
    )


def guard_key(m: str, vid: int = 0) -> tuple:
    return (pl.TABLE_UPLINK_IN, pl.LOCAL_SEEN_PRIORITY, pl.match(eth_src=m, vlan_vid=vid))


def test_known_source_is_left_alone_even_on_another_port_and_its_marks_go():
    c = core()
    c.packet_in(pl.KIND_SRC_MISS, VM2, mac(1), 0, None, now=9.0)  # the copy arrived
    out = c.learning_marks([(VM1, mac(1), 0, OLD), (VM2, mac(1), 0, OLD)], now=10.0)
    assert c.entry(mac(1), 0).port_no == VM2 and recovered(c) == 0
    # nothing but deletes: both ports' marks and the one echo guard of (MAC, VLAN)
    assert all(cmd == "delete" for _, cmd, _ in out.mods), out.mods
    assert deleted(out) == {mark_key(VM1, mac(1)), mark_key(VM2, mac(1)), guard_key(mac(1))}
    assert len(out.mods) == 3
    assert c.events.counters["learning_marks_deleted"] == 2


def test_a_known_sources_mark_goes_however_young():
    c = core()
    c.packet_in(pl.KIND_SRC_MISS, VM1, mac(1), 10, None, now=9.9)
    out = c.learning_marks([(VM1, mac(1), 10, 0.05)], now=10.0)
    vid = pl.OFPVID_PRESENT | 10  # as OVS stores the learned 13 bits of vlan_tci
    assert deleted(out) == {mark_key(VM1, mac(1), vid), guard_key(mac(1), vid)}
    cookies = {s.table: s.cookie for _, _, s in out.mods}
    assert cookies == {
        pl.TABLE_FABRIC_SEEN: pl.COOKIE_PENDING_MARK,
        pl.TABLE_UPLINK_IN: pl.COOKIE_LEARNED,
    }


def test_recovered_source_gets_its_flows_before_its_mark_goes():
    c = core()
    out = c.learning_marks([(VM1, mac(1), 0, OLD)], now=10.0)
    kinds = [(o, cmd) for o, cmd, _ in out.mods]
    first_delete = kinds.index(("flow", "delete"))
    assert first_delete > 0 and all(cmd != "delete" for _, cmd in kinds[:first_delete])
    assert deleted(out) == {mark_key(VM1, mac(1)), guard_key(mac(1))}


def test_an_unknown_sources_mark_stays_while_its_copy_may_come_or_it_is_refused():
    c = core(max_macs=1)
    c.packet_in(pl.KIND_SRC_MISS, VM1, mac(0), 0, None, now=9.0)  # the port is now full
    out = c.learning_marks(
        [(VM2, mac(1), 0, pl.PENDING_MIN_AGE / 2), (VM1, mac(2), 0, OLD)], now=10.0
    )
    assert c.entry(mac(1), 0) is None and c.entry(mac(2), 0) is None
    assert deleted(out) == set() and "learning_marks_deleted" not in c.events.counters


def test_no_guard_to_delete_when_the_guard_is_off():
    c = BridgeCore(1, ["up*"], limits=Limits(guard_window=0))
    ports = [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2"), Port(VM1, "vm1")]
    c.connect(ports, [], [], {}, now=0.0)
    c.packet_in(pl.KIND_SRC_MISS, VM1, mac(1), 0, None, now=9.0)
    out = c.learning_marks([(VM1, mac(1), 0, OLD)], now=10.0)
    assert deleted(out) == {mark_key(VM1, mac(1))}


def test_port_security_refuses_a_marked_source_as_it_refuses_a_copy():
    c = core()
    c.set_attached_macs({"vm1": mac(9)}, now=5.0)
    out = c.learning_marks([(VM1, mac(1), 0, OLD), (VM1, mac(9), 0, OLD)], now=10.0)
    assert c.entry(mac(1), 0) is None and c.entry(mac(9), 0) is not None
    assert c.events.counters["port_security_drop"] == 1 and recovered(c) == 1
    assert all(owner(s) != (mac(1), 0) for o, _, s in out.mods if o == "flow")


def test_port_limit_holds_and_a_refused_mark_is_tried_once():
    c = core(max_macs=2)
    marks = [(VM1, mac(i), 0, OLD) for i in range(5)]
    c.learning_marks(marks, now=10.0)
    assert c.placement.mac_count(1) + c.placement.mac_count(2) == 2
    assert recovered(c) == 2 and c.events.counters["mac_limit_drop"] == 3
    c.learning_marks(marks, now=10.5)  # the same marks, read again: not re-counted
    assert c.events.counters["mac_limit_drop"] == 3 and recovered(c) == 2


def test_recovery_shares_the_ports_packet_in_budget_with_copies():
    c = core(rate=4)
    for i in range(3):  # three copies the meter let through take three of four tokens
        c.packet_in(pl.KIND_SRC_MISS, VM1, mac(i), 0, None, now=10.0)
    marks = [(VM1, mac(10 + i), 0, OLD) for i in range(4)]
    c.learning_marks(marks, now=10.0)
    assert recovered(c) == 1 and c.events.counters["learning_copy_deferred"] == 3
    # the other port has a budget of its own
    c.learning_marks([(VM2, mac(20), 0, OLD)], now=10.0)
    assert recovered(c) == 2
    # a second later the bucket is full again (burst = rate): the deferred marks go in
    c.learning_marks(marks, now=11.0)
    assert recovered(c) == 5
    assert all(c.entry(mac(10 + i), 0) is not None for i in range(4))


def test_marks_on_uplinks_unknown_ports_or_before_sync_are_ignored():
    c = core()
    c.learning_marks([(1, mac(1), 0, OLD), (99, mac(2), 0, OLD)], now=10.0)
    assert c.entry(mac(1), 0) is None and c.entry(mac(2), 0) is None
    c.synced = False
    assert c.learning_marks([(VM1, mac(3), 0, OLD)], now=10.0).mods == []
    assert c.entry(mac(3), 0) is None


def test_a_mark_recovered_before_its_late_copy_makes_the_copy_a_no_op():
    c = core()
    c.learning_marks([(VM1, mac(1), 0, OLD)], now=10.0)
    late = c.packet_in(pl.KIND_SRC_MISS, VM1, mac(1), 0, None, now=10.1)
    assert late.mods == [] and late.moves == []


def test_budget_refills_at_the_rate_up_to_the_burst():
    b = LearnBudget(2)
    assert b.take(3, 0.0) and b.take(3, 0.0) and not b.take(3, 0.0)
    assert b.take(3, 0.5) and not b.take(3, 0.5)  # one token per half second
    b.charge(3, 10.0)
    b.charge(3, 10.0)
    b.charge(3, 10.0)  # a copy is never refused: the balance goes below zero
    assert not b.take(3, 10.4) and b.take(3, 11.0)
    assert LearnBudget(0).take(3, 0.0)  # no meter: no budget either

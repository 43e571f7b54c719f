"""Pure placement core: pinning, least-loaded choice, failover, port changes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slb_ryu.core.errors import Conflict, Invalid, NotFound
from slb_ryu.core.placement import (
    OFPP_LOCAL,
    REASON_FAILOVER,
    REASON_LEARN,
    REASON_PORT_MOVE,
    BridgePlacement,
    MacEntry,
    Port,
    is_uplink_name,
    normalise_mac,
)


def bridge(uplinks=2, locals_=4, speeds=None):
    bp = BridgePlacement(1, ["hv1-eth1", "hv1-eth2", "hv1-eth3", "hv1-eth4"][:uplinks])
    ports = [Port(OFPP_LOCAL, "hv1")]
    for i in range(1, uplinks + 1):
        ports.append(Port(i, f"hv1-eth{i}", speed_bps=(speeds or {}).get(i, 0)))
    for i in range(uplinks + 1, uplinks + 1 + locals_):
        ports.append(Port(i, f"hv1-eth{i}"))
    bp.set_ports(ports, now=0.0)
    return bp


def mac(i):
    return f"00:00:00:00:00:{i:02x}"


def test_uplinks_recognised_by_glob_and_local_port_is_local():
    assert is_uplink_name("eth1", ["eth*"])
    assert not is_uplink_name("vif1.0", ["eth*"])
    bp = bridge()
    assert [p.port_no for p in bp.uplinks] == [1, 2]
    assert OFPP_LOCAL in [p.port_no for p in bp.local_ports]
    assert bp.name == "hv1"
    assert bp.active_uplink == 1


def test_new_macs_spread_over_uplinks_by_count():
    bp = bridge(locals_=4)
    moves = [bp.learn(mac(i), 0, 3 + i, now=1.0) for i in range(4)]
    assert all(m.reason == REASON_LEARN and m.old_uplink is None for m in moves)
    assert sorted(len(bp.macs_on(u)) for u in (1, 2)) == [2, 2]


def test_learn_is_idempotent_and_ignores_uplinks_and_multicast():
    bp = bridge()
    assert bp.learn(mac(1), 0, 3, 1.0) is not None
    assert bp.learn(mac(1), 0, 3, 2.0) is None
    assert bp.learn(mac(2), 0, 1, 2.0) is None  # arrived on an uplink
    assert bp.learn("01:00:5e:00:00:01", 0, 3, 2.0) is None
    assert len(bp.macs) == 1


def test_same_mac_on_two_vlans_is_two_entries():
    bp = bridge()
    bp.learn(mac(1), 10, 3, 1.0)
    bp.learn(mac(1), 20, 3, 1.0)
    assert set(bp.macs) == {(mac(1), 10), (mac(1), 20)}


def test_mac_moving_to_another_local_port_keeps_its_uplink():
    bp = bridge()
    first = bp.learn(mac(1), 0, 3, 1.0)
    move = bp.learn(mac(1), 0, 4, 2.0)
    assert move.reason == REASON_PORT_MOVE
    assert move.new_uplink == first.new_uplink
    assert not move.needs_learning_packets
    assert bp.macs[(mac(1), 0)].port_no == 4


def test_failover_moves_macs_of_dead_uplink_and_active_follows():
    bp = bridge(locals_=4)
    for i in range(4):
        bp.learn(mac(i), 0, 3 + i, 1.0)
    moves = bp.update_port(Port(1, "hv1-eth1", live=False), now=5.0)
    assert len(moves) == 2
    assert all(m.reason == REASON_FAILOVER and m.new_uplink == 2 for m in moves)
    assert all(m.needs_learning_packets for m in moves)
    assert bp.active_uplink == 2
    assert len(bp.macs_on(2)) == 4


def test_returning_uplink_takes_nothing_back_and_all_down_keeps_placement():
    bp = bridge(locals_=2)
    bp.learn(mac(1), 0, 3, 1.0)
    bp.learn(mac(2), 0, 4, 1.0)
    bp.update_port(Port(1, "hv1-eth1", live=False), 2.0)
    assert bp.update_port(Port(1, "hv1-eth1", live=True), 3.0) == []
    assert len(bp.macs_on(2)) == 2
    bp.update_port(Port(1, "hv1-eth1", live=False), 4.0)
    assert bp.update_port(Port(2, "hv1-eth2", live=False), 4.0) == []
    assert bp.active_uplink is None
    assert len(bp.macs_on(2)) == 2
    moves = bp.update_port(Port(1, "hv1-eth1", live=True), 6.0)
    assert {m.new_uplink for m in moves} == {1}
    assert bp.active_uplink == 1


def test_new_mac_while_all_uplinks_down_gets_repinned_on_return():
    bp = bridge()
    bp.update_port(Port(1, "hv1-eth1", live=False), 1.0)
    bp.update_port(Port(2, "hv1-eth2", live=False), 1.0)
    bp.learn(mac(1), 0, 3, 2.0)
    assert bp.macs[(mac(1), 0)].uplink == 1  # parked on a dead uplink: dropped by its group
    moves = bp.update_port(Port(2, "hv1-eth2", live=True), 3.0)
    assert [(m.old_uplink, m.new_uplink) for m in moves] == [(1, 2)]


def test_deleted_local_port_forgets_its_macs():
    bp = bridge()
    bp.learn(mac(1), 0, 3, 1.0)
    bp.learn(mac(2), 0, 4, 1.0)
    moves = bp.delete_port(3, 2.0)
    assert [(m.mac, m.new_uplink) for m in moves] == [(mac(1), None)]
    assert list(bp.macs) == [(mac(2), 0)]


def test_load_and_speed_drive_choice():
    bp = bridge(speeds={1: 10_000_000_000, 2: 1_000_000_000})
    bp.learn(mac(1), 0, 3, 1.0)
    bp.macs[(mac(1), 0)].tx_bps = 100e6
    # uplink 1 carries 100 MB/s of 10G, uplink 2 nothing: 2 wins on load
    assert bp.choose_uplink() == 2
    bp.learn(mac(2), 0, 4, 1.0)
    bp.macs[(mac(2), 0)].tx_bps = 50e6
    # 100e6/10G = 0.01 < 50e6/1G = 0.05: the 10G uplink is now less loaded
    assert bp.choose_uplink() == 1


def test_manual_move_validates_and_pins():
    bp = bridge()
    bp.learn(mac(1), 0, 3, 1.0)
    entry = bp.macs[(mac(1), 0)]
    other = 2 if entry.uplink == 1 else 1
    move = bp.move(mac(1), 0, other, 5.0, "manual", pin=True)
    assert move.new_uplink == other and entry.pinned and entry.since == 5.0
    with pytest.raises(NotFound):
        bp.move(mac(9), 0, 1, 5.0, "manual")
    with pytest.raises(Invalid):
        bp.move(mac(1), 0, 3, 5.0, "manual")
    bp.update_port(Port(1, "hv1-eth1", live=False), 6.0)
    with pytest.raises(Conflict, match="uplink hv1-eth1 is down"):
        bp.move(mac(1), 0, 1, 7.0, "manual")


def test_recover_adopts_valid_entries_only():
    bp = bridge()
    moves = bp.recover(
        [
            MacEntry(mac(1), 0, 3, 2, since=0.0, pinned=True),
            MacEntry(mac(2), 0, 1, 2, since=0.0),  # on an uplink: invalid
            MacEntry(mac(3), 0, 4, 9, since=0.0),  # unknown uplink
        ]
    )
    assert [m.mac for m in moves] == [mac(1)]
    assert not moves[0].needs_learning_packets
    assert bp.macs[(mac(1), 0)].pinned


def test_learn_ip_and_normalise_mac():
    bp = bridge()
    bp.learn(mac(1), 0, 3, 1.0)
    assert bp.learn_ip(mac(1), 0, "10.0.0.5", 1.0) == "new"
    assert bp.learn_ip(mac(1), 0, "10.0.0.5", 2.0) == "seen"
    assert bp.learn_ip(mac(1), 0, "0.0.0.0") == "ignored"
    assert bp.learn_ip(mac(7), 0, "10.0.0.7") == "ignored"
    assert normalise_mac("00-AA-bb-CC-dd-EE") == "00:aa:bb:cc:dd:ee"
    for bad in ("", "00:11", "zz:00:00:00:00:00", "000:00:00:00:00:00"):
        with pytest.raises(ValueError):
            normalise_mac(bad)


def test_snooped_ips_are_capped_and_age_by_last_use():
    bp = bridge()
    bp.max_ips_per_mac = 2
    bp.learn(mac(1), 0, 3, 0.0)
    assert [bp.learn_ip(mac(1), 0, f"10.0.0.{i}", float(i)) for i in (1, 2, 3)] == [
        "new",
        "new",
        "full",
    ]
    bp.learn_ip(mac(1), 0, "10.0.0.1", 50.0)
    assert bp.age_ips(60.0, 30.0) == [(mac(1), 0, "10.0.0.2")]
    assert bp.macs[(mac(1), 0)].ips == {"10.0.0.1"}
    assert bp.learn_ip(mac(1), 0, "10.0.0.3", 61.0) == "new"
    assert bp.age_ips(79.5, 30.0) == []  # 10.0.0.1 was used at 50: due at 80, not before
    assert bp.age_ips(80.0, 30.0) == [(mac(1), 0, "10.0.0.1")]


def test_an_address_belongs_to_the_mac_that_used_it_last_in_its_vlan():
    """A VM whose MAC changed leaves the old MAC behind; moving that one must not announce
    the address for it (the fabric's ARP caches would point at a MAC nobody answers)."""
    bp = bridge()
    for i, vlan in ((1, 0), (2, 0), (3, 10)):
        bp.learn(mac(i), vlan, 3, 0.0)
    assert bp.learn_ip(mac(1), 0, "10.0.0.12", 1.0) == "new"
    assert bp.learn_ip(mac(3), 10, "10.0.0.12", 1.0) == "new"  # another VLAN: its own
    assert bp.learn_ip(mac(2), 0, "10.0.0.12", 2.0) == "new"  # the VM's new MAC
    assert bp.macs[(mac(1), 0)].ips == set() and bp.macs[(mac(2), 0)].ips == {"10.0.0.12"}
    assert bp.macs[(mac(3), 10)].ips == {"10.0.0.12"}
    assert bp.learn_ip(mac(1), 0, "10.0.0.12", 3.0) == "new"  # and back again
    assert bp.macs[(mac(2), 0)].ips == set() and bp.age_ips(100.0, 30.0) == [
        (mac(1), 0, "10.0.0.12"),
        (mac(3), 10, "10.0.0.12"),
    ]
    bp.learn_ip(mac(2), 0, "10.0.0.7", 100.0)
    bp.forget(mac(2), 0)  # a forgotten MAC's address is free, with no one to take it from
    assert bp.learn_ip(mac(1), 0, "10.0.0.7", 101.0) == "new"
    assert not bp.drop_ip(mac(2), 0, "10.0.0.7") and bp.drop_ip(mac(1), 0, "10.0.0.7")


# One step of the IP-aging property: (kind, MAC index, IP index, seconds later).
_IP_STEP = st.tuples(
    st.sampled_from(["learn", "ip", "ip", "forget", "claim", "age", "age"]),
    st.integers(1, 2),
    st.integers(1, 2),
    st.sampled_from([0.0, 1.0, 10.0, 20.0]),
)


@given(st.lists(_IP_STEP, max_size=80))
def test_ip_aging_matches_a_scan_of_every_mac(steps):
    """age_ips pops due addresses from a heap; it must forget exactly what a scan of
    every MAC's last-use times would, whatever learns, refreshes, forgets and claims
    came in between."""
    bp = bridge()
    model: dict[tuple[str, int], dict[str, float]] = {}
    now, max_age = 0.0, 30.0
    for kind, m, i, later in [*steps, ("age", 1, 1, 1000.0)]:  # at the end all are due
        now += later
        key, ip = (mac(m), 0), f"10.0.0.{i}"
        if kind == "learn" and key not in bp.macs:
            bp.learn(mac(m), 0, 3, now)
            model[key] = {}
        elif kind == "ip":
            if bp.learn_ip(mac(m), 0, ip, now) in ("new", "seen"):
                for other in model.values():  # the address is this MAC's now, no one else's
                    other.pop(ip, None)
                model[key][ip] = now
        elif kind == "forget" and key in bp.macs:
            bp.forget(mac(m), 0)
            del model[key]
        elif kind == "claim" and key in bp.macs:  # as BridgeCore does for a claimed IP
            bp.drop_ip(mac(m), 0, ip)
            model[key].pop(ip, None)
        elif kind == "age":
            want = sorted(
                (k[0], k[1], a)
                for k, ips in model.items()
                for a, t in ips.items()
                if now - t >= max_age
            )
            for k, a, _ in [(k, a, 0) for k, ips in model.items() for a in list(ips)]:
                if now - model[k][a] >= max_age:
                    del model[k][a]
            assert sorted(bp.age_ips(now, max_age)) == want
        assert {k: e.ips for k, e in bp.macs.items()} == {k: set(v) for k, v in model.items()}


def test_learned_vlans_follow_learn_forget_and_recover():
    bp = bridge()
    bp.learn(mac(1), 10, 3, 1.0)
    bp.learn(mac(2), 10, 4, 1.0)
    bp.learn(mac(3), 20, 4, 1.0)
    assert bp.learned_vlans() == {10, 20}
    bp.forget(mac(3), 20)
    bp.forget(mac(1), 10)
    assert bp.learned_vlans() == {10}
    bp.recover([MacEntry(mac(4), 30, 3, 1, since=0.0)])
    assert bp.learned_vlans() == {10, 30}

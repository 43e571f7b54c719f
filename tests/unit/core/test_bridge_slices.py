"""Big batches of moves come back in slices: a failover of thousands of MACs never has
to be sent in one go, and what is deferred stays correct while other events happen."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slb_ryu.core import bridge
from slb_ryu.core import pipeline as pl
from slb_ryu.core.bridge import SLICE, BridgeCore, LearningPackets, Limits
from slb_ryu.core.placement import OFPP_LOCAL, Port
from slb_ryu.core.sync import owner

N = 2 * SLICE + 44  # three slices of learning packets, then flows


def mac(i: int) -> str:
    return f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"


def loaded() -> BridgeCore:
    core = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=0))
    ports = [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm1")]
    core.connect(ports, [], [], {}, now=0.0)
    for i in range(2 * N):
        core.packet_in(pl.KIND_SRC_MISS, 3, mac(i), 0, None, now=1.0)
    assert core.backlog == 0 and core.placement.mac_count(1) == N
    return core


def flows(out):
    return [(c, s) for o, c, s in out.mods if o == "flow"]


def mac_flows(out):
    return [(c, s) for c, s in flows(out) if owner(s) is not None]


def drain_all(core, now=3.0):
    outs = []
    while core.backlog:
        outs.append(core.next_slice(now))
        assert len(outs) < 100
    return outs


def test_failover_repins_in_slices_learning_first_then_flows():
    core = loaded()
    on1 = {e.key for e in core.placement.macs_on(1)}
    first = core.port_status("modify", Port(1, "up1", live=False), 2.0)
    downs = [e for e in core.events.events if e["type"] == "uplink-down"]
    assert downs[-1]["moved"] == N
    # the re-pin itself is sliced: the bridge-wide part now, the MACs from next_slice
    assert core.placement.mac_count(1) == N and first.moves == [] and first.learning == []
    assert mac_flows(first) == [] and core.backlog == N
    assert core.placement.active_uplink == 2  # the active uplink moved at once
    first = core.next_slice(2.0)
    assert core.placement.mac_count(1) == N - SLICE and len(first.moves) == SLICE
    assert len(first.learning) == SLICE and mac_flows(first) == []
    rest = drain_all(core)
    assert core.placement.mac_count(1) == 0 and core.placement.mac_count(2) == 2 * N
    assert all(len(o.moves) <= SLICE and len(o.learning) <= SLICE for o in rest)
    learning = first.learning + [lp for o in rest for lp in o.learning]
    assert sorted((lp.mac, lp.vlan) for lp in learning) == sorted(on1)
    assert all(lp.out_port == 2 for lp in learning)
    # learning packets all leave before the first per-MAC flow
    kinds = ["lp" if o.learning else "" for o in [first, *rest]]
    first_flows = next(i for i, o in enumerate([first, *rest]) if mac_flows(o))
    assert "lp" not in kinds[first_flows + 1 :]
    assert all(len(o.learning) + len(mac_flows(o)) > 0 for o in rest)
    # in the end the switch holds exactly what placement wants
    assert core.switch.flows == pl.desired_flows(core.placement)
    assert core.events.counters["learning-packets"] == N


def three_uplinks() -> BridgeCore:
    core = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=0))
    ports = [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2"), Port(3, "up3")]
    core.connect([*ports, Port(4, "vm1")], [], [], {}, now=0.0)
    for i in range(3 * N):
        core.packet_in(pl.KIND_SRC_MISS, 4, mac(i), 0, None, now=1.0)
    for i, entry in enumerate(core.placement.macs.values()):
        entry.tx_bps = float((i * 7919) % 13) * 1000.0  # uneven loads: order matters
    return core


def test_sliced_repin_decides_exactly_as_the_one_piece_repair():
    sliced, whole = three_uplinks(), three_uplinks()
    sliced.port_status("modify", Port(1, "up1", live=False), 2.0)
    drain_all(sliced)
    whole.placement.update_port(Port(1, "up1", live=False), 2.0)  # placement.repair at once
    assert {k: e.uplink for k, e in sliced.placement.macs.items()} == {
        k: e.uplink for k, e in whole.placement.macs.items()
    }
    assert sliced.placement.tallies() == sliced.placement.recount()


def test_uplink_back_or_all_dead_mid_failover_stops_the_repin():
    core = loaded()
    core.port_status("modify", Port(1, "up1", live=False), 2.0)
    core.next_slice(2.0)
    core.port_status("modify", Port(1, "up1", live=True), 2.1)  # back before the rest moved
    drain_all(core)
    assert core.placement.mac_count(1) == N - SLICE  # the others stayed where they were
    assert core.switch.flows == pl.desired_flows(core.placement)
    core = loaded()
    core.port_status("modify", Port(1, "up1", live=False), 2.0)
    core.port_status("modify", Port(2, "up2", live=False), 2.1)  # nowhere left to go
    drain_all(core)
    assert core.placement.mac_count(1) + core.placement.mac_count(2) == 2 * N
    assert core.switch.flows == pl.desired_flows(core.placement)


def test_small_batches_stay_inline_even_with_a_backlog():
    core = loaded()
    core.port_status("modify", Port(1, "up1", live=False), 2.0)
    assert core.backlog
    out = core.packet_in(pl.KIND_SRC_MISS, 3, "02:aa:00:00:00:01", 0, None, now=2.1)
    assert len(flows(out)) == 5  # a new MAC's flows never wait behind a failover


def test_deferred_work_follows_later_changes():
    core = loaded()
    core.port_status("modify", Port(1, "up1", live=False), 2.0)
    gone, again = core.repinning[0], core.repinning[1]  # not re-pinned yet
    core.packet_in(pl.KIND_MIGRATION, 1, gone.mac, gone.vlan, None, now=2.05, garp=True)
    assert core.entry(gone.mac, gone.vlan) is None  # migrated away meanwhile
    core.move(again.mac, again.vlan, "up2", 2.1, pin=True)  # moved by hand meanwhile
    outs = drain_all(core)
    repinned = [(m.mac, m.vlan) for o in outs for m in o.moves]
    assert gone.key not in repinned and again.key not in repinned
    assert core.entry(again.mac, again.vlan).pinned
    assert core.placement.mac_count(1) == 0
    assert core.switch.flows == pl.desired_flows(core.placement)


def test_reconnect_mid_failover_repairs_everything_and_resyncs_flows():
    core = loaded()
    core.port_status("modify", Port(1, "up1", live=False), 2.0)
    core.next_slice(2.0)
    assert core.repinning and core.pending_flows
    installed = list(core.switch.flows.values())
    groups = list(core.switch.groups.values())
    ports = [Port(OFPP_LOCAL, "hv1"), Port(1, "up1", live=False), Port(2, "up2"), Port(3, "vm1")]
    out = core.connect(ports, groups, installed, {}, now=5.0)
    assert not core.repinning and not core.pending_flows
    assert core.placement.mac_count(1) == 0
    assert len(out.learning) == N - SLICE  # the ones the connect's repair moved
    drain_all(core)
    assert core.switch.flows == pl.desired_flows(core.placement)


def test_requeued_learning_packets_are_sent_once_and_only_if_still_true():
    core = loaded()
    entry = core.placement.macs_on(2)[0]
    lp = LearningPackets(2, entry.mac, entry.vlan, ())
    core.requeue_learning(lp)
    core.requeue_learning(lp)
    core.requeue_learning(LearningPackets(1, entry.mac + "x", 0, ()))  # unknown: dropped
    out = core.next_slice(4.0)
    assert out.learning == [lp]
    assert core.announced.locked((entry.mac, entry.vlan), 4.5)


EVENTS = st.one_of(
    st.tuples(
        st.just("learn"), st.integers(0, 20), st.sampled_from([0, 10, 20]), st.sampled_from([3, 4])
    ),
    st.tuples(st.just("garp"), st.integers(0, 20), st.sampled_from([0, 10, 20])),
    st.tuples(st.just("link"), st.sampled_from([1, 2]), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from([4])),
    st.tuples(st.just("drain"), st.just(0)),
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(EVENTS, max_size=40))
def test_switch_converges_to_the_desired_tables_whatever_the_events(events):
    """Learns skip the bridge-wide sync when their VLAN is in use; deferred slices follow
    later events: once drained, what the core believes the switch holds is exactly what
    placement wants."""
    converges(events)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(EVENTS, max_size=40), size=st.integers(1, 3))
def test_sliced_repin_converges_whatever_happens_between_slices(events, size):
    """The same with failovers re-pinned `size` MACs at a time (instead of 256), so the
    re-pin is still under way when the next event comes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bridge, "SLICE", size)
        converges(events, lambda core, now: core.next_slice(now, size))


def converges(events, drain_step=None):
    core = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=0))
    ports = [
        Port(OFPP_LOCAL, "hv1"),
        Port(1, "up1"),
        Port(2, "up2"),
        Port(3, "vm1"),
        Port(4, "vm2"),
    ]
    core.connect(ports, [], [], {}, now=0.0)
    for step, event in enumerate(events):
        now = 1.0 + step * 10.0  # past the grat-ARP lock each time
        kind = event[0]
        if kind == "learn":
            core.packet_in(pl.KIND_SRC_MISS, event[3], mac(event[1]), event[2], None, now)
        elif kind == "garp":
            core.packet_in(
                pl.KIND_MIGRATION, 1, mac(event[1]), event[2], "10.0.0.1", now, garp=True
            )
        elif kind == "link":
            core.port_status("modify", Port(event[1], f"up{event[1]}", live=event[2]), now)
        elif kind == "delete":
            core.port_status("delete", Port(event[1], "vm2"), now)
        elif drain_step is not None:
            drain_step(core, now)  # one slice only
        else:
            drain_all(core, now)
    drain_all(core)
    assert not core.repinning
    assert not core.placement.stranded() or not core.placement.usable_uplinks
    assert core.switch.flows == pl.desired_flows(core.placement)
    assert core.switch.groups == {g.group_id: g for g in pl.groups(core.placement)}

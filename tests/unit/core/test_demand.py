"""Demand estimates on full uplinks: hysteresis, who counts as held back, the fair share,
and the BridgeCore wiring (port counters -> saturation -> a repaired split)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slb_ryu.core import pipeline as pl
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.demand import Saturation, carried, estimate
from slb_ryu.core.placement import OFPP_LOCAL, Port
from slb_ryu.core.rebalance import RebalanceParams, UplinkState, capacities, plan
from slb_ryu.core.sync import owner

G = 1_000_000_000
GB = G / 8  # bytes/s of 1 Gbit/s


def row(i: int, uplink: int, tx: float, rx: float = 0.0):
    return ((f"02:00:00:00:00:{i:02x}", 0), uplink, tx, rx, False, -1e9)


def test_hysteresis_enters_high_leaves_low_and_forgets_dead_uplinks():
    sat = Saturation(enter=0.9, leave=0.8)
    caps = {1: 100.0, 2: 100.0}
    sat.update({(1, 0): 89.0}, caps)
    assert sat.flags == set()
    sat.update({(1, 0): 90.0, (2, 1): 95.0}, caps)
    assert sat.flags == {(1, 0), (2, 1)}
    sat.update({(1, 0): 81.0, (2, 1): 79.0}, caps)  # between the two: stays; below: leaves
    assert sat.flags == {(1, 0)}
    sat.update({(1, 0): 99.0}, {2: 100.0})  # uplink 1 dead
    assert sat.flags == set()
    with pytest.raises(ValueError):
        Saturation(enter=0.5, leave=0.8)


def test_recent_holds_for_hold_runs_after_the_last_full_run():
    sat = Saturation(hold=2)
    caps = {1: 100.0}
    sat.update({(1, 0): 50.0}, caps)
    assert not sat.recent  # never full
    sat.update({(1, 0): 95.0}, caps)
    assert sat.flags and sat.recent
    for _ in range(2):  # the traffic stopped: two more runs with the saturated parameters
        sat.update({(1, 0): 10.0}, caps)
        assert not sat.flags and sat.recent
    sat.update({(1, 0): 10.0}, caps)
    assert not sat.recent
    sat.update({(1, 0): 95.0}, caps)
    assert sat.recent
    with pytest.raises(ValueError):
        Saturation(hold=-1)


def test_carried_is_the_larger_of_port_counters_and_mac_sums():
    caps = {1: 100.0, 2: 100.0}
    rows = [row(1, 1, 30.0, 5.0), row(2, 1, 30.0), row(3, 9, 50.0)]  # port 9: not an uplink
    got = carried(rows, caps, {(1, 0): 40.0, (2, 0): 70.0})
    assert got == {(1, 0): 60.0, (1, 1): 5.0, (2, 0): 70.0, (2, 1): 0.0}


def test_nothing_full_nothing_changes():
    caps = {1: 10 * GB, 2: GB}
    rows = [row(i, 1 + i % 2, 0.1 * GB) for i in range(6)]
    sat = Saturation()
    sat.update(carried(rows, caps, {}), caps)
    assert estimate(rows, caps, sat) == rows


def test_held_back_macs_weigh_their_fair_share_and_the_split_gets_repaired():
    # 10G + 1G, twenty VMs that want 2G each, split 10/10: both links exactly full, so the
    # carried bytes look balanced (1.0 and 1.0) and nothing moves on them.
    up = [UplinkState(1, True, 10 * G), UplinkState(2, True, G)]
    caps = capacities(up)
    rows = [row(i, 1, 1.0 * GB) for i in range(10)] + [row(i, 2, 0.1 * GB) for i in range(10, 20)]
    assert plan(up, rows, 100.0) == []
    sat = Saturation()
    sat.update(carried(rows, caps, {}), caps)
    assert sat.flags == {(1, 0), (2, 0)}
    wanted = estimate(rows, caps, sat)
    # raised on the 1G to what the luckiest held VMs get (1G each on the 10G link; more
    # than the bond's fair share 11/20 G): the same VM would get that much there
    assert [r[2] for r in wanted[10:]] == pytest.approx([1.0 * GB] * 10)
    assert [r[2] for r in wanted[:10]] == [r[2] for r in rows[:10]]  # kept
    assert [r[3] for r in wanted] == [r[3] for r in rows]  # rx not full: untouched
    moves = plan(up, wanted, 100.0)
    assert len(moves) >= 7 and all(m.old_uplink == 2 and m.new_uplink == 1 for m in moves)


def test_macs_well_below_the_water_level_got_what_they_wanted():
    caps = {1: 10 * GB, 2: GB}
    # 1G link: one VM at 0.9G (held) and one at 0.1G (satisfied: far below the level)
    rows = [row(0, 2, 0.9 * GB), row(1, 2, 0.1 * GB), row(2, 1, 1.0 * GB)]
    sat = Saturation()
    sat.update(carried(rows, caps, {}), caps)
    wanted = estimate(rows, caps, sat)
    assert wanted[1] == rows[1] and wanted[2] == rows[2]
    assert wanted[0][2] == pytest.approx(11 * GB - 0.1 * GB - 1.0 * GB)


def test_a_demand_seen_on_a_link_with_room_caps_the_guess():
    caps = {1: 10 * GB, 2: GB}
    sat = Saturation()
    # MAC 0 on the 10G with room: it wants 0.3G
    first = [row(0, 1, 0.3 * GB), row(1, 2, 1.0 * GB)]
    sat.update(carried(first, caps, {}), caps)
    estimate(first, caps, sat)  # no time: nothing learned (a rate may still be ramping)
    assert sat.known == {}
    estimate(first, caps, sat, now=100.0)
    # later it sits on the full 1G next to another: both held (TCP splits the link 0.4 /
    # 0.6), but MAC 0 is known to want 0.3G: it keeps the link's mean, MAC 1 gets the
    # bond's fair share
    later = [row(0, 2, 0.4 * GB), row(1, 2, 0.6 * GB)]
    sat.update(carried(later, caps, {}), caps)
    wanted = estimate(later, caps, sat, now=110.0)
    assert wanted[0][2] == pytest.approx(0.5 * GB)
    assert wanted[1][2] == pytest.approx(5.5 * GB)


def _ports():
    return [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm1"), Port(4, "vm2")]


def _samples(core, rates, now):
    """Per-MAC flow counters after `now` s at constant tx rates (bytes/s) by MAC."""
    out = []
    for spec in core.switch.flows.values():
        kind = pl.cookie_kind(spec.cookie)
        if kind == pl.KIND_SRC:
            mac = owner(spec)[0]
            out.append((spec, int(rates[mac] * now), now))
        elif kind == pl.KIND_DST:
            out.append((spec, 0, now))
    return out


def test_bridge_core_repairs_a_split_that_only_looks_balanced_on_full_links():
    mbit = 125_000.0
    core = BridgeCore(
        1,
        ["up*"],
        params=RebalanceParams(min_dwell=0.0),
        half_life=1.0,
        speeds={"up1": 10_000_000, "up2": 2_000_000},
    )
    core.connect(_ports(), [], [], {}, 0.0)
    macs = [f"02:00:00:00:00:0{i}" for i in range(4)]
    for i, mac in enumerate(macs):
        core.packet_in(pl.KIND_SRC_MISS, 3 + i % 2, mac, 0, None, 0.5)
    for mac, uplink in zip(macs, ("up1", "up1", "up2", "up2"), strict=True):
        core.move(mac, 0, uplink, 0.6, None)
    # both links full: up1 10 Mbit/s (5 + 5), up2 2 Mbit/s (1 + 1)
    rates = {macs[0]: 5 * mbit, macs[1]: 5 * mbit, macs[2]: mbit, macs[3]: mbit}
    for now in (1.0, 2.0, 3.0):
        core.flow_stats(_samples(core, rates, now), now)
        core.port_stats({1: (int(10 * mbit * now), 0), 2: (int(2 * mbit * now), 0)}, now)
    assert core.port_rates[(1, 0)] == pytest.approx(10 * mbit)
    core.rebalance(now=4.0)
    on = {u: len(core.placement.macs_on(u)) for u in (1, 2)}
    # max-min fair best for four greedy VMs on 10 + 2 Mbit/s: all four share the 10 (2.5
    # each; 3 + 1 would leave one at 2): the VMs on the slow link look as big as those on
    # the fast one, so both go
    assert on == {1: 4, 2: 0}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 3),
            st.floats(0.0, 2 * GB, allow_nan=False),
            st.floats(0.0, 2 * GB, allow_nan=False),
        ),
        max_size=30,
    ),
    st.sampled_from([G, 10 * G]),
)
def test_property_estimates_never_shrink_a_link_and_plan_stays_legal(items, speed):
    caps = {1: 10 * GB, 2: speed / 8}  # uplink 3: not an uplink
    rows = [row(i, u, t, r) for i, (u, t, r) in enumerate(items)]
    sat = Saturation()
    sat.update(carried(rows, caps, {}), caps)
    wanted = estimate(rows, caps, sat, now=100.0)
    assert len(wanted) == len(rows)
    for before, after in zip(rows, wanted, strict=True):
        assert after[:2] == before[:2] and after[4:] == before[4:]
        if before[1] not in caps:
            assert after == before
    for u in caps:  # per uplink and direction, the estimate never shrinks what it carries
        for d in (2, 3):
            got = sum(r[d] for r in rows if r[1] == u)
            assert sum(r[d] for r in wanted if r[1] == u) >= got * (1 - 1e-9)
    if not sat.flags:
        assert wanted == rows
    up = [UplinkState(1, True, 10 * G), UplinkState(2, True, speed)]
    for move in plan(up, wanted, 100.0):
        assert move.old_uplink in caps and move.new_uplink in caps


def test_while_a_link_is_full_no_swaps_and_a_wider_dead_band():
    from slb_ryu.core.demand import saturated_params

    base = RebalanceParams(tolerance=0.02, swap_gain=0.25, max_moves=3)
    got = saturated_params(base)
    assert got.swap_gain == float("inf") and got.tolerance == pytest.approx(0.08)
    assert got.max_moves == 3 and got.min_dwell == base.min_dwell
    assert saturated_params(RebalanceParams(tolerance=0.3)).tolerance == pytest.approx(0.3)


def _placed(i: int, uplink: int, tx: float, since: float):
    return ((f"02:00:00:00:00:{i:02x}", 0), uplink, tx, 0.0, False, since)


def test_macs_placed_during_a_spell_of_full_links_sit_out_rest_seconds():
    caps = {1: 10 * GB, 2: GB}
    sat = Saturation(hold=1)
    # MAC 0 learned long before the links filled; MAC 1 moved onto the 1G at t=100, in
    # the spell's first run (its smoothed rate still ramps afterwards)
    rows = [_placed(0, 1, 9.5 * GB, -500.0), _placed(1, 2, 0.95 * GB, 100.0)]
    sat.update(carried(rows, caps, {}), caps)
    assert sat.recent
    assert [r[4] for r in estimate(rows, caps, sat, now=100.0)] == [False, True]
    assert [r[4] for r in estimate(rows, caps, sat, now=159.0)] == [False, True]
    assert [r[4] for r in estimate(rows, caps, sat, now=160.0)] == [False, False]
    got = estimate(rows, caps, sat, now=130.0)
    assert got[1][2] >= rows[1][2] and got[0][2] == rows[0][2]  # its load still counts
    # an operator pin stays a pin; no time given: nothing is pinned for rest
    pinned = [rows[0][:4] + (True,) + rows[0][5:], rows[1]]
    assert [r[4] for r in estimate(pinned, caps, sat, now=200.0)] == [True, False]
    assert [r[4] for r in estimate(rows, caps, sat)] == [False, False]


def test_a_new_spell_starts_its_own_clock_and_quiet_links_pin_nothing():
    caps = {1: 10 * GB, 2: GB}
    sat = Saturation(hold=1)
    quiet = [_placed(0, 1, 1.0 * GB, 95.0), _placed(1, 2, 0.1 * GB, 95.0)]
    sat.update(carried(quiet, caps, {}), caps)
    assert not sat.recent
    assert estimate(quiet, caps, sat, now=100.0) == quiet  # placed 5 s ago: not our concern
    full = [_placed(0, 1, 9.5 * GB, 95.0), _placed(1, 2, 0.95 * GB, 95.0)]
    sat.update(carried(full, caps, {}), caps)
    # the spell starts at 110: placements before it keep the planner's ordinary dwell
    assert [r[4] for r in estimate(full, caps, sat, now=110.0)] == [False, False]
    for _ in range(2):  # quiet again beyond `hold`: the spell is over
        sat.update(carried(quiet, caps, {}), caps)
    assert not sat.recent and sat.episode is None
    # a second spell, from 125: the MAC moved in its first run sits out, not the other
    sat.update(carried(full, caps, {}), caps)
    assert [r[4] for r in estimate(full, caps, sat, now=125.0)] == [False, False]
    moved = [_placed(0, 1, 9.5 * GB, 95.0), _placed(1, 2, 0.95 * GB, 125.0)]
    sat.update(carried(moved, caps, {}), caps)
    assert [r[4] for r in estimate(moved, caps, sat, now=135.0)] == [False, True]

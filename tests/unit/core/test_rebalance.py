"""The pure rebalancer: invariants as unit tests and hypothesis properties (plain data only)."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slb_ryu.core.rebalance import (
    DEFAULT_PARAMS,
    MacLoad,
    PlannedMove,
    RebalanceParams,
    UplinkState,
    capacities,
    imbalance,
    normalised,
    plan,
    uplink_loads,
)

G = 1_000_000_000
MBPS = 125_000.0  # bytes/s in 1 Mbit/s
NO_DWELL = RebalanceParams(min_dwell=0.0)
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def up(*speeds: int, dead: tuple[int, ...] = ()) -> list[UplinkState]:
    return [UplinkState(i, i not in dead, s) for i, s in enumerate(speeds, start=1)]


def mac(
    i: int,
    uplink: int,
    load: float,
    pinned: bool = False,
    last_moved: float = -1e9,
    rx: float | None = None,
) -> MacLoad:
    """`load` split evenly between tx and rx, or tx = load and rx as given."""
    tx, rx = (load / 2, load / 2) if rx is None else (load, rx)
    return MacLoad(
        (f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}", i % 3), uplink, tx, rx, pinned, last_moved
    )


def apply(macs: list[MacLoad], moves: list[PlannedMove], now: float) -> list[MacLoad]:
    to = {m.key: m.new_uplink for m in moves}
    return [m._replace(uplink=to[m.key], last_moved=now) if m.key in to else m for m in macs]


def max_norm(uplinks: list[UplinkState], macs: list[MacLoad]) -> float:
    """The worst (uplink, direction) normalised load."""
    return max(normalised(uplinks, macs), default=0.0)


def leximax(uplinks: list[UplinkState], macs: list[MacLoad]) -> list[float]:
    """The objective: per-direction normalised loads, largest first (compared lexicographically)."""
    return normalised(uplinks, macs)


def run_until_stable(uplinks, macs, params=DEFAULT_PARAMS, interval=10.0, limit=500):
    """Apply plan() every `interval` s until it plans nothing; returns (macs, history)."""
    history: list[list[PlannedMove]] = []
    now = 0.0
    for _ in range(limit):
        now += interval
        moves = plan(uplinks, macs, now, params)
        history.append(moves)
        macs = apply(macs, moves, now)
        quiet = params.min_dwell / interval + 1  # runs a freshly moved MAC may sit out
        if len(history) > quiet and not any(history[-int(quiet) - 1 :]):
            return macs, history
    raise AssertionError("did not converge")


# ---- basics ------------------------------------------------------------------------


def test_nothing_to_do_without_two_live_uplinks_or_macs():
    assert plan([], [], 0.0) == []
    assert plan(up(G), [mac(1, 1, 1e6)], 100.0) == []
    assert plan(up(G, G, dead=(2,)), [mac(1, 1, 1e6), mac(2, 1, 1e6)], 100.0) == []
    assert plan(up(G, G), [], 100.0) == []


def test_moves_load_off_the_busy_uplink_and_balances():
    macs = [mac(i, 1, 10 * MBPS) for i in range(10)]
    moves = plan(up(G, G), macs, 100.0)
    assert moves and all(m.old_uplink == 1 and m.new_uplink == 2 for m in moves)
    after = apply(macs, moves, 100.0)
    assert imbalance(up(G, G), after) == pytest.approx(1.0)


def test_prefers_one_big_mac_over_many_small_ones():
    macs = [mac(0, 1, 50 * MBPS)] + [mac(i, 1, 5 * MBPS) for i in range(1, 11)]
    moves = plan(up(G, G), macs, 100.0)
    assert [m.key for m in moves] == [macs[0].key]


def test_pinned_and_dwelling_macs_stay():
    now = 1000.0
    macs = [mac(i, 1, 10 * MBPS, pinned=True) for i in range(5)]
    macs += [mac(i, 1, 10 * MBPS, last_moved=now - 29.9) for i in range(5, 10)]
    assert plan(up(G, G), macs, now) == []
    # exactly min_dwell ago is long enough
    macs[5] = mac(5, 1, 10 * MBPS, last_moved=now - 30.0)
    assert [m.key for m in plan(up(G, G), macs, now)] == [macs[5].key]


def test_dead_uplinks_are_never_destinations_and_their_macs_are_left_alone():
    uplinks = up(G, G, G, dead=(3,))
    macs = [mac(i, 1, 10 * MBPS) for i in range(10)] + [mac(i, 3, 50 * MBPS) for i in range(10, 14)]
    moves = plan(uplinks, macs, 100.0)
    assert moves
    assert all(m.new_uplink == 2 and m.old_uplink == 1 for m in moves)
    # MACs on a port that is not an uplink at all are ignored too
    assert plan(up(G, G), [mac(1, 7, 50 * MBPS), mac(2, 7, 50 * MBPS)], 100.0) == []


def test_budget_is_max_moves_or_a_share_of_what_the_gap_needs():
    # 200 equal MACs all on uplink 1: ~100 moves needed, spread over spread_runs runs
    macs = [mac(i, 1, MBPS) for i in range(200)]
    needed = len(plan(up(G, G), macs, 100.0, RebalanceParams(spread_runs=1)))
    assert 90 <= needed <= 100
    assert len(plan(up(G, G), macs, 100.0)) == -(-needed // DEFAULT_PARAMS.spread_runs)
    assert len(plan(up(G, G), macs, 100.0, RebalanceParams(spread_runs=4))) == -(-needed // 4)
    # max_burst caps it; max_moves is the floor; 0 switches rebalancing off
    assert len(plan(up(G, G), macs, 100.0, RebalanceParams(max_burst=3, max_moves=3))) == 3
    assert len(plan(up(G, G), macs, 100.0, RebalanceParams(max_moves=60, spread_runs=4))) == 60
    assert plan(up(G, G), macs, 100.0, RebalanceParams(max_moves=0)) == []
    # little to do: the floor max_moves is not a quota
    few = [mac(i, 1, MBPS) for i in range(4)]
    assert len(plan(up(G, G), few, 100.0)) == 2


def test_noise_does_not_move_anything():
    # below min_load: 10 kB/s total
    macs = [mac(i, 1, 1000.0) for i in range(10)]
    assert plan(up(G, G), macs, 100.0) == []
    # inside the dead band: 51% / 49%
    macs = [mac(i, 1, MBPS) for i in range(51)] + [mac(i, 2, MBPS) for i in range(51, 100)]
    assert plan(up(G, G), macs, 100.0) == []


def test_no_trickle_once_the_gap_is_one_macs_size():
    # Uplink 1: a 100 Mbit/s MAC (too big to move: it would overshoot) and a 200 kbit/s
    # one, which closes 1/125 of the 25 Mbit/s gap: not worth a MAC flap upstream, since
    # the gap is smaller than a MAC that could close it.
    macs = [mac(0, 1, 100 * MBPS), mac(1, 1, 0.2 * MBPS), mac(2, 2, 51 * MBPS)]
    assert plan(up(G, G), macs, 100.0) == []
    assert plan(up(G, G), macs, 100.0, RebalanceParams(min_gain=0.001, tolerance=0.0)) != []
    # A pinned 30 Mbit/s MAC and twenty 1 Mbit/s ones on uplink 1, uplink 2 idle: each
    # small MAC closes 1/20 of the gap (< min_gain), but the gap exceeds every MAC that
    # can move, so only small MACs together can close it: they move (the budget paces).
    macs = [mac(0, 1, 30 * MBPS, pinned=True)] + [mac(i, 1, MBPS) for i in range(1, 21)]
    moves = plan(up(G, G), macs, 100.0)
    assert len(moves) >= 18 and all(m.old_uplink == 1 and m.new_uplink == 2 for m in moves)
    assert max_norm(up(G, G), apply(macs, moves, 100.0)) <= 1.04 * 15 * MBPS / (G / 8)


def test_per_direction_a_receive_heavy_mac_balances_the_receive_side():
    # Uplink 1 receives 80 Mbit/s (two receivers) and sends 10; uplink 2 sends 80 (two
    # senders) and receives 10. Summed, both carry 90: balanced. Per direction each has one
    # direction at 80 against 10: one receiver and one sender should trade places.
    macs = [
        mac(0, 1, 5 * MBPS, rx=40 * MBPS),
        mac(1, 1, 5 * MBPS, rx=40 * MBPS),
        mac(2, 2, 40 * MBPS, rx=5 * MBPS),
        mac(3, 2, 40 * MBPS, rx=5 * MBPS),
    ]
    uplinks = up(G, G)
    after, _ = run_until_stable(uplinks, macs)
    assert max_norm(uplinks, after) == pytest.approx(45 * MBPS / (G / 8))
    assert imbalance(uplinks, after) == pytest.approx(1.0)
    assert imbalance(uplinks, macs) == pytest.approx(80 / 45)


def test_a_swap_when_no_single_move_helps():
    # 7 + 5 on uplink 1, 6 + 4 on uplink 2: any single move raises the maximum; swapping
    # the 5 and the 4 gives 11 / 11.
    loads = {0: (1, 7), 1: (1, 5), 2: (2, 6), 3: (2, 4)}
    macs = [mac(i, u, x * MBPS) for i, (u, x) in loads.items()]
    moves = plan(up(G, G), macs, 100.0)
    assert sorted((m.old_uplink, m.new_uplink) for m in moves) == [(1, 2), (2, 1)]
    assert imbalance(up(G, G), apply(macs, moves, 100.0)) == pytest.approx(1.0)
    for single in range(4):  # indeed no single move would do
        moved = [m._replace(uplink=3 - m.uplink) if i == single else m for i, m in enumerate(macs)]
        assert max_norm(up(G, G), moved) > max_norm(up(G, G), macs)
    assert plan(up(G, G), macs, 100.0, RebalanceParams(swap_gain=1.01)) == []


def test_few_macs_an_exchange_of_three_moves_when_no_one_or_two_help():
    # 25G + 10G + 1G, four MACs of 1.04, 4.13, 1.76 and 3.13 Gbit/s each way (none fits the
    # 1G): 25G at 0.277, 10G at 0.313. Only A and D to the 10G and C back to the 25G
    # (0.290 / 0.280) lowers the maximum; the greedy's pairwise view cannot find it.
    gbps = G / 8
    loads = {0: (1, 1.04), 1: (1, 4.13), 2: (2, 3.13), 3: (1, 1.76)}
    macs = [mac(i, u, x * gbps, rx=x * gbps) for i, (u, x) in loads.items()]
    links = up(25 * G, 10 * G, G)
    for changed in (1, 2):  # indeed no set of one or two moves lowers the maximum
        for who in itertools.combinations(range(4), changed):
            for where in itertools.product((1, 2, 3), repeat=changed):
                to = dict(zip(who, where, strict=True))
                if any(to[i] == macs[i].uplink for i in to):
                    continue
                moved = [m._replace(uplink=to.get(i, m.uplink)) for i, m in enumerate(macs)]
                assert max_norm(links, moved) >= max_norm(links, macs)
    moves = plan(links, macs, 100.0)
    assert sorted((m.key, m.new_uplink) for m in moves) == sorted(
        [(macs[0].key, 2), (macs[3].key, 2), (macs[2].key, 1)]
    )
    assert max_norm(links, apply(macs, moves, 100.0)) == pytest.approx(7.26 / 25)
    # the greedy alone (swaps off turns the small search off too) finds nothing
    assert plan(links, macs, 100.0, RebalanceParams(swap_gain=1.01)) == []


def test_few_macs_no_move_for_a_gain_under_half_the_dead_band():
    # 2 x 1G: 10.0 + 8.0 + 1.1 Mbit/s vs 8.0 + 9.0: moving the 1.1 lowers the maximum from
    # 19.1 to 18.1, 5.2%: taken. With 0.15 instead of 1.1, the best gain is 0.8% (< 1%): no.
    big = [mac(0, 1, 10 * MBPS), mac(1, 1, 8 * MBPS), mac(2, 2, 8 * MBPS), mac(3, 2, 9 * MBPS)]
    assert [m.key for m in plan(up(G, G), big + [mac(4, 1, 1.1 * MBPS)], 100.0)] == [
        mac(4, 1, 0).key
    ]
    assert plan(up(G, G), big + [mac(4, 1, 0.15 * MBPS)], 100.0) == []


def test_few_macs_nothing_within_the_dead_band_of_the_lower_bound():
    # 3 x 1G at 10.0, 9.9, 9.85 Mbit/s with a 0.1 to move: the maximum is within 2% of the
    # divisible split, so nothing moves even though moving the 0.1 would lower it.
    macs = [mac(0, 1, 9.9 * MBPS), mac(1, 1, 0.1 * MBPS), mac(2, 2, 9.9 * MBPS)]
    macs += [mac(3, 3, 9.85 * MBPS)]
    assert plan(up(G, G, G), macs, 100.0, RebalanceParams(min_load=0.0)) == []
    assert plan(up(G, G, G), macs, 100.0, RebalanceParams(min_load=0.0, tolerance=0.0))


def test_never_moves_a_mac_onto_a_slow_link_past_the_senders_level():
    # 10G at 5% utilisation, idle 1G: moving the 60 MB/s MAC would put the 1G at 48%.
    macs = [mac(0, 1, 60e6), mac(1, 1, 2.5e6)]
    moves = plan(up(10 * G, G), macs, 100.0)
    assert [m.key for m in moves] == [macs[1].key]
    assert max_norm(up(10 * G, G), apply(macs, moves, 100.0)) <= max_norm(up(10 * G, G), macs)


def test_a_single_big_mac_overloading_a_slow_link_goes_to_the_fast_one():
    # 1G at 150 MB/s (120%), 10G at 100 MB/s (8%): the 10G takes it and ends at 20%,
    # even though the pair is then far from equal (a sum of squares would refuse).
    macs = [mac(0, 2, 150e6), mac(1, 1, 100e6)]
    moves = plan(up(10 * G, G), macs, 100.0)
    assert moves == [PlannedMove(macs[0].key, 2, 1)]


def test_duplicate_keys_are_rejected():
    with pytest.raises(ValueError):
        plan(up(G, G), [mac(1, 1, MBPS), mac(1, 2, MBPS)], 100.0)


# ---- speeds ------------------------------------------------------------------------


def test_ten_gig_next_to_one_gig_gets_ten_times_the_load():
    uplinks = up(10 * G, G)
    macs = [mac(i, 2, 2 * MBPS) for i in range(300)]
    macs, _ = run_until_stable(uplinks, macs)
    loads = uplink_loads(uplinks, macs)
    assert 8.0 <= loads[1][0] / loads[2][0] <= 12.0
    assert imbalance(uplinks, macs) < 1.06


def test_unknown_speeds_are_equal_and_mixed_unknown_is_cautious():
    assert capacities(up(0, 0)) == {1: 1.0, 2: 1.0}
    assert capacities(up(10 * G, 0, G)) == {1: 10 * G / 8, 2: G / 8, 3: G / 8}
    assert capacities(up(0, G, dead=(2,))) == {1: 1.0}
    macs = [mac(i, 1, MBPS) for i in range(100)]
    macs, _ = run_until_stable(up(0, 0), macs)
    assert imbalance(up(0, 0), macs) < 1.05


def test_imbalance_definition():
    uplinks = up(10 * G, G)
    assert imbalance(uplinks, []) == 1.0
    assert imbalance(up(G, dead=(1,)), [mac(1, 1, MBPS)]) == 1.0
    assert imbalance(uplinks, [mac(1, 1, 10 * MBPS), mac(2, 2, MBPS)]) == pytest.approx(1.0)
    # all on the 10G: 10G at 11/10 units vs level 11/11
    assert imbalance(uplinks, [mac(1, 1, 11 * MBPS)]) == pytest.approx(1.1)
    # all on the 1G
    assert imbalance(uplinks, [mac(1, 2, 11 * MBPS)]) == pytest.approx(11.0)
    # dead uplinks and their MACs do not count
    assert (
        imbalance(up(G, G, G, dead=(3,)), [mac(1, 1, MBPS), mac(2, 2, MBPS), mac(3, 3, 9e9)]) == 1.0
    )


# ---- convergence, ping-pong, determinism ---------------------------------------------


def test_converges_then_plans_nothing_and_never_moves_a_mac_twice():
    rng = random.Random(7)
    uplinks = up(10 * G, 10 * G, G, G)
    macs = [mac(i, 1, rng.paretovariate(1.3) * MBPS) for i in range(500)]
    macs, history = run_until_stable(uplinks, macs)
    moved = [m.key for run in history for m in run]
    assert len(moved) == len(set(moved))  # constant loads: every MAC moved at most once
    assert imbalance(uplinks, macs) < 1.1
    assert plan(uplinks, macs, 1e6) == []


def test_no_ping_pong_with_dwell_disabled():
    macs = [mac(0, 1, 60 * MBPS), mac(1, 1, 30 * MBPS), mac(2, 2, 20 * MBPS)]
    first = plan(up(G, G), macs, 100.0, NO_DWELL)
    assert first
    after = apply(macs, first, 100.0)
    assert plan(up(G, G), after, 110.0, NO_DWELL) == []


def test_same_input_same_output_in_any_order():
    rng = random.Random(3)
    uplinks = up(10 * G, G, 10 * G)
    macs = [mac(i, rng.choice((1, 2, 3)), rng.lognormvariate(13, 2)) for i in range(400)]
    expected = plan(uplinks, macs, 100.0)
    assert expected
    for _ in range(5):
        rng.shuffle(macs)
        rng.shuffle(uplinks)
        assert plan(uplinks, macs, 100.0) == expected


# ---- properties --------------------------------------------------------------------

speeds = st.sampled_from([0, G, 10 * G, 25 * G])


@st.composite
def scenarios(draw, max_uplinks=4, max_macs=60):
    n_up = draw(st.integers(2, max_uplinks))
    uplinks = [
        UplinkState(p, draw(st.booleans()) if p > 2 else True, draw(speeds))
        for p in range(1, n_up + 1)
    ]
    if any(u.speed_bps for u in uplinks) and not all(u.speed_bps for u in uplinks):
        uplinks = [UplinkState(u.port_no, u.live, u.speed_bps or G) for u in uplinks]
    loads = st.one_of(
        st.just(0.0),
        st.floats(1.0, 1e9, allow_nan=False),
        st.sampled_from([MBPS, 10 * MBPS, 100 * MBPS]),  # many ties
    )
    n = draw(st.integers(0, max_macs))
    macs = [
        MacLoad(
            (f"02:00:00:00:00:{i:02x}", draw(st.sampled_from([0, 10]))),
            draw(st.integers(1, n_up + 1)),  # n_up + 1: a port that is not an uplink
            draw(loads),
            draw(loads),
            draw(st.booleans()) if draw(st.integers(0, 9)) == 0 else False,
            draw(st.sampled_from([-1e9, 0.0, 80.0, 95.0])),
        )
        for i in range(n)
    ]
    params = RebalanceParams(
        min_gain=draw(st.sampled_from([0.01, 0.1, 0.5])),
        min_load=draw(st.sampled_from([0.0, 12500.0])),
        min_dwell=draw(st.sampled_from([0.0, 30.0])),
        max_moves=draw(st.integers(0, 10)),
        tolerance=draw(st.sampled_from([0.0, 0.05])),
        spread_runs=draw(st.sampled_from([1, 2])),
        max_burst=draw(st.sampled_from([1, 4, 2000])),
        swap_gain=draw(st.sampled_from([0.2, 0.5, 2.0])),
    )
    return uplinks, macs, params


@PROPS
@given(scenarios())
def test_property_every_move_is_legal_and_max_never_rises(scenario):
    uplinks, macs, params = scenario
    now = 100.0
    moves = plan(uplinks, macs, now, params)
    live = {u.port_no for u in uplinks if u.live}
    by_key = {m.key: m for m in macs}
    assert len(moves) <= (max(params.max_moves, params.max_burst) if params.max_moves else 0)
    assert len({m.key for m in moves}) == len(moves)
    for move in moves:
        entry = by_key[move.key]
        assert move.old_uplink == entry.uplink and move.old_uplink in live
        assert move.new_uplink in live and move.new_uplink != move.old_uplink
        assert not entry.pinned and now - entry.last_moved >= params.min_dwell
    after = apply(macs, moves, now)
    before_max = max_norm(uplinks, macs)
    assert max_norm(uplinks, after) <= before_max * (1 + 1e-12)
    if moves:
        assert leximax(uplinks, after) < leximax(uplinks, macs)


@PROPS
@given(scenarios(), st.randoms(use_true_random=False))
def test_property_deterministic_and_order_independent(scenario, rnd):
    uplinks, macs, params = scenario
    expected = plan(uplinks, macs, 100.0, params)
    assert plan(uplinks, macs, 100.0, params) == expected
    macs, uplinks = list(macs), list(uplinks)
    rnd.shuffle(macs)
    rnd.shuffle(uplinks)
    assert plan(uplinks, macs, 100.0, params) == expected


@PROPS
@given(scenarios(max_macs=40))
def test_property_constant_loads_converge_without_ping_pong(scenario):
    """Runs every 10 s on constant loads: the objective falls every run that moves, the
    runs stop moving, and no MAC goes straight back where it came from in the next run.
    The latter holds by construction when min_dwell >= the interval (defaults: 30 s vs
    10 s); without dwell it holds for a lone move (a move's reverse raises the pair's
    maximum back), but several moves in one run can set up a reversal, so we check it
    where it is promised."""
    uplinks, macs, params = scenario
    params = dataclasses.replace(params, max_moves=max(params.max_moves, 1))
    promised = params.min_dwell >= 10.0 or params.max_moves == params.max_burst == 1
    now = 100.0
    last_from: dict[tuple[str, int], tuple[int, int]] = {}
    start_max = max_norm(uplinks, macs)
    for _ in range(200):
        now += 10.0
        moves = plan(uplinks, macs, now, params)
        if not moves and not plan(uplinks, macs, now + 1e6, params):
            break  # nothing to do even once every dwell time has run out
        if promised:
            for m in moves:
                assert last_from.get(m.key) != (m.new_uplink, m.old_uplink)
        last_from = {m.key: (m.old_uplink, m.new_uplink) for m in moves}
        after = apply(macs, moves, now)
        if moves:
            assert leximax(uplinks, after) < leximax(uplinks, macs)
        macs = after
    else:
        raise AssertionError("still moving after 200 runs of constant load")
    assert max_norm(uplinks, macs) <= start_max * (1 + 1e-12)
    assert plan(uplinks, macs, now + 1e6, params) == []


@PROPS
@given(scenarios(max_macs=40))
def test_property_a_lone_move_is_never_undone_by_the_next_run(scenario):
    uplinks, macs, params = scenario
    params = dataclasses.replace(params, max_moves=1, max_burst=1, min_dwell=0.0)
    first = plan(uplinks, macs, 100.0, params)
    if first:
        second = plan(uplinks, apply(macs, first, 100.0), 110.0, params)
        back = PlannedMove(first[0].key, first[0].new_uplink, first[0].old_uplink)
        assert back not in second

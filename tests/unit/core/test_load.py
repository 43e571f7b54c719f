"""LoadTracker: cumulative flow counters to smoothed rates, robust to counter resets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slb_ryu.core.load import LoadTracker

K = ("02:00:00:00:00:01", 0)


def test_first_sample_only_sets_the_baseline():
    t = LoadTracker()
    assert t.rates(K) == (0.0, 0.0)
    assert t.update(K, 10_000_000, 5_000_000, now=100.0) == (0.0, 0.0)
    assert K in t and len(t) == 1
    # the first rate is taken as is, no ramp-up from zero
    assert t.update(K, 10_010_000, 5_020_000, now=110.0) == (1000.0, 2000.0)
    assert t.rates(K) == (1000.0, 2000.0)


def test_smoothing_has_the_configured_half_life():
    t = LoadTracker(half_life=10.0)
    t.update(K, 0, 0, now=0.0)
    t.update(K, 10_000, 0, now=10.0)  # 1000 B/s
    tx, _ = t.update(K, 10_000, 0, now=20.0)  # silent for one half-life
    assert tx == pytest.approx(500.0)
    tx, _ = t.update(K, 10_000, 0, now=40.0)  # two more
    assert tx == pytest.approx(125.0)


def test_irregular_intervals_give_the_same_average():
    regular, irregular = LoadTracker(half_life=10.0), LoadTracker(half_life=10.0)
    for tr in (regular, irregular):
        tr.update(K, 0, 0, now=0.0)
        tr.update(K, 40_000, 0, now=10.0)  # 4000 B/s
    # then a constant 1000 B/s for 30 s, polled every 10 s or at 3, 4, 21 and 2 s
    for now in (20.0, 30.0, 40.0):
        regular.update(K, 40_000 + int((now - 10.0) * 1000), 0, now=now)
    for now in (13.0, 17.0, 38.0, 40.0):
        irregular.update(K, 40_000 + int((now - 10.0) * 1000), 0, now=now)
    assert irregular.rates(K)[0] == pytest.approx(regular.rates(K)[0])
    assert regular.rates(K)[0] == pytest.approx(1000.0 + 3000.0 / 8)


def test_counter_going_down_rebaselines_without_a_negative_rate():
    t = LoadTracker()
    t.update(K, 1_000_000, 1_000_000, now=0.0)
    t.update(K, 1_010_000, 1_010_000, now=10.0)  # 1000 B/s both ways
    # tx flow re-installed (counter back near 0), rx fine
    tx, rx = t.update(K, 500, 1_020_000, now=20.0)
    assert tx == 1000.0  # sample skipped: average unchanged
    assert rx == 1000.0
    tx, _ = t.update(K, 10_500, 1_030_000, now=30.0)  # measured from the new baseline
    assert tx == pytest.approx(1000.0)


def test_flow_age_going_down_rebaselines_even_if_the_counter_grew():
    t = LoadTracker()
    t.update(K, 1000, 0, now=0.0, tx_age=500.0)
    t.update(K, 11_000, 0, now=10.0, tx_age=510.0)  # 1000 B/s
    # re-installed 2 s ago and already past the old counter: still not a rate of 99 MB/s
    tx, _ = t.update(K, 1_000_000_000, 0, now=20.0, tx_age=2.0)
    assert tx == 1000.0
    tx, _ = t.update(K, 1_000_010_000, 0, now=30.0, tx_age=12.0)
    assert tx == pytest.approx(1000.0)


def test_flow_younger_than_the_poll_interval_was_reinstalled():
    t = LoadTracker()
    t.update(K, 0, 0, now=0.0, rx_age=5.0)
    t.update(K, 0, 10_000, now=10.0, rx_age=15.0)
    # age grew (15 -> 40) but by less than the 50 s that passed: re-installed meanwhile
    _, rx = t.update(K, 0, 90_000_000, now=60.0, rx_age=40.0)
    assert rx == 1000.0
    # normal jitter between switch duration and our clock is tolerated
    _, rx = t.update(K, 0, 90_010_000, now=70.0, rx_age=49.5)
    assert rx == pytest.approx(1000.0)


def test_absurd_rates_are_treated_as_a_reset():
    t = LoadTracker(max_rate=1e6)
    t.update(K, 0, 0, now=0.0)
    t.update(K, 10_000, 0, now=10.0)
    tx, _ = t.update(K, 10_000 + 10**12, 0, now=20.0)
    assert tx == 1000.0
    tx, _ = t.update(K, 20_000 + 10**12, 0, now=30.0)
    assert tx == pytest.approx(1000.0)


def test_duplicate_and_backwards_timestamps():
    t = LoadTracker()
    t.update(K, 0, 0, now=10.0)
    # same timestamp: ignored, the bytes are counted on the next poll
    assert t.update(K, 5_000, 0, now=10.0) == (0.0, 0.0)
    assert t.update(K, 10_000, 0, now=20.0) == (1000.0, 0.0)
    # clock went backwards: re-baselined, nothing computed
    assert t.update(K, 99_000, 0, now=5.0) == (1000.0, 0.0)
    assert t.update(K, 109_000, 0, now=15.0)[0] == pytest.approx(1000.0)


def test_forget_and_clear():
    t = LoadTracker()
    t.update(K, 0, 0, now=0.0)
    t.update(K, 10_000, 0, now=10.0)
    t.forget(K)
    t.forget(K)  # idempotent
    assert t.rates(K) == (0.0, 0.0) and K not in t
    assert t.update(K, 10_000_000, 0, now=20.0) == (0.0, 0.0)  # a new baseline
    t.clear()
    assert len(t) == 0


def test_bad_configuration():
    with pytest.raises(ValueError):
        LoadTracker(half_life=0)
    with pytest.raises(ValueError):
        LoadTracker(max_rate=-1)


samples = st.lists(
    st.tuples(
        st.integers(0, 2**64 - 1),  # tx counter
        st.integers(0, 2**64 - 1),  # rx counter
        st.floats(-5.0, 60.0, allow_nan=False),  # time step (may go backwards)
        st.one_of(st.none(), st.floats(0.0, 1e6, allow_nan=False)),  # flow age
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(samples, st.floats(0.5, 60.0))
def test_property_rates_never_negative_or_absurd(seq, half_life):
    t = LoadTracker(half_life=half_life, max_rate=1e9)
    now = 0.0
    for tx, rx, step, age in seq:
        now += step
        for rate in t.update(K, tx, rx, now, tx_age=age, rx_age=age):
            assert 0.0 <= rate <= 1e9


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**7), st.floats(0.5, 30.0)), min_size=2, max_size=30))
def test_property_average_stays_within_the_observed_rates(seq):
    t = LoadTracker()
    counter, now, seen = 0, 0.0, []
    t.update(K, counter, 0, now)
    for nbytes, step in seq:
        counter += nbytes
        now += step
        seen.append(nbytes / step)
        tx, _ = t.update(K, counter, 0, now)
        assert min(seen) * (1 - 1e-9) <= tx <= max(seen) * (1 + 1e-9)

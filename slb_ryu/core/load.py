"""Per-(MAC, VLAN) traffic rates from cumulative OpenFlow flow counters. No Ryu import.

The controller polls flow statistics for its per-MAC flows: the source flow's byte count
is what the MAC transmitted, the destination flow's what it received. `LoadTracker`
turns those ever-growing counters into smoothed bytes/s.

Smoothing is an exponentially weighted moving average with a half-life in seconds (default
10 s). That mirrors Open vSwitch, which halves every bucket's byte count after each
rebalance run (default every 10 s): old traffic loses half its weight per interval. It is
time-aware, so irregular polling gives the same result as regular polling: a sample
covering dt seconds at rate r moves the average by a fraction 1 - 2**(-dt / half_life)
toward r.

A counter is only trusted when it continues the one seen before. It is re-baselined,
and that sample skipped for that direction (the smoothed rate is kept as it was), when
- the counter went down (flow deleted and re-added, switch restarted);
- the flow's duration (age) went down, or grew by clearly less than the time that passed:
  the flow was re-installed since the last poll, so the difference is meaningless even if
  the new counter happens to be larger;
- the clock went backwards;
- the implied rate exceeds `max_rate` (garbage, or a counter from another flow).
So no sample ever yields a negative or absurd rate. The first sample of a key only sets
the baseline; the first rate computed becomes the average as is (no ramp-up from 0).
"""

from __future__ import annotations

import math
from collections.abc import Hashable


class _Counter:
    """One direction of one key: last raw sample and the smoothed rate."""

    __slots__ = ("value", "time", "age", "rate")

    def __init__(self, value: int, time: float, age: float | None, rate: float | None) -> None:
        self.value = value
        self.time = time
        self.age = age
        self.rate = rate  # None until a first rate could be computed


class LoadTracker:
    """Smoothed transmit/receive rates per key from cumulative byte counters."""

    def __init__(
        self, half_life: float = 10.0, max_rate: float = 5e10, age_slack: float = 1.0
    ) -> None:
        """`max_rate` bytes/s (default 400 Gbit/s) bounds a believable rate; `age_slack`
        seconds absorbs the jitter between the switch's flow duration and our clock."""
        if not half_life > 0:
            raise ValueError("half_life must be > 0")
        if not max_rate > 0:
            raise ValueError("max_rate must be > 0")
        self.half_life = float(half_life)
        self._decay = math.log(2.0) / self.half_life
        self.max_rate = float(max_rate)
        self.age_slack = float(age_slack)
        self._state: dict[Hashable, list[_Counter | None]] = {}

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._state

    def update(
        self,
        key: Hashable,
        tx_bytes: int,
        rx_bytes: int,
        now: float,
        tx_age: float | None = None,
        rx_age: float | None = None,
    ) -> tuple[float, float]:
        """Feed the cumulative counters of `key` at time `now`; returns (tx_Bps, rx_Bps)."""
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [None, None]
        state[0] = self._step(state[0], tx_bytes, now, tx_age)
        state[1] = self._step(state[1], rx_bytes, now, rx_age)
        return _rate(state[0]), _rate(state[1])

    def rates(self, key: Hashable) -> tuple[float, float]:
        """Smoothed (tx_Bps, rx_Bps) of `key`; (0.0, 0.0) when unknown or not yet measured."""
        state = self._state.get(key)
        if state is None:
            return 0.0, 0.0
        return _rate(state[0]), _rate(state[1])

    def forget(self, key: Hashable) -> None:
        """Drop a key (MAC forgotten or flow gone); its next sample is a new baseline."""
        self._state.pop(key, None)

    def clear(self) -> None:
        """Drop everything (e.g. the switch went away for good)."""
        self._state.clear()

    def _step(self, prev: _Counter | None, value: int, now: float, age: float | None) -> _Counter:
        """Fold one sample into `prev` (updated in place: this runs for every flow, every poll)."""
        if prev is None:
            return _Counter(value, now, age, None)
        dt = now - prev.time
        if dt < 0.0 or value < prev.value or self._reinstalled(prev, age, dt):
            pass  # reset: re-baseline below, keep the average
        elif dt == 0.0:
            return prev  # duplicate poll: keep the older baseline, bytes count next time
        else:
            rate = (value - prev.value) / dt
            if rate <= self.max_rate:  # else: garbage, treated as a reset
                if prev.rate is None:
                    prev.rate = rate
                else:
                    weight = -math.expm1(-dt * self._decay)  # 1 - 2**(-dt / half_life)
                    prev.rate += weight * (rate - prev.rate)
        prev.value, prev.time, prev.age = value, now, age
        return prev

    def _reinstalled(self, prev: _Counter, age: float | None, dt: float) -> bool:
        """True when the flow's duration says it is not the flow we measured last time."""
        if age is None or prev.age is None:
            return False
        return age < prev.age or age + self.age_slack < prev.age + dt


def _rate(counter: _Counter | None) -> float:
    if counter is None or counter.rate is None:
        return 0.0
    return counter.rate

"""Speed-aware, per-MAC rebalancing of a bridge's uplinks. Pure: no Ryu, no clock, no state.

`plan()` takes the uplinks, every MAC's smoothed load and placement, and the time, and
returns the moves to make. The caller applies them (flows + learning packets) and calls
again next interval with fresh loads.

Objective. Uplink u carries L_u bytes/s over capacity C_u (bytes/s): its normalised load
is n_u = L_u / C_u, so a 10G uplink next to a 1G one is balanced when it carries 10x the
bytes. We minimise the maximum n_u, then the second largest, and so on (the vector of
n_u sorted in descending order, compared lexicographically: "leximax"). The maximum is
what users feel (the busiest link is where queues and drops are); the lexicographic
tie-break lets a run improve the other uplinks when the busiest one cannot be helped
(one giant or pinned MAC), which the bare maximum would ignore. A capacity-weighted sum
of squares was tried and rejected: it would rather leave one overloaded 1G uplink at
133% of the balanced level than put its MAC on a 10G uplink at 110%.

Algorithm (greedy, at most `max_moves` per run). Repeatedly take the sender: the live
uplink with the highest n that still has a useful move. For each live receiver r below
it, x* = (n_s - n_r) / (1/C_s + 1/C_r) is the transfer that would equalise the pair, and
moving x lowers the pair's maximum by drop(x) = min(x / C_s, n_s - n_r - x / C_r), which
peaks at x*. Among the sender's movable MACs take the one (and the receiver) with the
largest drop, provided

- drop(x) > 0, i.e. n_r + x / C_r < n_s: the receiver ends below where the sender
  started, so the maximum never rises and the sorted load vector strictly decreases;
- drop(x) >= min_gain * drop(x*): the pair's excess shrinks by at least `min_gain`
  (OVS's "improvement >= 10% of the deviation from the ideal split"), except that a MAC
  carrying >= min_load that does not overshoot (x <= x*) is always worth it: with many
  small MACs no single move can close 10% of a large gap, and the per-run budget
  `max_moves`, not a gain threshold, must be what paces such a rebalance (OVS's per-bucket
  rule stalls there: a returning uplink barely gets load back);

ties go to the receiver left least loaded, then the lower port number. Gates against
chasing noise: no sender below `min_load`; no pair whose gap is under `tolerance` of the
sender's n or whose x* is under min_load / 2 (equal speeds: the sender carries less than
min_load more than the receiver; OVS's 100000-byte rule). A MAC moves at most once per
run.

Guarantees. Every move strictly decreases the sorted load vector, by an amount bounded
away from zero, so with constant loads repeated runs converge and then plan nothing, and
no sequence of moves can cycle. A lone move is never undone by the next run (its reverse
would raise the pair's maximum back to where it was); after several moves in one run, a
later one can make an earlier one worth undoing, and what rules that out is `min_dwell`
>= the rebalance interval (defaults 30 s vs 10 s): a moved MAC sits out the next runs.
The dwell time also bounds upstream MAC flapping while loads drift.

Not our concern: MACs on dead uplinks (or on ports not in `uplinks`). Failover re-pins
them; until then they are ignored entirely: neither moved nor counted as load anywhere.

Deterministic: the result depends only on the input values, not on the order of `macs`
or `uplinks` (loads are summed with `math.fsum`, ties break on MAC key and port number).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class UplinkState:
    port_no: int
    live: bool
    speed_bps: int  # link speed in bits/s; 0 = unknown


@dataclass(frozen=True)
class MacLoad:
    key: tuple[str, int]  # (mac, vlan)
    uplink: int  # port_no it is pinned to now
    load: float  # smoothed bytes/s, both directions (tx + rx)
    pinned: bool  # operator-pinned: never moved
    last_moved: float  # time (s) of its last placement change


@dataclass(frozen=True)
class RebalanceParams:
    # A move must cut the pair's normalised excess by at least this fraction (OVS: 10% of
    # the deviation from the ideal split), unless the MAC carries >= min_load and does not
    # overshoot (see the module docstring: many small MACs).
    min_gain: float = 0.10
    # bytes/s (100 kbit/s): an uplink carrying less is noise, nothing moves off it; pairs
    # closer than this (in bytes) are left alone.
    min_load: float = 12500.0
    # s a MAC stays put after any placement change (bounds upstream MAC flapping).
    min_dwell: float = 30.0
    # moves per run.
    max_moves: int = 8
    # Dead band: uplinks whose normalised loads differ by less than this fraction of the
    # sender's are balanced enough (OVS: ~3% of the receiver's). Lower: closer balance, more
    # moves; bench/algorithm.py shows the trade-off.
    tolerance: float = 0.04


DEFAULT_PARAMS = RebalanceParams()


@dataclass(frozen=True)
class PlannedMove:
    key: tuple[str, int]
    old_uplink: int
    new_uplink: int


def capacities(uplinks: Sequence[UplinkState]) -> dict[int, float]:
    """Capacity (bytes/s) of each live uplink, by port number, in port order.

    All speeds unknown: every uplink weighs 1.0 (loads are then compared in raw bytes/s).
    Some unknown: they get the smallest known speed, the cautious guess (overloading a
    link we know nothing about is worse than under-using it).
    """
    live = sorted((u for u in uplinks if u.live), key=lambda u: u.port_no)
    known = [u.speed_bps for u in live if u.speed_bps > 0]
    if not known:
        return {u.port_no: 1.0 for u in live}
    fallback = min(known)
    return {u.port_no: (u.speed_bps if u.speed_bps > 0 else fallback) / 8.0 for u in live}


def _clean(load: float) -> float:
    """Negative or NaN loads count as 0 (a broken estimate must not attract traffic)."""
    return load if load > 0.0 else 0.0


def uplink_loads(uplinks: Sequence[UplinkState], macs: Sequence[MacLoad]) -> dict[int, float]:
    """Bytes/s carried by each live uplink: the sum of the loads of the MACs pinned to it."""
    parts: dict[int, list[float]] = {p: [] for p in capacities(uplinks)}
    for m in macs:
        bucket = parts.get(m.uplink)
        if bucket is not None:
            bucket.append(_clean(m.load))
    return {p: math.fsum(v) for p, v in parts.items()}


def imbalance(uplinks: Sequence[UplinkState], macs: Sequence[MacLoad]) -> float:
    """Max normalised live-uplink load over the balanced level (1.0 = perfect).

    The balanced level is sum(L) / sum(C), the normalised load every live uplink would
    carry if load were divisible, i.e. the capacity-weighted mean of the n_u (a 10G at
    0.5 next to an idle 1G is *not* perfect). With no live uplink or no load there is
    nothing to balance: 1.0. MACs on dead uplinks are not counted.
    """
    cap = capacities(uplinks)
    loads = uplink_loads(uplinks, macs)
    total = math.fsum(loads.values())
    if not cap or total <= 0.0:
        return 1.0
    level = total / math.fsum(cap.values())
    return max(loads[p] / cap[p] for p in cap) / level


class _Pool:
    """The movable MACs of one uplink, sorted by (load, key) for closest-load lookups."""

    __slots__ = ("loads", "keys")

    def __init__(self, items: list[tuple[float, tuple[str, int]]]) -> None:
        items.sort()
        self.loads = [x for x, _ in items]
        self.keys = [k for _, k in items]

    def around(self, target: float) -> tuple[int, ...]:
        """Indexes of the largest load <= target and the smallest >= target (if any)."""
        i = bisect.bisect_right(self.loads, target)
        j = bisect.bisect_left(self.loads, target)
        below = (i - 1,) if i > 0 else ()
        above = (j,) if j < len(self.loads) and j != i - 1 else ()
        return below + above

    def pop(self, i: int) -> tuple[float, tuple[str, int]]:
        return self.loads.pop(i), self.keys.pop(i)


def plan(
    uplinks: Sequence[UplinkState],
    macs: Sequence[MacLoad],
    now: float,
    params: RebalanceParams = DEFAULT_PARAMS,
) -> list[PlannedMove]:
    """The moves of one rebalance run, in the order they were chosen.

    Raises ValueError when a (MAC, VLAN) key appears twice (the result would otherwise
    depend on input order).
    """
    cap = capacities(uplinks)
    if len(cap) < 2 or params.max_moves <= 0:
        return []
    if len({m.key for m in macs}) != len(macs):
        raise ValueError("duplicate (MAC, VLAN) key")
    parts: dict[int, list[float]] = {p: [] for p in cap}
    movable: dict[int, list[tuple[float, tuple[str, int]]]] = {p: [] for p in cap}
    min_dwell = params.min_dwell
    for m in macs:  # the hot loop: 10,000 MACs
        bucket = parts.get(m.uplink)
        if bucket is None:
            continue  # on a dead or unknown uplink: failover's business
        load = m.load
        if not load > 0.0:
            bucket.append(0.0)  # negative or NaN: a broken estimate must not attract traffic
            continue
        bucket.append(load)
        if not m.pinned and now - m.last_moved >= min_dwell:
            movable[m.uplink].append((load, m.key))
    load_of = {p: math.fsum(v) for p, v in parts.items()}
    pools = {p: _Pool(items) for p, items in movable.items()}

    moves: list[PlannedMove] = []
    exhausted: set[int] = set()
    while len(moves) < params.max_moves:
        senders = [p for p in cap if p not in exhausted]
        if not senders:
            break
        src = max(senders, key=lambda p: (load_of[p] / cap[p], -p))
        choice = _best_move(src, cap, load_of, pools[src], params)
        if choice is None:
            exhausted.add(src)  # nothing useful leaves it this run
            continue
        dst, index = choice
        x, key = pools[src].pop(index)  # moved once per run: not added to dst's pool
        load_of[src] -= x
        load_of[dst] += x
        moves.append(PlannedMove(key, src, dst))
    return moves


def _best_move(
    src: int,
    cap: dict[int, float],
    load_of: dict[int, float],
    pool: _Pool,
    params: RebalanceParams,
) -> tuple[int, int] | None:
    """(receiver, pool index) of the move off `src` that lowers the pair maximum most."""
    if load_of[src] < params.min_load or not pool.loads:
        return None
    c_src = cap[src]
    n_src = load_of[src] / c_src
    best: tuple[float, float, int, int] | None = None  # (-drop, receiver's new n, dst, index)
    for dst in cap:
        if dst == src:
            continue
        c_dst = cap[dst]
        n_dst = load_of[dst] / c_dst
        gap = n_src - n_dst
        if gap <= 0.0 or gap < params.tolerance * n_src:
            continue
        ideal = gap / (1.0 / c_src + 1.0 / c_dst)  # bytes/s that would equalise the pair
        if ideal < params.min_load / 2.0:
            continue
        need = params.min_gain * ideal / c_src  # min_gain of the best possible drop
        # the drop peaks at x*: the best candidates are the loads just below and above it
        for index in pool.around(ideal):
            x = pool.loads[index]
            drop = min(x / c_src, gap - x / c_dst)
            if drop <= 0.0:
                continue
            if drop < need and not (params.min_load <= x <= ideal):
                continue
            candidate = (-drop, n_dst + x / c_dst, dst, index)
            if best is None or candidate < best:
                best = candidate
    return None if best is None else (best[2], best[3])

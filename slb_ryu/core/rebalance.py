"""Speed-aware, per-MAC, per-direction rebalancing of a bridge's uplinks. Pure: no Ryu, no
clock, no state.

`plan()` takes the uplinks, every MAC's smoothed (tx, rx) load and placement, and the time,
and returns the moves to make. The caller applies them (flows + learning packets) and calls
again next interval with fresh loads.

Objective. Links are full duplex: uplink u carries T_u bytes/s out and R_u in over capacity
C_u, and the two directions queue and drop separately, so its loads are the two values
T_u / C_u and R_u / C_u (a 10G next to a 1G is balanced when it carries 10x the bytes each
way). We minimise the largest of these 2 x uplinks values, then the second largest, and so
on ("leximax": the sorted vector compared lexicographically). The maximum is what users
feel; the tie-break lets a run improve other uplinks when the busiest cannot be helped
(one giant or pinned MAC). Summing tx and rx, as we once did, hides a link full in one
direction behind an idle other direction.

Algorithm (greedy). Repeatedly take the sender s: the live uplink with the highest
n_s = max(T_s, R_s) / C_s that still has a useful move; its bottleneck direction b is the
one that attains n_s. For each live receiver r, x* = (n_s - n_rb) / (1/C_s + 1/C_r) is the
transfer in direction b that would equalise the pair. Moving a MAC lowers the level V = n_s
to the largest of the four new values (both directions of s and r): drop = n_s - that.
Candidates are the sender's MACs whose b-load is nearest x*; the one (and receiver) with
the largest drop is taken, provided

- drop > 0: every changed value ends below n_s, so the maximum never rises and the sorted
  vector strictly decreases (the entries >= n_s lose one, none above n_s changes);
- drop >= min_gain * (n_s - L), L the best the pair could reach (its divisible split in
  the worse direction, or its biggest MAC on the faster link): the move closes at least
  `min_gain` of what the pair can gain (OVS: 10% of the ideal delta), or
  the gap is large and made of small MACs: the MAC carries >= min_load, does not overshoot
  (x_b <= x*), and x* exceeds every movable MAC on the sender. Many small MACs can then
  only close the gap together, and the budget paces them. Once the gap is one MAC's own
  size this exception ends, so no trickle of near-useless moves chases drift forever.

No single move helps: a swap (a MAC of s for a smaller one of r) is tried, taken only when
it closes at least `swap_gain` of the pair's gap (it costs two MAC moves), under the same
drop > 0 rule. Ties go to the receiver left least loaded, then the lower port number.
Gates against chasing noise: no sender whose bottleneck carries less than `min_load`; no
pair whose gap, or whose possible gain n_s - L, is under `tolerance` of n_s (the dead
band, 2%), or whose x* is under min_load / 2 (OVS's 100000-byte rule). A MAC moves at
most once per run.

Few MACs (at most SMALL_MACS = 16 movable, swaps allowed): the greedy's pairwise view is
replaced by a small search. It takes the set of one, two or three moves (a swap is two) that
lowers the sorted vector most, a larger set only when it beats the best smaller one by a
clear margin (3% of the maximum), and repeats with the MACs not yet moved, up to
max(max_moves, max_burst) moves (spread_runs does not apply). Gates: the
maximum is more than `tolerance` above the lower bound max(total_d / sum C, largest MAC_d /
fastest C) (a dead band against what any placement could reach, not pairwise: three or four
uplinks' pairwise bands no longer add up); a run's first set lowers the first entry it
changes by at least half the dead band (1% of the maximum) and, if that entry is the
maximum, by `min_gain` of its distance to the bound; later sets in the same run by 3x the
dead band (a returning uplink still gets its share in one run, drift gets one set). Three-
uplink exchanges of four MACs need three moves (tests: 25G + 10G + 1G); with drifting loads
the greedy reached 1.05-1.06 of the per-round optimum on 4 MACs where this reaches
1.01-1.03 (bench/README.md). Cost: at most 16 x 3 single moves and their pairs, triples
only up to 24 singles: a few ms.

Budget. The greedy is run to its end (a MAC moves once, so at most one move per MAC); the
run keeps the first max(max_moves, ceil(N / spread_runs)) of its N moves, at most
`max_burst` (defaults 8, 1, 1000). Drifting loads plan a move or two; a returning uplink
at 10,000 MACs needs hundreds and gets them in one run, not 20 minutes of 8 per run (each
moved MAC is one upstream flap however the moves are spread; spreading only delays, and
since each run re-plans what is left, spread_runs 2 halves the rest each run). The greedy's
moves are its most useful first (largest drop), so a truncated run does the big ones.

Guarantees. Every move, swap and small-search set strictly decreases the sorted load
vector, by an amount bounded away from zero (float noise, 1e-9 of the maximum, is no gain),
so with constant loads repeated runs converge and then plan nothing, and no sequence of
moves can cycle. A lone move is never undone by the next run (its reverse would raise the
pair's level back to where it was); after several moves in one run, a later one can make
an earlier one worth undoing, and what rules that out is `min_dwell` >= the rebalance
interval (defaults 30 s vs 10 s): a moved MAC sits out the next runs. The dwell time also
bounds upstream MAC flapping while loads drift.

Not our concern: MACs on dead uplinks (or on ports not in `uplinks`). Failover re-pins
them; until then they are ignored entirely: neither moved nor counted as load anywhere.

Deterministic: the result depends only on the input values, not on the order of `macs`
or `uplinks` (loads are summed with `math.fsum`, ties break on MAC key and port number).

Input is plain tuples (`MacLoad` is a NamedTuple, so `(key, uplink, tx, rx, pinned,
last_moved)` works as is): building 10,000 frozen dataclasses cost twice the plan itself.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import NamedTuple

Key = tuple[str, int]
# The small search (`_small`): used with at most SMALL_MACS movable MACs (and swaps allowed:
# swap_gain <= 1); sets of three moves are tried up to TRIPLE_BELOW candidate single moves.
# Gains in units of the dead band (tolerance x the maximum): a run's first set must lower
# the first entry it changes by SMALL_GAIN, a later set in the same run by SMALL_LATER (a
# large rebalance still finishes in one run; drift gets one set, not a chain of small
# ones), and a larger set must beat a smaller one by SMALL_MORE x SMALL_GAIN.
SMALL_MACS = 16
TRIPLE_BELOW = 24
SMALL_GAIN = 0.5
SMALL_LATER = 3.0
SMALL_MORE = 3.0


class UplinkState(NamedTuple):
    port_no: int
    live: bool
    speed_bps: int  # link speed in bits/s; 0 = unknown


class MacLoad(NamedTuple):
    key: Key  # (mac, vlan)
    uplink: int  # port_no it is pinned to now
    tx: float  # smoothed bytes/s the MAC sends (leaves through its uplink)
    rx: float  # smoothed bytes/s it receives (arrives through its uplink)
    pinned: bool  # operator-pinned: never moved
    last_moved: float  # time (s) of its last placement change


MacRow = tuple[Key, int, float, float, bool, float]  # a MacLoad as a plain tuple: same fields
Macs = Sequence[MacLoad] | Sequence[MacRow]


@dataclass(frozen=True)
class RebalanceParams:
    # A move must close this fraction of the pair's gap (OVS: 10% of the deviation from the
    # ideal split), unless the gap is made of MACs smaller than it (module docstring).
    min_gain: float = 0.10
    # bytes/s (100 kbit/s): an uplink carrying less is noise, nothing moves off it; pairs
    # closer than this (in bytes) are left alone.
    min_load: float = 12500.0
    # s a MAC stays put after any placement change (bounds upstream MAC flapping).
    min_dwell: float = 30.0
    # moves per run when little needs doing (the floor of the budget).
    max_moves: int = 8
    # Dead band: uplinks whose normalised loads differ by less than this fraction of the
    # sender's are balanced enough (OVS: ~3% of the receiver's).
    tolerance: float = 0.02
    # A large rebalance (N moves) is spread over this many runs: ceil(N / spread_runs) per
    # run (each run re-plans what is left, so 2 halves the rest each time: slow to finish).
    spread_runs: int = 1
    # Hard ceiling of moves per run, whatever the gap.
    max_burst: int = 1000
    # A swap (two MAC moves) must close at least this fraction of the pair's gap.
    swap_gain: float = 0.25


DEFAULT_PARAMS = RebalanceParams()


class PlannedMove(NamedTuple):
    key: Key
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


def uplink_loads(uplinks: Sequence[UplinkState], macs: Macs) -> dict[int, tuple[float, float]]:
    """(tx, rx) bytes/s carried by each live uplink: sums over the MACs pinned to it."""
    parts: dict[int, tuple[list[float], list[float]]] = {p: ([], []) for p in capacities(uplinks)}
    for m in macs:
        bucket = parts.get(m[1])  # uplink (plain tuples too: no attribute access)
        if bucket is not None:
            bucket[0].append(_clean(m[2]))
            bucket[1].append(_clean(m[3]))
    return {p: (math.fsum(t), math.fsum(r)) for p, (t, r) in parts.items()}


def normalised(uplinks: Sequence[UplinkState], macs: Macs) -> list[float]:
    """The objective: every live (uplink, direction) load / capacity, largest first."""
    cap = capacities(uplinks)
    loads = uplink_loads(uplinks, macs)
    return sorted((x / cap[p] for p, pair in loads.items() for x in pair), reverse=True)


def imbalance(uplinks: Sequence[UplinkState], macs: Macs) -> float:
    """Worst (uplink, direction) normalised load over the balanced level (1.0 = perfect).

    The balanced level of a direction is its total / sum(C), what every live uplink would
    carry if load were divisible; the figure is max over u, d of (L_ud / C_u) over the
    larger of the two levels. With no live uplink or no load: 1.0. MACs on dead uplinks
    are not counted. (The exact optimum is often above 1.0: bench/optimum.py.)
    """
    cap = capacities(uplinks)
    if not cap:
        return 1.0
    loads = uplink_loads(uplinks, macs)
    total_cap = math.fsum(cap.values())
    level = max(
        (math.fsum(pair[d] for pair in loads.values()) / total_cap for d in (0, 1)), default=0.0
    )
    if level <= 0.0:
        return 1.0
    return max(max(t, r) / cap[p] for p, (t, r) in loads.items()) / level


_first = itemgetter(0)


class _Pool:
    """The movable MACs of one uplink, sorted by one direction's load, for nearest lookups."""

    __slots__ = ("loads", "keys")

    def __init__(self, items: list[tuple[float, Key]]) -> None:
        items.sort(key=_first)  # float compares only (3x faster than whole tuples) ...
        i, n = 0, len(items)
        while i < n:  # ... then equal loads by key, so input order never matters
            j = i + 1
            while j < n and items[j][0] == items[i][0]:
                j += 1
            if j - i > 1:
                items[i:j] = sorted(items[i:j])
            i = j
        self.loads = [x for x, _ in items]
        self.keys = [k for _, k in items]

    def around(self, target: float, width: int = 3) -> range:
        """Indexes of the `width` loads just below `target` and the `width` just above; all
        of them in a small pool (the other direction can make a farther one the best)."""
        if len(self.loads) <= 4 * width:
            return range(len(self.loads))
        i = bisect.bisect_right(self.loads, target)
        return range(max(0, i - width), min(len(self.loads), i + width))

    def remove(self, load: float, key: Key) -> None:
        i = bisect.bisect_left(self.loads, load)
        while self.keys[i] != key:
            i += 1
        del self.loads[i]
        del self.keys[i]


_Movable = tuple[list[float], list[float], list[Key]]  # tx, rx, key of one uplink's MACs


class _Items(dict):
    """uplink -> {key: (tx, rx)} of its movable MACs, built on first access."""

    def __init__(self, movable: dict[int, _Movable]) -> None:
        super().__init__()
        self._movable = movable

    def __missing__(self, port: int) -> dict[Key, tuple[float, float]]:
        ts, rs, ks = self._movable[port]
        built = self[port] = {k: (t, r) for t, r, k in zip(ts, rs, ks, strict=True)}
        return built


class _State:
    """Loads, capacities and lazily sorted pools of one planning run."""

    def __init__(
        self,
        cap: dict[int, float],
        tx: dict[int, float],
        rx: dict[int, float],
        movable: dict[int, _Movable],
        biggest: dict[int, list[float]],
    ) -> None:
        self.cap = cap
        self.load = {p: [tx[p], rx[p]] for p in cap}
        self.items = _Items(movable)  # built per uplink on first use (most are never used)
        # largest single MAC load per direction ever on each uplink this run (moved or not):
        # no placement of the pair can beat it on the faster link
        self.biggest = biggest
        self._pools: dict[tuple[int, int], _Pool] = {}

    def pool(self, port: int, d: int) -> _Pool:
        pool = self._pools.get((port, d))
        if pool is None:
            items = [(x[d], k) for k, x in self.items[port].items()]
            pool = self._pools[(port, d)] = _Pool(items)
        return pool

    def level(self, port: int) -> tuple[float, int]:
        """(n, bottleneck direction) of an uplink; ties go to tx."""
        t, r = self.load[port]
        c = self.cap[port]
        return (t / c, 0) if t >= r else (r / c, 1)

    def take(self, key: Key, src: int, dst: int) -> None:
        t, r = self.items[src].pop(key)
        for d, x in ((0, t), (1, r)):
            pool = self._pools.get((src, d))
            if pool is not None:
                pool.remove(x, key)
        self.load[src][0] -= t
        self.load[src][1] -= r
        self.load[dst][0] += t
        self.load[dst][1] += r
        big = self.biggest[dst]
        big[0], big[1] = max(big[0], t), max(big[1], r)


def plan(
    uplinks: Sequence[UplinkState],
    macs: Macs,
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
    tx: dict[int, list[float]] = {p: [] for p in cap}
    rx: dict[int, list[float]] = {p: [] for p in cap}
    # parallel lists of objects that already exist: no allocation per MAC (the garbage
    # collector's pauses, not the arithmetic, set this function's worst case)
    movable: dict[int, _Movable] = {p: ([], [], []) for p in cap}
    min_dwell = params.min_dwell
    for key, uplink, t, r, pinned, last_moved in macs:  # the hot loop: 10,000 MACs
        bucket = tx.get(uplink)
        if bucket is None:
            continue  # on a dead or unknown uplink: failover's business
        t = t if t > 0.0 else 0.0  # negative or NaN: must not attract traffic
        r = r if r > 0.0 else 0.0
        bucket.append(t)
        rx[uplink].append(r)
        if (t > 0.0 or r > 0.0) and not pinned and now - last_moved >= min_dwell:
            ts, rs, ks = movable[uplink]
            ts.append(t)
            rs.append(r)
            ks.append(key)
    if len({m[0] for m in macs}) != len(macs):
        raise ValueError("duplicate (MAC, VLAN) key")
    if params.swap_gain <= 1.0 and sum(len(v[2]) for v in movable.values()) <= SMALL_MACS:
        return _small(cap, tx, rx, movable, params)
    state = _State(
        cap,
        {p: math.fsum(v) for p, v in tx.items()},
        {p: math.fsum(v) for p, v in rx.items()},
        movable,
        {p: [max(tx[p], default=0.0), max(rx[p], default=0.0)] for p in cap},
    )
    groups = _greedy(state, params)
    needed = sum(len(g) for g in groups)
    budget = max(params.max_moves, -(-needed // max(1, params.spread_runs)))
    budget = min(budget, max(params.max_burst, params.max_moves))
    moves: list[PlannedMove] = []
    for group in groups:  # a swap is kept or dropped whole
        if len(moves) + len(group) > budget:
            break
        moves += group
    return moves


def _greedy(state: _State, params: RebalanceParams) -> list[tuple[PlannedMove, ...]]:
    """Every move (or swap: two moves) the greedy makes until nothing useful is left."""
    groups: list[tuple[PlannedMove, ...]] = []
    exhausted: set[int] = set()
    cap = state.cap
    while True:
        senders = [p for p in cap if p not in exhausted]
        if not senders:
            break
        src = max(senders, key=lambda p: (state.level(p)[0], -p))
        choice = _best_move(src, state, params)
        if choice is not None:
            dst, key = choice
            state.take(key, src, dst)
            groups.append((PlannedMove(key, src, dst),))
            continue
        swap = _best_swap(src, state, params)
        if swap is None:
            exhausted.add(src)  # nothing useful leaves it this run
            continue
        dst, out_key, in_key = swap
        state.take(out_key, src, dst)
        state.take(in_key, dst, src)
        groups.append((PlannedMove(out_key, src, dst), PlannedMove(in_key, dst, src)))
    return groups


def _pair(state: _State, src: int, dst: int, params: RebalanceParams) -> tuple[float, float] | None:
    """(x*: bytes that would even the pair in the sender's bottleneck, the pair's possible
    gain in normalised load), or None if the pair is balanced enough."""
    n_src, b = state.level(src)
    c_src, c_dst = state.cap[src], state.cap[dst]
    gap = n_src - state.load[dst][b] / c_dst
    if gap <= 0.0 or gap < params.tolerance * n_src:
        return None
    ideal = gap / (1.0 / c_src + 1.0 / c_dst)
    if ideal < params.min_load / 2.0:
        return None
    ls, ld = state.load[src], state.load[dst]
    bs, bd = state.biggest[src], state.biggest[dst]
    both, fastest = c_src + c_dst, max(c_src, c_dst)
    # the best the pair could reach: divisible split, or its biggest MAC on the faster link
    level = max(
        (ls[0] + ld[0]) / both,
        (ls[1] + ld[1]) / both,
        max(bs[0], bd[0]) / fastest,
        max(bs[1], bd[1]) / fastest,
    )
    possible = n_src - level
    if possible <= 0.0 or possible < params.tolerance * n_src:
        return None  # the pair cannot gain more than the dead band: leave it
    return ideal, possible


def _after(state: _State, src: int, dst: int, t: float, r: float) -> float:
    """Largest of the four changed normalised values if (t, r) goes from src to dst."""
    ls, ld = state.load[src], state.load[dst]
    c_src, c_dst = state.cap[src], state.cap[dst]
    return max((ls[0] - t) / c_src, (ls[1] - r) / c_src, (ld[0] + t) / c_dst, (ld[1] + r) / c_dst)


def _best_move(src: int, state: _State, params: RebalanceParams) -> tuple[int, Key] | None:
    """(receiver, MAC) of the move off `src` that lowers the pair's level most."""
    n_src, b = state.level(src)
    if n_src * state.cap[src] < params.min_load or not state.items[src]:
        return None
    pool = state.pool(src, b)
    largest = pool.loads[-1]
    items = state.items[src]
    best: tuple[float, float, int, Key] | None = None  # (-drop, receiver's new n, dst, key)
    for dst in state.cap:
        if dst == src:
            continue
        pair = _pair(state, src, dst, params)
        if pair is None:
            continue
        ideal, possible = pair
        need = params.min_gain * possible
        trickle = ideal > largest  # the gap is bigger than any MAC that could close it
        for index in pool.around(ideal):
            key = pool.keys[index]
            t, r = items[key]
            drop = n_src - _after(state, src, dst, t, r)
            if drop <= 0.0:
                continue
            x = t if b == 0 else r
            if drop < need and not (trickle and params.min_load <= x <= ideal):
                continue
            ld = state.load[dst]
            new_dst = max(ld[0] + t, ld[1] + r) / state.cap[dst]
            candidate = (-drop, new_dst, dst, key)
            if best is None or candidate < best:
                best = candidate
    return None if best is None else (best[2], best[3])


def _best_swap(src: int, state: _State, params: RebalanceParams) -> tuple[int, Key, Key] | None:
    """(receiver, MAC out of src, MAC back into src) of the best large-gain swap, if any."""
    n_src, b = state.level(src)
    if n_src * state.cap[src] < params.min_load or not state.items[src]:
        return None
    pool = state.pool(src, b)
    items = state.items[src]
    best: tuple[float, int, Key, Key] | None = None
    for dst in state.cap:
        if dst == src or not state.items[dst]:
            continue
        pair = _pair(state, src, dst, params)
        if pair is None:
            continue
        ideal, possible = pair
        need = params.swap_gain * possible
        back = state.pool(dst, b)
        for out_key in pool.keys[-8:]:  # the sender's largest MACs in its bottleneck
            t1, r1 = items[out_key]
            x1 = t1 if b == 0 else r1
            for index in back.around(x1 - ideal):
                in_key = back.keys[index]
                t2, r2 = state.items[dst][in_key]
                drop = n_src - _after(state, src, dst, t1 - t2, r1 - r2)
                if drop <= 0.0 or drop < need:
                    continue
                candidate = (-drop, dst, out_key, in_key)
                if best is None or candidate < best:
                    best = candidate
    return None if best is None else (best[1], best[2], best[3])


def _vector(load: dict[int, list[float]], cap: dict[int, float]) -> list[float]:
    return sorted((x / cap[p] for p, pair in load.items() for x in pair), reverse=True)


def _small(
    cap: dict[int, float],
    tx: dict[int, list[float]],
    rx: dict[int, list[float]],
    movable: dict[int, _Movable],
    params: RebalanceParams,
) -> list[PlannedMove]:
    """Few movable MACs: repeatedly the best set of one to three moves (a swap is two) by
    the sorted load vector, while it gains enough; each MAC moves at most once per run."""
    load = {p: [math.fsum(tx[p]), math.fsum(rx[p])] for p in cap}
    fastest, total = max(cap.values()), math.fsum(cap.values())
    bound = max(  # no placement beats it: divisible split, biggest MAC on the fastest link
        max(math.fsum(load[p][d] for p in cap) / total for d in (0, 1)),
        max((max(v, default=0.0) for v in tx.values()), default=0.0) / fastest,
        max((max(v, default=0.0) for v in rx.values()), default=0.0) / fastest,
    )
    items = sorted(
        (k, p, t, r)
        for p, (ts, rs, ks) in movable.items()
        for t, r, k in zip(ts, rs, ks, strict=True)
    )
    ports = sorted(cap)
    moved: list[PlannedMove] = []
    while True:
        now_vec = _vector(load, cap)
        top = now_vec[0]
        if top * fastest < params.min_load or top - bound < params.tolerance * top:
            break  # idle, or within the dead band of what any placement could reach
        done = {m.key for m in moved}
        free = [i for i, it in enumerate(items) if it[0] not in done]
        room = max(params.max_moves, params.max_burst) - len(moved)
        chosen = _best_set(load, cap, now_vec, items, free, ports, min(3, room), params)
        if chosen is None:
            break
        vec, moves = chosen
        eps = 1e-9 * top
        index = next(i for i, (x, y) in enumerate(zip(now_vec, vec, strict=True)) if x - y > eps)
        drop = now_vec[index] - vec[index]
        if drop < (SMALL_LATER if moved else SMALL_GAIN) * params.tolerance * top:
            break
        if index == 0 and drop < params.min_gain * (top - bound):
            break
        for i, dst in moves:
            key, src, t, r = items[i]
            _shift(load, src, dst, t, r)
            moved.append(PlannedMove(key, src, dst))
    return moved


def _shift(load: dict[int, list[float]], src: int, dst: int, t: float, r: float) -> None:
    load[src][0] -= t
    load[src][1] -= r
    load[dst][0] += t
    load[dst][1] += r


def _best_set(
    load: dict[int, list[float]],
    cap: dict[int, float],
    now_vec: list[float],
    items: list[tuple[Key, int, float, float]],
    free: list[int],
    ports: list[int],
    largest: int,
    params: RebalanceParams,
) -> tuple[list[float], tuple[tuple[int, int], ...]] | None:
    """(sorted vector after, moves as (item, dst)) of the best set of 1-3 moves that lowers
    `now_vec` (the sorted vector of `load`); a larger set only when it beats the smaller
    by a clear margin."""
    top = now_vec[0]
    eps = 1e-9 * top  # float noise: a relabelling must not look like a gain
    singles = [(i, d) for i in free for d in ports if d != items[i][1]]
    hot = {p for p in cap if max(load[p]) / cap[p] >= top}
    best: dict[int, tuple[list[float], tuple[tuple[int, int], ...]]] = {}
    for size in range(1, largest + 1):  # three only while cheap (a 3-uplink exchange needs it)
        if size == 3 and len(singles) > TRIPLE_BELOW:
            break
        for moves in itertools.combinations(singles, size):
            if size > 1 and len({i for i, _ in moves}) < size:
                continue  # one MAC twice
            if not any(items[i][1] in hot for i, _ in moves):
                continue  # nothing leaves an uplink at the maximum: the maximum stays
            new = {p: list(v) for p, v in load.items()}
            for i, dst in moves:
                _shift(new, items[i][1], dst, items[i][2], items[i][3])
            vec = _vector(new, cap)
            if _better_by(vec, now_vec, 0.0, eps) and (size not in best or vec < best[size][0]):
                best[size] = (vec, moves)
    chosen = None
    margin = SMALL_MORE * SMALL_GAIN * params.tolerance * top
    for size in sorted(best):
        if chosen is None or _better_by(best[size][0], chosen[0], margin, eps):
            chosen = best[size]
    return chosen


def _better_by(a: list[float], b: list[float], margin: float, eps: float) -> bool:
    """a beats b: lower by at least max(margin, eps) at the first entry where they differ by
    more than `eps` (float noise), and not higher at all before it (a rise of the maximum,
    however small, is a rise)."""
    for x, y in zip(a, b, strict=True):
        if x > y:
            return False
        if y - x > eps:
            return y - x >= margin
    return False

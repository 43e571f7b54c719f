"""What the MACs want, not just what they got: demand estimates when uplinks are full.

Byte counters measure what a link carried. Once TCP fills an uplink, every MAC on it is
held to the link's fair share, so the measured loads say "balanced" however bad the split
is: 10G + 1G with ten 2G VMs on each reads 10G/10G and 1G/1G, both exactly full, and the
rebalancer saw nothing to fix (issue 12, item 4).

So, per (uplink, direction):

- Saturated: it carries close to its speed. Carried = the larger of the port counter's
  rate and the sum of its MACs' rates (either can lag). Hysteresis: it becomes saturated
  at >= `enter` of its speed and stops being so below `leave`, so a link hovering near
  full does not flip the estimates every run.
- On a saturated link, a MAC carrying at least `bottleneck` (a quarter) of the link's top
  per-MAC rate (its max-min-fair water level) is held back by the link: its demand is
  unknown but at least what it carries. We estimate it as at least the fair share it would
  get if the bond were one divisible link: g = (capacity of all live uplinks - what the
  unbottlenecked MACs carry) / number of bottlenecked MACs. How TCP splits a full link
  among its held MACs from one second to the next is noise, so each counts the link's mean
  held rate (the link's total is unchanged), raised to the larger of g and the best-served
  full link's level (the same VM there would get that much). MACs below a quarter of the level
  got what they asked for: their demand is what they carry.
- A demand seen is remembered (`Saturation.known`, the highest rate seen while a MAC was
  plainly not held back: on a link with room, or under a quarter of a full link's level)
  and caps the guess: a small VM stuck on a full slow link is not taken for an elephant.
  Only once `settle` seconds have passed since the MAC's last placement change (learning
  or move): before that its smoothed rate, or TCP's slow start, is still ramping and would
  pass for a small demand. Forgotten when no link is full.

The rebalancer then balances these estimates as it balances ordinary loads. On a bad
split the slow link's MACs now weigh g each, more than it can carry, and some move to the
fast link; once the split is right the estimates agree with it, so nothing moves back. The
dwell time and the rebalancer's strict-improvement rule still hold, since they apply to
whatever loads `plan()` is given; what is not guaranteed is that successive estimates
agree: while smoothed rates still ramp after a move, a MAC can be sent back once
(bench/saturation.py counts these). While any link is full, and for `hold` runs after
the last one stopped being full (`Saturation.recent`), the caller plans with
`saturated_params` (BridgeCore.rebalance): no swaps and an 8% dead band. Per-MAC sizes are
guesses while a link is full, and when the traffic that filled it stops, the smoothed rates
decay for a few half-lives from values TCP split at random: with the ordinary 2% band and
swaps, the first runs after an iperf3 run ended swapped a VM back to the uplink it had
been moved off (tests/integration/test_saturation.py, 1 run of 3).

A MAC placed during such a spell (moved on these estimates, or learned) sits out `rest`
(60 s) after its placement, not only the planner's dwell (30 s): `estimate` returns it
marked pinned for plan() (its load still counts). Its smoothed rate reaches its new level
only after several half-lives (10 s each by default: 94% after 40 s, 98% after 60 s), and
until then the link it joined looks emptier than it is. With only the 30 s dwell, a MAC
moved onto a 1G link was sent back to the 10G it had left as soon as it could move,
because the 10G's newcomers still read 10-15% low, and a MAC of the 10G followed it to the
1G (bench/saturation.py, "2x10G+2x1G, 20 x 1G": 4 MACs sent back at an 8% band, none
now). That is what allows a band narrower than the 10% used before, which a 2x10G split
of 11 + 9 needs (10 + 10 is one move and 9% away on the fuller link: fed the true
demands, the planner also stops at 11 + 9 with a 10% band). MACs placed before the spell
keep the ordinary dwell, so the first repair is not delayed. Pure: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from slb_ryu.core.rebalance import MacRow, RebalanceParams

SATURATED_TOLERANCE = 0.08


def saturated_params(params: RebalanceParams) -> RebalanceParams:
    """What plan() runs with while a link is full: estimates are guesses and TCP noisy, so
    no swaps (they would trade equals) and a dead band of 8% instead of 2% (narrower
    would chase TCP's noise; wider leaves 11 + 9 on 2x10G: module docstring)."""
    return dataclasses.replace(
        params, swap_gain=math.inf, tolerance=max(params.tolerance, SATURATED_TOLERANCE)
    )


class Saturation:
    """Saturated flags per (uplink port, direction 0 = tx / 1 = rx), with hysteresis."""

    def __init__(
        self, enter: float = 0.9, leave: float = 0.8, bottleneck: float = 0.25, hold: int = 3
    ) -> None:
        if not 0.0 < leave <= enter:
            raise ValueError("need 0 < leave <= enter")
        if hold < 0:
            raise ValueError("need hold >= 0")
        self.enter, self.leave, self.bottleneck, self.hold = enter, leave, bottleneck, hold
        self.flags: set[tuple[int, int]] = set()
        self.quiet_runs: int | None = None  # runs since a link was last full; None: never
        # ((mac, vlan), direction) -> rate last seen while not held back: its demand
        self.known: dict[tuple[tuple[str, int], int], float] = {}
        # time of the first estimate() of this spell of full links (None: no spell)
        self.episode: float | None = None

    def update(self, carried: dict[tuple[int, int], float], caps: dict[int, float]) -> None:
        """Fold one run's carried bytes/s per (uplink, direction) into the flags."""
        for port, cap in caps.items():
            for d in (0, 1):
                key = (port, d)
                util = carried.get(key, 0.0) / cap if cap > 0 else 0.0
                if key in self.flags:
                    if util < self.leave:
                        self.flags.discard(key)
                elif util >= self.enter:
                    self.flags.add(key)
        self.flags = {k for k in self.flags if k[0] in caps}  # dead or gone uplinks
        if self.flags:
            self.quiet_runs = 0
        elif self.quiet_runs is not None:
            self.quiet_runs += 1
        if not self.recent:
            self.episode = None

    @property
    def recent(self) -> bool:
        """A link is full now or was within the last `hold` runs: plan with
        `saturated_params` (time-wise hysteresis on top of the enter/leave levels)."""
        return bool(self.flags) or (self.quiet_runs is not None and self.quiet_runs <= self.hold)


def carried(
    rows: Sequence[MacRow], caps: dict[int, float], ports: dict[tuple[int, int], float]
) -> dict[tuple[int, int], float]:
    """Per (uplink, direction): max(port counter rate, sum of its MACs' rates)."""
    sums = {(p, d): 0.0 for p in caps for d in (0, 1)}
    for row in rows:
        if row[1] in caps:
            sums[(row[1], 0)] += max(row[2], 0.0)
            sums[(row[1], 1)] += max(row[3], 0.0)
    return {k: max(v, ports.get(k, 0.0)) for k, v in sums.items()}


def estimate(
    rows: Sequence[MacRow],
    caps: dict[int, float],
    saturation: Saturation,
    now: float | None = None,
    settle: float = 30.0,
    rest: float = 60.0,
) -> list[MacRow]:
    """`rows` with the tx/rx of MACs held back on a saturated link raised toward their
    fair share; also records what unheld MACs showed they want (`Saturation.known`).
    While `saturation.recent`, MACs placed during the spell less than `rest` s ago come
    back pinned (they sit out: module docstring).

    The same rows when no link is or recently was saturated, the common case."""
    if now is not None and saturation.recent:
        if saturation.episode is None:
            saturation.episode = now
        rows = _rest(rows, saturation.episode, now, rest)
    if not saturation.flags:
        if saturation.known:
            saturation.known.clear()  # nothing full: all demands are visible again
        return list(rows)
    out = list(rows)
    total = sum(caps.values())
    known = saturation.known
    for d in (0, 1):
        sat = {p for p, dd in saturation.flags if dd == d and p in caps}
        if not sat:
            continue
        level = dict.fromkeys(sat, 0.0)  # water level: top per-MAC rate on the link
        for row in rows:
            if row[1] in level:
                level[row[1]] = max(level[row[1]], row[2 + d])
        held, free = [], 0.0
        for i, row in enumerate(rows):
            if row[1] not in caps:
                continue
            x = max(row[2 + d], 0.0)
            lvl = level.get(row[1])
            if lvl is not None and lvl > 0.0 and x >= saturation.bottleneck * lvl:
                held.append(i)
            else:
                free += x
                # not held back (a link with room, or well below a full link's level): it
                # got what it asked for, once its smoothed rate has settled since a move
                if now is not None and now - row[5] >= settle:
                    k = (row[0], d)
                    known[k] = max(known.get(k, 0.0), x)  # max: a moved MAC's rate ramps up
        if not held:
            continue
        # the share a held MAC would get if the bond were one divisible link
        fair = max(total - free, 0.0) / len(held)
        # held MACs on one link all get its fair level; how TCP happens to split it among
        # them this second is noise, not demand: each counts the link's mean held rate
        sums: dict[int, list[float]] = {}
        for i in held:
            acc = sums.setdefault(rows[i][1], [0.0, 0])
            acc[0] += max(rows[i][2 + d], 0.0)
            acc[1] += 1
        # and any held MAC wants at least what the luckiest held MACs get (the highest
        # per-link level): the same VM on that link would get as much
        top = max(t / c for t, c in sums.values())
        for i in held:
            row = out[i]
            total_u, count_u = sums[row[1]]
            want = max(fair, top)
            guess = min(want, known.get((row[0], d), want))
            value = max(total_u / count_u, guess)
            out[i] = row[: 2 + d] + (value,) + row[3 + d :]
    if len(known) > 2 * len(rows) + 64:  # forgotten MACs: keep the memory bounded
        present = {row[0] for row in rows}
        for k in [k for k in known if k[0] not in present]:
            del known[k]
    return out


def _rest(rows: Sequence[MacRow], since: float, now: float, rest: float) -> list[MacRow]:
    """`rows`, those placed at or after `since` and less than `rest` s before `now` pinned."""
    return [
        row[:4] + (True,) + row[5:]
        if not row[4] and since <= row[5] and row[5] > now - rest
        else row
        for row in rows
    ]

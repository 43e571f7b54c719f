"""The yardstick for the rebalancing benchmark: the best any per-MAC placement can do.

Objective (the one users feel on full-duplex links): the worst *per-direction*
speed-normalised uplink load, max over live uplinks u and directions d in {tx, rx} of
L_ud / C_u. Each MAC is one indivisible item with a tx and an rx load.

- `optimum()`: exact, by mixed-integer programming (`scipy.optimize.milp`, HiGHS), for
  small cases (default up to 16 MACs): x_iu in {0, 1}, sum_u x_iu = 1, L_ud / C_u <= T,
  minimise T.
- `lower_bound()`: for any size, max over d of max(total_d / sum C, largest MAC_d / max C):
  no placement does better (the first is the divisible split, the second the biggest item
  on the fastest link). A ratio to it is an upper bound on the ratio to the optimum.
- `min_moves()`: the fewest MACs that must change uplink, from a given placement, to get
  within `slack` (default 5%) of a target T: exact by MILP (minimise the MACs off their
  start uplink) when small, else a lower bound: each uplink over the target must shed
  its excess in both directions at once, and no set of fewer MACs than its largest by
  any weighted sum w tx + (1 - w) rx can (summed over uplinks, since a MAC leaves only one).

Loads are scaled to the divisible level before solving (HiGHS works in floating point
with absolute tolerances; bytes/s of 10G links would make them meaningless).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

Loads = Sequence[tuple[float, float]]  # per MAC: (tx, rx) bytes/s

EXACT_MAX_MACS = 16
BOUND_STEPS = 20  # weights w of tx vs rx tried by the moves bound


def worst(place: Sequence[int], loads: Loads, caps: dict[int, float]) -> float:
    """Max over uplinks and directions of load / capacity, for a placement (uplink per MAC)."""
    tx = dict.fromkeys(caps, 0.0)
    rx = dict.fromkeys(caps, 0.0)
    for u, (t, r) in zip(place, loads, strict=True):
        if u in caps:
            tx[u] += t
            rx[u] += r
    return max(max(tx[u], rx[u]) / caps[u] for u in caps)


def lower_bound(loads: Loads, caps: dict[int, float]) -> float:
    total_cap = sum(caps.values())
    fastest = max(caps.values())
    bound = 0.0
    for d in (0, 1):
        values = [x[d] for x in loads]
        if values:
            bound = max(bound, sum(values) / total_cap, max(values) / fastest)
    return bound


def _scale(loads: Loads, caps: dict[int, float]) -> float:
    return lower_bound(loads, caps) or 1.0


def _placement_rows(
    loads: Loads, caps: dict[int, float], s: float, nv: int, load_cap: float | None
) -> tuple[list, list, list]:
    """Constraint rows shared by both MILPs: each MAC on exactly one uplink, and each
    (uplink, direction) normalised load <= the variable T (column nv-1, `load_cap` None)
    or <= the constant `load_cap`."""
    ports = sorted(caps)
    n, m = len(loads), len(ports)
    rows, lo, hi = [], [], []
    for i in range(n):  # each MAC on exactly one uplink
        row = np.zeros(nv)
        row[i * m : (i + 1) * m] = 1.0
        rows.append(row)
        lo.append(1.0)
        hi.append(1.0)
    for j, u in enumerate(ports):
        for d in (0, 1):
            row = np.zeros(nv)
            for i in range(n):
                row[i * m + j] = loads[i][d] / s / caps[u]
            if load_cap is None:
                row[-1] = -1.0
            rows.append(row)
            lo.append(-np.inf)
            hi.append(0.0 if load_cap is None else load_cap)
    return rows, lo, hi


def optimum(loads: Loads, caps: dict[int, float], time_limit: float = 10.0) -> float:
    """Exact min over placements of `worst` (MILP). Raises ValueError when unsolved."""
    if not loads:
        return 0.0
    return worst(placement(loads, caps, time_limit), loads, caps)  # recomputed exactly


def placement(loads: Loads, caps: dict[int, float], time_limit: float = 10.0) -> list[int]:
    """An optimal placement (uplink per MAC) by MILP. Raises ValueError when unsolved."""
    ports = sorted(caps)
    n, m = len(loads), len(ports)
    s = _scale(loads, caps)
    nv = n * m + 1  # x_iu then T
    c = np.zeros(nv)
    c[-1] = 1.0
    rows, lo, hi = _placement_rows(loads, caps, s, nv, None)
    integrality = np.ones(nv)
    integrality[-1] = 0
    upper = np.ones(nv)
    upper[-1] = np.inf
    res = milp(
        c,
        constraints=LinearConstraint(np.array(rows), lo, hi),
        integrality=integrality,
        bounds=Bounds(np.zeros(nv), upper),
        options={"time_limit": time_limit},
    )
    if res.x is None:
        raise ValueError(f"MILP failed: {res.message}")
    x = res.x[:-1].reshape(n, m)
    return [ports[int(np.argmax(x[i]))] for i in range(n)]


def greedy_placement(loads: Loads, caps: dict[int, float]) -> list[int]:
    """Largest MAC first, each to the uplink left least loaded (per direction, per speed):
    within a fraction of a percent of the lower bound with hundreds of MACs."""
    tx, rx = dict.fromkeys(caps, 0.0), dict.fromkeys(caps, 0.0)
    place = [0] * len(loads)
    for i in sorted(range(len(loads)), key=lambda i: -max(loads[i])):
        t, r = loads[i]
        u = min(caps, key=lambda p: (max(tx[p] + t, rx[p] + r) / caps[p], p))
        tx[u] += t
        rx[u] += r
        place[i] = u
    return place


def best_placement(loads: Loads, caps: dict[int, float]) -> list[int]:
    """Optimal (MILP) when small enough, else `greedy_placement`."""
    if len(loads) <= EXACT_MAX_MACS:
        return placement(loads, caps)
    return greedy_placement(loads, caps)


def best(loads: Loads, caps: dict[int, float]) -> tuple[float, bool]:
    """(optimum, exact) when small enough, else (lower bound, False)."""
    if len(loads) <= EXACT_MAX_MACS:
        return optimum(loads, caps), True
    return lower_bound(loads, caps), False


def min_moves(
    start: Sequence[int],
    loads: Loads,
    caps: dict[int, float],
    target: float,
    exact: bool | None = None,
    time_limit: float = 10.0,
) -> tuple[int, bool]:
    """(fewest moves from `start` to reach worst <= target, exact?). `target` includes slack."""
    if exact is None:
        exact = len(loads) <= EXACT_MAX_MACS
    if not exact:
        return _moves_bound(start, loads, caps, target), False
    ports = sorted(caps)
    n, m = len(loads), len(ports)
    s = _scale(loads, caps)
    nv = n * m
    c = np.zeros(nv)
    for i in range(n):  # cost: 1 for every uplink other than the start one
        for j, u in enumerate(ports):
            c[i * m + j] = 0.0 if u == start[i] else 1.0
    rows, lo, hi = _placement_rows(loads, caps, s, nv, target / s * (1 + 1e-9))
    res = milp(
        c,
        constraints=LinearConstraint(np.array(rows), lo, hi),
        integrality=np.ones(nv),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit},
    )
    if res.x is None:
        raise ValueError(f"MILP failed: {res.message}")
    return round(res.fun), True


def _moves_bound(start: Sequence[int], loads: Loads, caps: dict[int, float], target: float) -> int:
    """Sum over uplinks of the fewest MACs whose removal brings both directions to `target`.

    A valid lower bound (each move removes a MAC from one uplink; moves in only add load).
    Per uplink, any set that sheds the tx excess E_t and the rx excess E_r also sheds
    w E_t + (1 - w) E_r of the combined loads w t + (1 - w) r, for every w in [0, 1], and
    the fewest MACs that can do that are the largest by that combination. The max over a
    grid of w is still a lower bound, and much tighter than the two directions taken apart
    when an uplink is over in both (4x10G 10000 down-up: 109, the exact per-uplink MILP
    count, instead of 88).
    """
    total = 0
    for u, cap in caps.items():
        mine = [loads[i] for i, p in enumerate(start) if p == u]
        excess = [sum(x[d] for x in mine) - target * cap for d in (0, 1)]
        if max(excess) <= 0:
            continue
        need = 0
        for k in range(BOUND_STEPS + 1):
            w = k / BOUND_STEPS
            left = w * excess[0] + (1.0 - w) * excess[1]
            count = 0
            for x in sorted((w * t + (1.0 - w) * r for t, r in mine), reverse=True):
                if left <= 0:
                    break
                left -= x
                count += 1
            need = max(need, count)
        total += need
    return total

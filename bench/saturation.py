"""Rebalancing when uplinks are full: max-min-fair TCP simulated, demand estimate on/off.

Each VM (one MAC) sends TCP to the fabric with a fixed demand; on every uplink the
transmitted rates are max-min fair (water filling: a VM gets its demand or the link's fair
level, whichever is less); the receive direction carries the ACKs (2.5% of the rate).
Each round (10 s), the controller's path runs on what was carried: cumulative counters ->
`LoadTracker` (per MAC, and per uplink port: the port counters) -> carried rates per
uplink -> `demand.Saturation` + `demand.estimate` -> `rebalance.plan`, and the moves are
applied. "measured" is the same without the estimate (what the controller did before:
it balanced carried bytes). "true" (a reference, not a controller) feeds plan() every VM's
true demand instead of the estimate, with the same parameters: what a perfect estimate
would reach with the same planner and dead band.

Per scenario: min satisfaction (rate / demand, the worst-off VM) and Jain's index over
the VMs' rates, mean of the last 10 rounds; the best min satisfaction any placement can
reach (exhaustive over how many VMs of each demand class go on each uplink); moves in
total and in the last half; "flaps": a MAC moved back to the uplink it had just left.

Target (issue 12): within 5% of the best min satisfaction in every scenario, no flapping.

    python bench/saturation.py
"""

from __future__ import annotations

import itertools
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slb_ryu.core.demand import Saturation, carried, estimate, saturated_params  # noqa: E402
from slb_ryu.core.load import LoadTracker  # noqa: E402
from slb_ryu.core.rebalance import DEFAULT_PARAMS, UplinkState, plan  # noqa: E402

G = 1e9
INTERVAL = 10.0
ACK = 0.025
ROUNDS = 40


@dataclass
class Scenario:
    name: str
    speeds: list[float]  # bits/s
    classes: list[tuple[int, float]]  # (count, demand bits/s)
    start: list[list[int]]  # per class: how many start on each uplink

    def vms(self) -> tuple[list[float], list[int], list[int]]:
        """Per VM: demand (bytes/s), class index, start uplink (1-based)."""
        demand, cls, start = [], [], []
        for c, ((count, bps), split) in enumerate(zip(self.classes, self.start, strict=True)):
            assert sum(split) == count
            for u, k in enumerate(split, start=1):
                demand += [bps / 8] * k
                cls += [c] * k
                start += [u] * k
        return demand, cls, start


SCENARIOS = [
    Scenario("10G+1G, 20 x 2G, 10/10", [10 * G, G], [(20, 2 * G)], [[10, 10]]),
    Scenario(
        "10G+1G, 4 x 5G + 16 x 0.2G",
        [10 * G, G],
        [(4, 5 * G), (16, 0.2 * G)],
        [[2, 2], [8, 8]],
    ),
    Scenario("2x10G, 20 x 2G, 15/5", [10 * G, 10 * G], [(20, 2 * G)], [[15, 5]]),
    Scenario("10G+1G, 8 x 2G, 4/4", [10 * G, G], [(8, 2 * G)], [[4, 4]]),
    Scenario("25G+10G+1G, 30 x 2G, 10/10/10", [25 * G, 10 * G, G], [(30, 2 * G)], [[10, 10, 10]]),
    Scenario("10G+1G, 4 x 3G, 2/2", [10 * G, G], [(4, 3 * G)], [[2, 2]]),
    Scenario(
        "2x10G+2x1G, 20 x 1G, 5/5/5/5",
        [10 * G, 10 * G, G, G],
        [(20, G)],
        [[5, 5, 5, 5]],
    ),
]


def waterfill(demands: list[float], cap: float) -> list[float]:
    """Max-min fair shares of `cap` among `demands` (same order)."""
    order = sorted(range(len(demands)), key=demands.__getitem__)
    out = [0.0] * len(demands)
    left, n = cap, len(demands)
    for rank, i in enumerate(order):
        share = left / (n - rank)
        out[i] = min(demands[i], share)
        left -= out[i]
    return out


def rates(place: list[int], demand: list[float], caps: dict[int, float]) -> list[float]:
    out = [0.0] * len(demand)
    for u, cap in caps.items():
        idx = [i for i, p in enumerate(place) if p == u]
        for i, r in zip(idx, waterfill([demand[i] for i in idx], cap), strict=True):
            out[i] = r
    return out


def jain(xs: list[float]) -> float:
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def best_min_satisfaction(sc: Scenario) -> float:
    """Exhaustive over the number of VMs of each class on each uplink."""
    caps = {u: s / 8 for u, s in enumerate(sc.speeds, start=1)}
    m = len(caps)
    per_class = []
    for count, _ in sc.classes:
        per_class.append(
            [c for c in itertools.product(range(count + 1), repeat=m) if sum(c) == count]
        )
    best = 0.0
    for combo in itertools.product(*per_class):
        place, demand = [], []
        for (_, bps), split in zip(sc.classes, combo, strict=True):
            for u, k in enumerate(split, start=1):
                place += [u] * k
                demand += [bps / 8] * k
        got = rates(place, demand, caps)
        best = max(best, min(g / d for g, d in zip(got, demand, strict=True)))
    return best


def simulate(
    sc: Scenario, use_estimate: bool, true_demand: bool = False, best: float = 0.0
) -> dict:
    demand, _, place = sc.vms()
    n = len(demand)
    caps = {u: s / 8 for u, s in enumerate(sc.speeds, start=1)}
    uplinks = [UplinkState(u, True, int(s)) for u, s in enumerate(sc.speeds, start=1)]
    keys = [(f"02:00:00:00:00:{i:02x}", 0) for i in range(n)]
    tracker = LoadTracker(half_life=INTERVAL)
    saturation = Saturation()
    cum = [[0, 0] for _ in range(n)]
    port_cum = {u: [0, 0] for u in caps}
    last_moved = [0.0] * n
    prev_from: dict[int, int] = {}
    sats, jains, moves, flaps = [], [], [], 0
    for r in range(1, ROUNDS + 1):
        now = r * INTERVAL
        got = rates(place, demand, caps)
        sats.append(min(g / d for g, d in zip(got, demand, strict=True)))
        jains.append(jain(got))
        rows = []
        for i in range(n):
            cum[i][0] += int(got[i] * INTERVAL)
            cum[i][1] += int(got[i] * ACK * INTERVAL)
            tx, rx = tracker.update(keys[i], cum[i][0], cum[i][1], now)
            rows.append((keys[i], place[i], tx, rx, False, last_moved[i]))
        ports = {}
        for u in caps:  # the uplinks' own counters (port stats): no per-MAC smoothing lag
            on = [g for g, p in zip(got, place, strict=True) if p == u]
            port_cum[u][0] += int(sum(on) * INTERVAL)
            port_cum[u][1] += int(sum(on) * ACK * INTERVAL)
            ptx, prx = tracker.update(("port", u), port_cum[u][0], port_cum[u][1], now)
            ports[(u, 0)], ports[(u, 1)] = ptx, prx
        if use_estimate:
            saturation.update(carried(rows, caps, ports), caps)
            rows = estimate(rows, caps, saturation, now)
        if true_demand:
            rows = [row[:2] + (demand[i], demand[i] * ACK) + row[4:] for i, row in enumerate(rows)]
        params = DEFAULT_PARAMS
        if use_estimate and saturation.recent:  # as BridgeCore.rebalance
            params = saturated_params(params)
        planned = plan(uplinks, rows, now, params)
        moves.append(len(planned))
        for mv in planned:
            i = int(mv.key[0][-2:], 16)
            if prev_from.get(i) == mv.new_uplink:
                flaps += 1
            prev_from[i] = mv.old_uplink
            place[i] = mv.new_uplink
            last_moved[i] = now
    tail = slice(ROUNDS - 10, ROUNDS)
    return dict(
        sat=statistics.fmean(sats[tail]),
        jain=statistics.fmean(jains[tail]),
        moves=sum(moves),
        late=sum(moves[ROUNDS // 2 :]),
        flaps=flaps,
        split=[place.count(u) for u in caps],
        # seconds from the start until the min satisfaction first came within 5% of `best`
        first=next((r * INTERVAL for r, x in enumerate(sats) if x >= 0.95 * best), None),
    )


def main() -> int:
    print(f"# max-min-fair TCP, {ROUNDS} rounds of {INTERVAL:.0f} s; figures: mean of the last 10")
    head = (
        f"{'scenario':<32} {'best':>5}  {'mode':<9} {'min sat':>7} {'/best':>6} {'jain':>5} "
        f"{'moves':>5} {'late':>4} {'flaps':>5} {'5% at':>5}  split"
    )
    print(head)
    print("-" * len(head))
    missed = []
    for sc in SCENARIOS:
        best = best_min_satisfaction(sc)
        for mode in ("measured", "estimate", "true"):
            res = simulate(sc, mode != "measured", mode == "true", best)
            ratio = res["sat"] / best if best else 1.0
            first = "never" if res["first"] is None else f"{res['first']:.0f}"
            print(
                f"{sc.name if mode == 'measured' else '':<32} "
                f"{(f'{best:.3f}' if mode == 'measured' else ''):>5}  {mode:<9} "
                f"{res['sat']:7.3f} {ratio:6.3f} {res['jain']:5.2f} {res['moves']:5d} "
                f"{res['late']:4d} {res['flaps']:5d} {first:>5}  {res['split']}"
            )
            if mode == "estimate" and (ratio < 0.95 or res["flaps"] or res["late"]):
                missed.append(sc.name)
    print("-" * len(head))
    print(
        "target: within 5% of the best min satisfaction, no flapping, no moves in the last "
        "half: " + ("met in every scenario" if not missed else "MISSED in " + "; ".join(missed))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

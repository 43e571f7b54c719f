"""Rebalancing algorithms side by side: slb_ryu.core.rebalance against OVS balance-slb.

Both run in the same process on the same workload, round by round (one round = one
10 s rebalance interval), each with its own placement:

- OVS (bench/ovs_slb.py): every MAC's transmitted bytes of the round are accounted to its
  bucket, then `bond_rebalance()` runs (and halves the buckets). A bucket shift moves every
  MAC of the bucket: all are counted as MAC moves (each is a MAC flap upstream).
- ours: cumulative per-MAC tx/rx counters (what flow statistics give) go through
  `LoadTracker` (half-life 10 s), then `plan()` sees the smoothed tx+rx rates and the
  time of each MAC's last move, and its moves are applied.

Reported per case and algorithm, with the same speed-normalised metric for both:
imbalance = max over uplinks of (bytes/s / capacity) divided by total bytes / total
capacity, for the traffic each round actually carried over the placement in effect
(mean over the second half of the rounds, i.e. after convergence); "tx+rx" is what our
objective balances, "tx" what OVS balances (shown so OVS is also judged on its own terms).
MAC moves per round (all rounds, and the second half only), and decision time per round:
`plan()` resp. `rebalance()` (median, p95). "prep" is the rest of our controller's per-round
work (LoadTracker updates and building the plan() input), for transparency.

    python bench/algorithm.py            # full matrix, writes bench/algorithm.png
    python bench/algorithm.py --quick    # ~10 s smoke run (CI)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ovs_slb import OvsSlbBond, bucket_of  # noqa: E402
from workloads import Workload, cases  # noqa: E402

from slb_ryu.core.load import LoadTracker  # noqa: E402
from slb_ryu.core.rebalance import MacLoad, UplinkState, plan  # noqa: E402

INTERVAL = 10.0
TIME_TARGET_MS = 50.0
TIME_TARGET_MACS = 10_000


@dataclass
class Result:
    imbalance: list[float] = field(default_factory=list)  # per round, tx+rx
    imbalance_tx: list[float] = field(default_factory=list)
    moves: list[int] = field(default_factory=list)  # MACs moved per round
    decide_ms: list[float] = field(default_factory=list)
    prep_ms: list[float] = field(default_factory=list)

    def steady(self, values: list[float]) -> list[float]:
        return values[len(values) // 2 :]


def _imbalance(place: list[int], loads: list[float], caps: dict[int, float]) -> float:
    per = dict.fromkeys(caps, 0.0)
    for uplink, load in zip(place, loads, strict=True):
        per[uplink] += load
    total = sum(per.values())
    if total <= 0:
        return 1.0
    level = total / sum(caps.values())
    return max(per[u] / caps[u] for u in caps) / level


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def run_case(wl: Workload, rounds: int) -> tuple[Result, Result]:
    uplinks = wl.uplinks
    caps = {u: s / 8.0 for u, s in zip(uplinks, wl.speeds, strict=True)}
    states = [UplinkState(u, True, s) for u, s in zip(uplinks, wl.speeds, strict=True)]
    keys = wl.keys

    # --- OVS: buckets, first-lookup round robin (or everything on uplink 1)
    bond = OvsSlbBond(uplinks)
    buckets = [bucket_of(mac, vlan) for mac, vlan in keys]
    if wl.start == "one":
        for u in uplinks[1:]:
            bond.enabled[u] = False
    for b in buckets:
        bond.lookup(b)
    for u in uplinks:
        bond.enabled[u] = True
    macs_in_bucket: dict[int, int] = {}
    for b in buckets:
        macs_in_bucket[b] = macs_in_bucket.get(b, 0) + 1

    # --- ours: learn-time choice of slb_ryu.core.placement (fewest MACs per speed), or uplink 1
    place: list[int] = []
    count = dict.fromkeys(uplinks, 0)
    for _ in keys:
        u = uplinks[0] if wl.start == "one" else min(uplinks, key=lambda p: (count[p] / caps[p], p))
        count[u] += 1
        place.append(u)
    index = {k: i for i, k in enumerate(keys)}
    last_moved = [0.0] * len(keys)
    tracker = LoadTracker(half_life=INTERVAL)
    tx_cum = [0] * len(keys)
    rx_cum = [0] * len(keys)

    ovs, ours = Result(), Result()
    for r in range(1, rounds + 1):
        now = r * INTERVAL
        rates = wl.step()
        total = [tx + rx for tx, rx in rates]
        txs = [tx for tx, _ in rates]

        # what users felt this round, on the placement each system had in effect
        ovs_place = [bond.member_of[b] for b in buckets]
        ovs.imbalance.append(_imbalance(ovs_place, total, caps))
        ovs.imbalance_tx.append(_imbalance(ovs_place, txs, caps))
        ours.imbalance.append(_imbalance(place, total, caps))
        ours.imbalance_tx.append(_imbalance(place, txs, caps))

        # OVS: account this round's tx bytes, rebalance
        for b, tx in zip(buckets, txs, strict=True):
            bond.account(b, int(tx * INTERVAL))
        t0 = time.perf_counter()
        shifts = bond.rebalance()
        ovs.decide_ms.append((time.perf_counter() - t0) * 1e3)
        ovs.moves.append(sum(macs_in_bucket.get(b, 0) for b, _, _ in shifts))

        # ours: counters -> smoothed rates -> plan
        t0 = time.perf_counter()
        update = tracker.update
        loads = []
        for i, (key, (tx, rx)) in enumerate(zip(keys, rates, strict=True)):
            tx_cum[i] += int(tx * INTERVAL)
            rx_cum[i] += int(rx * INTERVAL)
            stx, srx = update(key, tx_cum[i], rx_cum[i], now)
            loads.append(MacLoad(key, place[i], stx + srx, False, last_moved[i]))
        t1 = time.perf_counter()
        moves = plan(states, loads, now)
        t2 = time.perf_counter()
        ours.prep_ms.append((t1 - t0) * 1e3)
        ours.decide_ms.append((t2 - t1) * 1e3)
        for move in moves:
            i = index[move.key]
            place[i] = move.new_uplink
            last_moved[i] = now
        ours.moves.append(len(moves))
    return ovs, ours


def _verdict(ours: float, ovs: float, rel_tie: float) -> str:
    """PASS/FAIL, or "tie" within `rel_tie` (showing which way it leans)."""
    if ours == ovs:
        return "tie"
    if abs(ours - ovs) <= rel_tie * abs(ovs):
        return f"tie (ours {(ours - ovs) / ovs:+.1%})"
    return "PASS" if ours < ovs else "FAIL"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~10 s smoke run")
    ap.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    ap.add_argument(
        "--rounds", type=int, default=None, help="rounds per case (default 60, quick 20)"
    )
    ap.add_argument(
        "--plot", default=None, help="PNG path (default bench/algorithm.png; quick: none)"
    )
    args = ap.parse_args(argv)
    rounds = args.rounds or (20 if args.quick else 60)
    plot = args.plot or (None if args.quick else str(Path(__file__).with_name("algorithm.png")))

    print(
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {rounds} rounds of {INTERVAL:.0f} s per case, seed {args.seed}"
    )
    print(
        "# targets: ours lower imbalance than OVS (tx+rx), fewer MAC moves, "
        f"plan() p95 < {TIME_TARGET_MS:.0f} ms at {TIME_TARGET_MACS} MACs"
    )
    head = (
        f"{'case':<24} {'algo':<4} {'imb tx+rx':>9} {'imb tx':>7} {'moves/rd':>9} "
        f"{'steady':>7} {'ms med':>7} {'ms p95':>7} {'prep ms':>7}  verdict"
    )
    print(head)
    print("-" * len(head))
    rows = []
    failures = []
    started = time.perf_counter()
    for wl in cases(args.quick):
        if args.seed != 1:
            wl = dataclasses.replace(wl, seed=args.seed)
        ovs, ours = run_case(wl, rounds)
        stats = {}
        for name, res in (("ovs", ovs), ("ours", ours)):
            stats[name] = dict(
                imb=statistics.fmean(res.steady(res.imbalance)),
                imb_tx=statistics.fmean(res.steady(res.imbalance_tx)),
                moves=statistics.fmean(res.moves),
                steady=statistics.fmean(res.steady(res.moves)),
                med=statistics.median(res.decide_ms),
                p95=_pct(res.decide_ms, 0.95),
                prep=statistics.median(res.prep_ms) if res.prep_ms else float("nan"),
            )
        v_imb = _verdict(stats["ours"]["imb"], stats["ovs"]["imb"], 0.005)
        v_mov = _verdict(stats["ours"]["moves"], stats["ovs"]["moves"], 0.0)
        verdicts = {"ovs": "", "ours": f"imbalance {v_imb}, moves {v_mov}"}
        if v_mov == "FAIL" and v_imb == "PASS":
            verdicts["ours"] += f" (OVS moves less but stays at {stats['ovs']['imb']:.2f})"
        if wl.n_macs >= TIME_TARGET_MACS:
            ok = stats["ours"]["p95"] < TIME_TARGET_MS
            verdicts["ours"] += f", time {'PASS' if ok else 'FAIL'}"
            if not ok:
                failures.append(f"{wl.name}: time")
        failures += [
            f"{wl.name}: {what}"
            for what, v in (("imbalance", v_imb), ("moves", v_mov))
            if v == "FAIL"
        ]
        for name in ("ovs", "ours"):
            s = stats[name]
            prep = f"{s['prep']:7.1f}" if name == "ours" else f"{'':>7}"
            print(
                f"{wl.name if name == 'ovs' else '':<24} {name:<4} {s['imb']:9.3f} "
                f"{s['imb_tx']:7.3f} {s['moves']:9.2f} {s['steady']:7.2f} {s['med']:7.2f} "
                f"{s['p95']:7.2f} {prep}  {verdicts[name]}"
            )
        rows.append((wl.name, stats))
    print("-" * len(head))
    print(
        f"# {len(rows)} cases in {time.perf_counter() - started:.1f} s; "
        + ("all targets met" if not failures else "targets missed: " + "; ".join(failures))
    )
    if plot:
        _plot(rows, plot)
        print(f"# plot: {plot}")
    return 0


def _plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    names = [name for name, _ in rows]
    width = 0.4
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(10, len(names) * 0.7), 8), sharex=True)
    floor = 0.01  # log axis: zero moves drawn as a stub labelled "0"
    for offset, algo, color in ((-width / 2, "ovs", "tab:red"), (width / 2, "ours", "tab:blue")):
        label = "OVS balance-slb" if algo == "ovs" else "slb-ryu"
        xs = [i + offset for i in range(len(names))]
        ax1.bar(xs, [s[algo]["imb"] for _, s in rows], width, label=label, color=color)
        moves = [s[algo]["moves"] for _, s in rows]
        ax2.bar(xs, [max(m, floor) for m in moves], width, label=label, color=color)
        for x, m in zip(xs, moves, strict=True):
            if m == 0:
                ax2.text(x, floor * 1.1, "0", ha="center", va="bottom", fontsize=7)
    ax1.axhline(1.0, color="black", linewidth=0.8)
    ax1.set_yscale("log")
    ax1.yaxis.set_major_locator(FixedLocator([1, 1.1, 1.25, 1.5, 2, 3, 5, 7]))
    ax1.yaxis.set_minor_locator(NullLocator())
    ax1.yaxis.set_major_formatter(ScalarFormatter())
    ax1.set_ylabel("max / balanced level")
    ax1.set_title("Speed-normalised imbalance after convergence (tx+rx; lower is better)")
    ax1.legend()
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(ScalarFormatter())
    ax2.set_ylabel("MACs moved per round")
    ax2.set_title("MAC moves per 10 s round, each an upstream MAC flap (lower is better)")
    ax2.set_xticks(range(len(names)))
    ax2.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

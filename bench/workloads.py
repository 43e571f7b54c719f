"""Synthetic, seeded workloads for the rebalancing benchmark: VMs (MAC, VLAN) with
heavy-tailed traffic on bridges of 2-4 uplinks of equal or mixed speed.

Load distributions (`dist`), scaled so each direction's expected total is `utilisation`
of the summed uplink capacity:

- "pareto": Pareto(1.5) per MAC (a few VMs carry most of the traffic), capped at half the
  slowest uplink (the old benchmark's only workload: no elephant ever exceeds a link);
- "heavy": Pareto(1.1), capped only at 0.9 of the fastest uplink;
- "elephants": 5% of the MACs (at least one) carry 20x the mean of the others (log-normal);
- "giant": "pareto", plus MAC 0 carrying 1.5x the slowest uplink's speed on its own.

Each MAC's transmitted share of its load is uniform 0.1..0.9 (some VMs mostly send, some
mostly receive), or 0.5 for all when `symmetric`.

Drift: each round (one rebalance interval) a MAC's load is base * exp(z), where z is an
AR(1) process (z' = rho z + sigma e, e ~ N(0, 1)); sigma 0 gives constant loads.
`down = (uplink, round_down, round_up)`: that uplink dies at the start of round_down and
returns at the start of round_up. Everything derives from `seed`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

G = 1_000_000_000


@dataclass
class Workload:
    name: str
    speeds: list[int]  # bits/s per uplink; uplink i has port number i + 1
    n_macs: int
    seed: int = 1
    utilisation: float = 0.4  # expected per-direction total / summed capacity
    sigma: float = 0.15  # per-round drift of log-load; 0 = constant
    rho: float = 0.9
    symmetric: bool = False
    dist: str = "pareto"
    # "learn": each system places new MACs its own way; "one": all start on uplink 1
    start: str = "learn"
    down: tuple[int, int, int] | None = None
    keys: list[tuple[str, int]] = field(init=False)
    base: list[float] = field(init=False)  # bytes/s, tx + rx
    tx_share: list[float] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        n = self.n_macs
        self.keys = [(_mac(i), (10, 20, 30)[i % 3]) for i in range(n)]
        slowest, fastest = min(self.speeds) / 8.0, max(self.speeds) / 8.0
        if self.dist in ("pareto", "giant"):
            raw, cap = [rng.paretovariate(1.5) for _ in range(n)], slowest / 2.0
        elif self.dist == "heavy":
            raw, cap = [rng.paretovariate(1.1) for _ in range(n)], 0.9 * fastest
        elif self.dist == "elephants":
            big = max(1, n // 20)
            raw = [20.0 if i % (n // big) == 0 else 1.0 for i in range(n)]
            raw = [r * rng.lognormvariate(0.0, 0.5) for r in raw]
            cap = 0.9 * fastest
        else:
            raise ValueError(f"unknown dist {self.dist!r}")
        # tx + rx both directions: 2 * utilisation * capacity expected in total
        scale = 2.0 * self.utilisation * sum(self.speeds) / 8.0 / sum(raw)
        self.tx_share = [0.5 if self.symmetric else rng.uniform(0.1, 0.9) for _ in raw]
        # the cap applies to the MAC's heavier direction
        pairs = zip(raw, self.tx_share, strict=True)
        self.base = [min(r * scale, cap / max(sh, 1 - sh)) for r, sh in pairs]
        if self.dist == "giant":
            self.base[0] = 2 * 1.5 * slowest  # 1.5x the slowest link in each direction
            self.tx_share[0] = 0.5
        self._rng = random.Random(self.seed + 1)
        self._z = [0.0] * n

    @property
    def uplinks(self) -> list[int]:
        return list(range(1, len(self.speeds) + 1))

    def live(self, round_no: int) -> list[int]:
        """Uplinks alive during round `round_no` (1-based)."""
        if self.down is None:
            return self.uplinks
        uplink, start, end = self.down
        if start <= round_no < end:
            return [u for u in self.uplinks if u != uplink]
        return self.uplinks

    def step(self) -> list[tuple[float, float]]:
        """Advance one round; returns each MAC's (tx, rx) bytes/s during that round."""
        rates = []
        gauss, rho, sigma = self._rng.gauss, self.rho, self.sigma
        for i, base in enumerate(self.base):
            if sigma:
                self._z[i] = rho * self._z[i] + sigma * gauss(0.0, 1.0)
            load = base * math.exp(self._z[i])
            share = self.tx_share[i]
            rates.append((load * share, load * (1.0 - share)))
        return rates


def _mac(i: int) -> str:
    # locally administered unicast, hypervisor-style sequential
    return "02:16:3e:%02x:%02x:%02x" % ((i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)


SPEED_SETS = {
    "2x10G": [10 * G, 10 * G],
    "10G+1G": [10 * G, 1 * G],
    "3x10G": [10 * G, 10 * G, 10 * G],
    "4x10G": [10 * G] * 4,
    "2x10G+2x1G": [10 * G, 10 * G, 1 * G, 1 * G],
    "25G+10G+1G": [25 * G, 10 * G, 1 * G],
}


def small_constant(seeds: int = 10) -> list[Workload]:
    """Constant loads, 4-14 MACs, 2-4 uplinks, equal and mixed speeds, several seeds:
    the cases where the exact optimum is known (MILP)."""
    out = []
    for speeds in ("2x10G", "10G+1G", "4x10G", "25G+10G+1G"):
        for n in (4, 8, 14):
            for seed in range(1, seeds + 1):
                dist = "heavy" if seed % 2 else "pareto"
                name = f"{speeds} {n} const"
                out.append(Workload(name, SPEED_SETS[speeds], n, seed, sigma=0.0, dist=dist))
    return out


def cases(quick: bool = False) -> list[Workload]:
    """The drifting-load matrix (`quick`: a smoke subset that still includes 10,000 MACs)."""
    s = SPEED_SETS
    if quick:
        return [
            Workload("2x10G 4 drift", s["2x10G"], 4),
            Workload("10G+1G 1000 heavy", s["10G+1G"], 1000, dist="heavy"),
            Workload("2x10G 1000 all-on-one", s["2x10G"], 1000, start="one"),
            Workload("2x10G 10000 down-up", s["2x10G"], 10000, dist="heavy", down=(2, 5, 15)),
        ]
    matrix = []
    for speeds in ("2x10G", "10G+1G", "4x10G", "25G+10G+1G"):
        for n in (4, 14, 100, 1000, 10000):
            matrix.append(Workload(f"{speeds} {n} drift", s[speeds], n, dist="heavy"))
    matrix += [
        Workload("2x10G+2x1G 1000 pareto", s["2x10G+2x1G"], 1000),
        Workload("3x10G 101 drift", s["3x10G"], 101),  # OVS's own test: 101 MACs
        Workload("2x10G 1000 constant", s["2x10G"], 1000, sigma=0.0),
        Workload("2x10G 1000 elephants", s["2x10G"], 1000, dist="elephants"),
        Workload("4x10G 10000 elephants", s["4x10G"], 10000, dist="elephants"),
        Workload("10G+1G 100 giant", s["10G+1G"], 100, dist="giant"),
        Workload("25G+10G+1G 1000 giant", s["25G+10G+1G"], 1000, dist="giant"),
        Workload("2x10G 1000 all-on-one", s["2x10G"], 1000, start="one"),
        Workload("10G+1G 100 all-on-one", s["10G+1G"], 100, start="one"),
        Workload("2x10G 1000 down-up", s["2x10G"], 1000, dist="heavy", down=(2, 10, 25)),
        Workload("2x10G 10000 down-up", s["2x10G"], 10000, dist="heavy", down=(2, 10, 25)),
        Workload("4x10G 10000 down-up", s["4x10G"], 10000, dist="elephants", down=(1, 10, 25)),
        Workload("10G+1G 1000 down-up", s["10G+1G"], 1000, dist="heavy", down=(1, 10, 25)),
    ]
    return matrix

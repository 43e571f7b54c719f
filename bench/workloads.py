"""Synthetic, seeded workloads for the rebalancing benchmark: VMs (MAC, VLAN) with
heavy-tailed traffic on bridges of 2-4 uplinks of equal or mixed speed.

Each MAC has a base load drawn from a Pareto distribution (alpha 1.5: a few VMs carry most
of the traffic, as on real hypervisors), scaled so that the bridge's expected total is
`utilisation` of the summed uplink capacity and capped at half the slowest uplink. Its
transmitted share of that load is per MAC (uniform 0.1..0.9 by default: some VMs mostly
send, some mostly receive), or 0.5 for all when `symmetric`.

Drift: each round (one rebalance interval) a MAC's load is base * exp(z), where z is an
AR(1) process (z' = rho z + sigma e, e ~ N(0, 1)), so loads wander and recover; sigma 0
gives constant loads. Everything derives from `seed`: same seed, same numbers.
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
    utilisation: float = 0.4
    sigma: float = 0.15  # per-round drift of log-load; 0 = constant
    rho: float = 0.9
    symmetric: bool = False
    # "learn": each system places new MACs its own way; "one": all start on uplink 1
    start: str = "learn"
    keys: list[tuple[str, int]] = field(init=False)
    base: list[float] = field(init=False)
    tx_share: list[float] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.keys = [(_mac(i), (10, 20, 30)[i % 3]) for i in range(self.n_macs)]
        raw = [rng.paretovariate(1.5) for _ in range(self.n_macs)]
        capacity = sum(self.speeds) / 8.0
        # Pareto(1.5) has mean 3: scale so the expected total is utilisation * capacity
        scale = self.utilisation * capacity / (3.0 * self.n_macs)
        cap = min(self.speeds) / 8.0 / 2.0
        self.base = [min(r * scale, cap) for r in raw]
        self.tx_share = [0.5 if self.symmetric else rng.uniform(0.1, 0.9) for _ in raw]
        self._rng = random.Random(self.seed + 1)
        self._z = [0.0] * self.n_macs

    @property
    def uplinks(self) -> list[int]:
        return list(range(1, len(self.speeds) + 1))

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
}


def cases(quick: bool = False) -> list[Workload]:
    """The benchmark matrix (`quick`: a smoke subset that still includes 10,000 MACs)."""
    if quick:
        return [
            Workload("2x10G 4 drift", SPEED_SETS["2x10G"], 4),
            Workload("2x10G 100 drift", SPEED_SETS["2x10G"], 100),
            Workload("10G+1G 1000 drift", SPEED_SETS["10G+1G"], 1000),
            Workload("2x10G 1000 all-on-one", SPEED_SETS["2x10G"], 1000, start="one"),
            Workload("2x10G+2x1G 10000 drift", SPEED_SETS["2x10G+2x1G"], 10000),
        ]
    matrix = []
    for speeds in ("2x10G", "10G+1G", "4x10G", "2x10G+2x1G"):
        for n in (4, 100, 1000, 10000):
            matrix.append(Workload(f"{speeds} {n} drift", SPEED_SETS[speeds], n))
    matrix += [
        Workload("3x10G 101 drift", SPEED_SETS["3x10G"], 101),  # OVS's own test: 101 MACs
        Workload("2x10G 1000 constant", SPEED_SETS["2x10G"], 1000, sigma=0.0),
        Workload("2x10G 1000 symmetric", SPEED_SETS["2x10G"], 1000, symmetric=True),
        Workload("2x10G 1000 all-on-one", SPEED_SETS["2x10G"], 1000, start="one"),
        Workload("10G+1G 100 all-on-one", SPEED_SETS["10G+1G"], 100, start="one"),
    ]
    return matrix

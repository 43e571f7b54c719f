"""A bounded ring of recent events (for the REST API) and counters (for metrics)."""

from __future__ import annotations

import collections
from typing import Any


class EventLog:
    """Bounded ring of recent events plus monotonically growing counters."""

    def __init__(self, size: int = 1000) -> None:
        self.events: collections.deque[dict] = collections.deque(maxlen=size)
        self.counters: collections.Counter[str] = collections.Counter()
        self.seq = 0

    def add(self, now: float, kind: str, **fields: Any) -> None:
        self.seq += 1
        self.counters[kind] += 1
        self.events.append({"seq": self.seq, "time": now, "type": kind, **fields})

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

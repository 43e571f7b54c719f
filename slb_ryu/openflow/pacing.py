"""What happens to learning packets after the core hands them out: repeats, and a
second chance for those a dying connection may have swallowed.

No Ryu import: connections are opaque objects and the clock is passed in, so this is
unit-tested with plain data. The app asks `due` for repeats and `lost` for packets
whose connection was replaced before they could be considered delivered, and gives
those back to the core (`BridgeCore.requeue_learning`), which sends them once the
switch is connected and synced again.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Callable
from typing import Any

from slb_ryu.core.bridge import LearningPackets


class LearningLedger:
    """Learning packets sent: their pending repeats and their delivery check."""

    def __init__(self, repeat: int = 2, interval: float = 1.0, confirm_after: float = 2.0) -> None:
        self.repeat = max(1, repeat)
        self.interval = interval
        self.confirm_after = confirm_after
        self._repeats: list[tuple[float, int, int, LearningPackets, int]] = []
        self._seq = itertools.count()
        self._unconfirmed: collections.deque[tuple[float, int, Any, LearningPackets]] = (
            collections.deque()
        )

    def sent(
        self, dpid: int, conn: Any, lp: LearningPackets, now: float, left: int | None = None
    ) -> None:
        """`lp` went into connection `conn`; `left` repeats still to come (None: all)."""
        self._unconfirmed.append((now, dpid, conn, lp))
        left = self.repeat - 1 if left is None else left
        if left > 0:
            heapq.heappush(self._repeats, (now + self.interval, next(self._seq), dpid, lp, left))

    def due(self, now: float, limit: int | None = None) -> list[tuple[int, LearningPackets, int]]:
        """Repeats whose time has come, as (dpid, packets, repeats left after this one)."""
        out = []
        while self._repeats and self._repeats[0][0] <= now and (limit is None or len(out) < limit):
            _, _, dpid, lp, left = heapq.heappop(self._repeats)
            out.append((dpid, lp, left - 1))
        return out

    def lost(
        self, now: float, current: Callable[[int, Any], bool]
    ) -> list[tuple[int, LearningPackets]]:
        """Packets sent `confirm_after` s ago or more into a connection that is no longer
        `current`: the switch may never have had them."""
        out = []
        horizon = now - self.confirm_after
        while self._unconfirmed and self._unconfirmed[0][0] <= horizon:
            _, dpid, conn, lp = self._unconfirmed.popleft()
            if not current(dpid, conn):
                out.append((dpid, lp))
        return out

    def __len__(self) -> int:
        return len(self._repeats) + len(self._unconfirmed)

"""Small clocked guards against the network's known failure modes. Pure; `now` is passed in.

- `FlapGuard`: an uplink whose link keeps bouncing would otherwise make every bounce a
  failover (moves, learning packets, upstream MAC flaps). After `limit` link-downs within
  `window` seconds it is held out of service until `hold` seconds pass without a flap.
- `AnnounceLock`: a gratuitous ARP for one of our MACs arriving from the fabric normally
  means the VM now lives on another host. But our own announcements (and the VM's own
  GARPs) come back to us through the other switch; for `seconds` after we saw or sent
  one, such a GARP is our echo, not a migration (Open vSwitch's 5 s "grat-ARP lock").
"""

from __future__ import annotations

import collections
from collections.abc import Hashable


class FlapGuard:
    def __init__(self, limit: int = 4, window: float = 10.0, hold: float = 30.0) -> None:
        self.limit = limit
        self.window = window
        self.hold = hold
        self._downs: dict[int, collections.deque[float]] = {}

    def link_down(self, port_no: int, now: float) -> bool:
        """Record a link-down; True when the uplink has now flapped `limit` times in `window`."""
        downs = self._downs.setdefault(port_no, collections.deque(maxlen=self.limit))
        downs.append(now)
        return len(downs) >= self.limit and now - downs[0] <= self.window

    def quiet(self, port_no: int, now: float) -> bool:
        """No link-down for `hold` seconds: a held uplink may serve again."""
        downs = self._downs.get(port_no)
        return not downs or now - downs[-1] >= self.hold

    def forget(self, port_no: int) -> None:
        self._downs.pop(port_no, None)


class AnnounceLock:
    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self._last: dict[Hashable, float] = {}

    def announce(self, key: Hashable, now: float) -> None:
        self._last[key] = now

    def locked(self, key: Hashable, now: float) -> bool:
        last = self._last.get(key)
        return last is not None and now - last < self.seconds

    def forget(self, key: Hashable) -> None:
        self._last.pop(key, None)

    def prune(self, now: float) -> None:
        """Drop keys whose lock has expired (keeps the table as small as the window)."""
        self._last = {k: t for k, t in self._last.items() if now - t < self.seconds}

    def __len__(self) -> int:
        return len(self._last)

"""Learning copies that never arrived, recovered from the datapath's own marks. Pure.

A new source's first frame is forwarded by the datapath (table 2) with a copy to the
controller, and the same flow's `learn` marks the source "learning in progress" in
table 5 (cookie `COOKIE_PENDING_MARK`, `PENDING_HOLD` s) so its later frames are not
punted again. The mark is made when OVS translates the frame; the copy is sent when the
datapath executes the translated actions, so a copy the port's meter drops, or one OVS
loses on its way to us, leaves a mark and no packet-in: the MAC would be learned only
from a frame sent after the mark expires, never if it goes quiet.

The app reads the marks (one cookie-filtered flow-stats request, ~1 s apart) and hands
them to `BridgeCore.learning_marks`, which learns each marked source it does not know
through the same path as a real copy (port security, port limit), within the same
per-port budget as the packet-in meter (`LearnBudget`), once per mark. The marks of
sources it knows by then are deleted with their echo guards, in one batch, rather than
left to expire one by one (`pipeline.learned_while_learning` says why).
"""

from __future__ import annotations

from dataclasses import dataclass

Mark = tuple[int, str, int, float]  # (in_port, MAC, VLAN, age of the mark in s)


@dataclass
class _Bucket:
    tokens: float
    at: float


class LearnBudget:
    """Per-port token bucket at the packet-in meter's rate (burst the same, as the meter).

    Every learning copy that arrives takes a token (the meter already let it through, so
    it is never refused); a recovery needs one. Copies and recoveries together then stay
    within what the port's meter allows, so a port flooding new MACs (whose copies the
    meter drops but whose marks are still made) cannot use recovery to get around it."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._buckets: dict[int, _Bucket] = {}

    def _bucket(self, port_no: int, now: float) -> _Bucket:
        bucket = self._buckets.get(port_no)
        if bucket is None:
            bucket = self._buckets[port_no] = _Bucket(self.rate, now)
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(self.rate, bucket.tokens + elapsed * self.rate)
        bucket.at = now
        return bucket

    def charge(self, port_no: int, now: float) -> None:
        """A copy the meter let through: take a token (the balance may go negative)."""
        if self.rate > 0:
            self._bucket(port_no, now).tokens -= 1.0

    def take(self, port_no: int, now: float) -> bool:
        """A recovery: True (and a token taken) if the port's budget allows one now."""
        if self.rate <= 0:  # no meter configured: no budget either
            return True
        bucket = self._bucket(port_no, now)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def forget(self, port_no: int) -> None:
        self._buckets.pop(port_no, None)

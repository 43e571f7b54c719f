"""Every decision, three ways: a bounded ring of recent events (for the REST API),
counters (for metrics) and a log line (stdlib `logging`, so journald/syslog get it).

Log levels by kind: learns, forgets and IP sightings are DEBUG (a busy hypervisor learns
all day); moves, rebalances, pins, syncs, migrations, REST writes are INFO; an uplink
going down or being held for flapping, a switch disconnecting, an OpenFlow error reply
are WARNING. Each line
names the bridge. Lines are rate-limited per kind (`burst` per `window` seconds of the
events' own clock) so a flood cannot fill a disk: what was held back is counted and
written as one summary line with the first event after the window is over (or when
`flush(now)` is called, e.g. from a timer).
"""

from __future__ import annotations

import collections
import logging
from typing import Any

LOG = logging.getLogger("slb_ryu.events")

LEVELS = {
    "learn": logging.DEBUG,
    "forget": logging.DEBUG,
    "ip": logging.DEBUG,
    "learning-packets": logging.DEBUG,
    "uplink-down": logging.WARNING,
    "uplink-held": logging.WARNING,
    "switch-disconnect": logging.WARNING,
    "openflow-error": logging.WARNING,
    "rest-refused": logging.WARNING,
}
DEFAULT_LEVEL = logging.INFO  # move, rebalance, pin, unpin, sync, migrated-away, rest, ...
# Fields written first, in this order; the rest follow sorted.
_FIRST = ("mac", "vlan", "port", "uplink", "reason", "from", "to")


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        v = ",".join(map(str, v))
    text = "-" if v is None else str(v)
    return f'"{text}"' if " " in text or not text else text


class RateLimit:
    """At most `burst` lines per kind per `window` seconds; the rest are counted."""

    def __init__(self, burst: int = 30, window: float = 60.0) -> None:
        self.burst = burst
        self.window = window
        self.started: dict[str, float] = {}
        self.lines: collections.Counter[str] = collections.Counter()
        self.held: collections.Counter[str] = collections.Counter()
        self.held_total = 0

    def allow(self, kind: str, now: float) -> bool:
        start = self.started.get(kind)
        if start is None or now - start >= self.window or now < start:
            self.started[kind], self.lines[kind] = now, 0
        if self.lines[kind] < self.burst:
            self.lines[kind] += 1
            return True
        self.held[kind] += 1
        self.held_total += 1
        return False

    def due(self, now: float) -> list[tuple[str, int]]:
        """Kinds whose window is over with lines held back: (kind, count), reset."""
        done = [
            (k, n)
            for k, n in self.held.items()
            if n and (now - self.started.get(k, now) >= self.window or now < self.started[k])
        ]
        for k, _ in done:
            del self.held[k]
        return done


class EventLog:
    """Bounded ring of recent events plus monotonically growing counters, all logged.

    `names` maps dpid -> bridge name (BridgeCore fills it on connect); events of a dpid
    not named yet say "dpid 0x...". `logger` can be replaced (tests, a child logger)."""

    def __init__(
        self,
        size: int = 1000,
        burst: int = 30,
        window: float = 60.0,
        logger: logging.Logger = LOG,
    ) -> None:
        self.events: collections.deque[dict] = collections.deque(maxlen=size)
        self.counters: collections.Counter[str] = collections.Counter()
        # Per-bridge tallies the metrics read, counted here as each event happens (exact;
        # a ring-buffer rescan would miss what scrolled out between two scrapes).
        self.moves: collections.Counter[tuple[int, str]] = collections.Counter()  # reason
        self.uplink_downs: collections.Counter[tuple[int, str]] = collections.Counter()
        self.seq = 0
        self.names: dict[int, str] = {}
        self.limit = RateLimit(burst, window)
        self.logger = logger

    def add(self, now: float, kind: str, **fields: Any) -> None:
        self.seq += 1
        self.counters[kind] += 1
        dpid = fields.get("dpid")
        if isinstance(dpid, int):
            if kind == "move":
                self.moves[(dpid, str(fields.get("reason") or "unknown"))] += 1
            elif kind == "uplink-down":
                self.uplink_downs[(dpid, str(fields.get("uplink") or "unknown"))] += 1
        self.events.append({"seq": self.seq, "time": now, "type": kind, **fields})
        self._log(now, kind, fields)

    def note(self, now: float, kind: str, **fields: Any) -> None:
        """Counted and logged like `add`, but kept out of the ring (e.g. REST audit lines,
        which would otherwise push decisions out of GET /events)."""
        self.counters[kind] += 1
        self._log(now, kind, fields)

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def bridge(self, dpid: int | None) -> str:
        if dpid is None:
            return "controller"
        name = self.names.get(dpid)
        return f"bridge {name}" if name else f"bridge dpid {dpid:#x}"

    def line(self, kind: str, fields: dict[str, Any]) -> str:
        """'bridge hv1: move mac=... vlan=0 reason=failover from=eth1 to=eth2 ...'."""
        rest = {k: v for k, v in fields.items() if k not in ("dpid", "bridge")}
        keys = [k for k in _FIRST if k in rest] + sorted(k for k in rest if k not in _FIRST)
        where = fields.get("bridge") and f"bridge {fields['bridge']}"
        head = where or self.bridge(fields.get("dpid"))
        return " ".join([f"{head}: {kind}"] + [f"{k}={_value(rest[k])}" for k in keys])

    def flush(self, now: float) -> None:
        """Write the summaries of rate-limited kinds whose window is over."""
        for kind, held in self.limit.due(now):
            self.logger.warning(
                "log rate limit: %d more '%s' lines suppressed in the last %g s "
                "(all are in GET /slb/v1/events and the metrics)",
                held,
                kind,
                self.limit.window,
            )

    def _log(self, now: float, kind: str, fields: dict[str, Any]) -> None:
        level = LEVELS.get(kind, DEFAULT_LEVEL)
        if self.limit.held:
            self.flush(now)
        if not self.logger.isEnabledFor(level):
            return
        if self.limit.allow(kind, now):
            self.logger.log(level, "%s", self.line(kind, fields))
        else:
            self.count("log_lines_suppressed")

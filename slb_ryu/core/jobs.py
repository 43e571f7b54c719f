"""Supervision of the controller's periodic jobs (stats poll, rebalance, tick, OVSDB).

A job that raises must not silently end the loop that runs every other job (which is
what an unguarded `hub.spawn` loop does): the failure is logged with its traceback,
counted (`job_failure:<name>` in the event counters, hence in /metrics), kept for
/health until the job succeeds again, and the next run happens as scheduled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slb_ryu.core.events import EventLog


@dataclass
class JobState:
    runs: int = 0
    failures: int = 0
    consecutive: int = 0
    last_error: str = ""
    last_failure: float = 0.0


class Supervisor:
    """Runs jobs by name and remembers how each one is doing."""

    def __init__(self, events: EventLog, logger: logging.Logger | None = None) -> None:
        self.events = events
        self.logger = logger or logging.getLogger(__name__)
        self.jobs: dict[str, JobState] = {}

    def run(self, name: str, fn: Callable[..., Any], *args: Any, now: float | None = None) -> Any:
        """Call `fn(*args)`; on an exception log, count and return None instead of raising."""
        state = self.jobs.setdefault(name, JobState())
        state.runs += 1
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - the point is to survive any job bug
            state.failures += 1
            state.consecutive += 1
            state.last_error = f"{type(exc).__name__}: {exc}"
            state.last_failure = time.time() if now is None else now
            self.events.count(f"job_failure:{name}")
            self.events.count("job_failures")
            self.logger.exception(
                "periodic job %s failed (%d in a row, %d in all); it will run again",
                name,
                state.consecutive,
                state.failures,
            )
            return None
        state.consecutive = 0
        return result

    def failures(self) -> dict[str, int]:
        """Exceptions per job since start, for every job that has run at least once."""
        return {name: s.failures for name, s in sorted(self.jobs.items())}

    def problems(self, now: float) -> list[str]:
        """/health lines for the jobs whose last run failed."""
        return [
            f"periodic job {name} is failing ({s.consecutive} run(s) in a row, last "
            f"{now - s.last_failure:.0f} s ago): {s.last_error}"
            for name, s in sorted(self.jobs.items())
            if s.consecutive
        ]

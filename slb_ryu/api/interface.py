"""What the operator interface needs of the running controller, declared once.

`SlbApp` implements it; the unit tests' `FakeApp` implements it with real `BridgeCore`s
and no switch. REST, metrics and views use nothing else of the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from slb_ryu.core.bridge import BridgeCore, Output
from slb_ryu.core.events import EventLog
from slb_ryu.core.placement import Move


class ControllerApi(Protocol):
    bridges: dict[int, BridgeCore]  # every bridge ever synced, by datapath id
    datapaths: Mapping[int, Any]  # the connected ones
    event_log: EventLog
    settings: Any  # slb_ryu.options.Settings
    started: float  # epoch seconds
    stats_poll_seconds: float  # duration of the last complete statistics poll

    def act(self, dpid: int, action: Callable[[BridgeCore], Output]) -> Output:
        """Run a core command on one bridge, send its output to the switch, return it."""
        ...

    def request_rebalance(self, dpid: int | None) -> list[tuple[int, Move]]:
        """Rebalance one bridge (or every synced one) now; the moves made, by dpid."""
        ...

    def security_problems(self) -> list[str]:
        """Impostor connections refused lately and bridges left unmanaged, as /health lines."""
        ...

    def job_problems(self) -> list[str]:
        """Periodic jobs that are failing, as /health problem lines (empty when fine)."""
        ...

    def next_rebalance_in(self) -> float | None:
        """Seconds until the next periodic rebalance (None when rebalancing is off)."""
        ...

    def job_failures(self) -> dict[str, int]:
        """Exceptions raised so far by each periodic job that has run (0 included)."""
        ...

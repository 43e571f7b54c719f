"""A Ryu app module loaded next to slb_ryu.app (same process) that makes the
statistics-poll job raise on its first FAILURES runs: the fault injection of
test_supervision.py, with no test hook in the product's code."""

from ryu.base import app_manager

from slb_ryu import app as slb_app

FAILURES = 4
_original = slb_app.SlbApp._poll_all
_calls = {"n": 0}


def _failing_poll_all(self):
    _calls["n"] += 1
    if _calls["n"] <= FAILURES:
        raise RuntimeError(f"injected stats-poll failure {_calls['n']}")
    return _original(self)


slb_app.SlbApp._poll_all = _failing_poll_all


class FaultyJobs(app_manager.RyuApp):
    """Nothing to do: importing this module installed the fault."""

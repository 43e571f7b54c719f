from slb_ryu.core.events import EventLog
from slb_ryu.core.jobs import Supervisor


def test_a_failing_job_is_counted_reported_and_recovers():
    events = EventLog()
    sup = Supervisor(events)
    calls = []

    def flaky(fail):
        calls.append(fail)
        if fail:
            raise RuntimeError("boom")
        return "ok"

    assert sup.run("stats-poll", flaky, True, now=10.0) is None
    assert sup.run("stats-poll", flaky, True, now=11.0) is None
    assert sup.run("rebalance", flaky, False) == "ok"
    assert events.counters["job_failure:stats-poll"] == 2
    assert events.counters["job_failures"] == 2
    (line,) = sup.problems(now=15.0)
    assert "stats-poll" in line and "2 run(s) in a row" in line and "RuntimeError: boom" in line
    assert "4 s ago" in line
    assert sup.run("stats-poll", flaky, False) == "ok"
    assert sup.problems(now=16.0) == []
    assert calls == [True, True, False, False]

"""A periodic job that raises is logged with its traceback, counted, shown in /health,
and keeps running; every other job keeps running too (issue 14: supervision)."""

from pathlib import Path

from lab import testbed as h

FAULTY = str(Path(__file__).with_name("faulty_jobs.py"))
CONFIG = "[slb]\nuplinks = svhv1-eth1, svhv1-eth2\nstats_interval = 1\nrebalance_interval = 1\n"


def test_failing_stats_poll_is_contained_reported_and_recovers(network_factory):
    ctl = h.Controller(
        apps=("slb_ryu.app", FAULTY), config=CONFIG, of_port=6701, ws_port=8111
    ).start()
    try:
        net = network_factory(controller_port=6701, prefix="sv", hvs=1, uplinks=2, vms_per_hv=2)
        h.wait_synced(ctl)
        v1, r1 = net.get("svv11"), net.get("svr1")
        h.wait_until(lambda: h.ping_learned(ctl, v1, r1), timeout=10, desc="v11 to reach r1")

        def degraded():
            health = ctl.get_json("/slb/v1/health")
            return health["status"] == "degraded" and any(
                "periodic job stats-poll is failing" in p for p in health["problems"]
            )

        h.wait_until(degraded, timeout=10, desc="/health to report the failing job")
        # The other jobs kept running while it failed: a flap-free tick and the
        # rebalance job ran; then the poll itself recovers and reports again.
        h.wait_until(
            lambda: ctl.get_json("/slb/v1/health")["status"] == "ok",
            timeout=15,
            desc="/health ok once the job succeeds again",
        )
        counters = ctl.get_json("/slb/v1/health")["counters"]
        assert counters["job_failure:stats-poll"] == 4
        h.wait_until(
            lambda: ctl.get_json("/slb/v1/health")["counters"].get("stats_replies", 0) >= 2,
            timeout=10,
            desc="statistics replies after the recovery",
        )
        metrics = h.http_request_json("GET", ctl.url("/metrics"))[1]
        assert 'slb_events_total{type="job_failure:stats-poll"} 4.0' in metrics
        assert 'slb_periodic_job_failures_total{task="stats-poll"} 4.0' in metrics
        assert 'slb_periodic_job_failures_total{task="rebalance"} 0.0' in metrics
        log = ctl.log_text()
        assert "periodic job stats-poll failed (1 in a row, 1 in all)" in log
        assert "RuntimeError: injected stats-poll failure 4" in log  # the traceback
        assert "Traceback" in log
        assert h.ping(v1, r1)
    finally:
        ctl.stop()

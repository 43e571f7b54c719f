"""EventLog: every decision in the log, at a level by kind, naming the bridge, and
rate-limited per kind with a summary of what was held back."""

import logging

from slb_ryu.core import pipeline as pl
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.events import EventLog
from slb_ryu.core.placement import OFPP_LOCAL, Port

MAC1 = "00:00:00:00:00:01"
LOGGER = "slb_ryu.events"


def lines(caplog, level=logging.DEBUG):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= level]


def test_failover_is_logged_with_bridge_reason_and_loads(caplog):
    caplog.set_level(logging.DEBUG, LOGGER)
    core = BridgeCore(1, ["up*"])
    ports = [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm1")]
    core.connect(ports, [], [], {}, now=0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, now=1.0)
    entry = core.entry(MAC1, 0)
    entry.tx_bps, entry.rx_bps = 1000.0, 500.0
    old = entry.uplink
    core.port_status("modify", Port(old, f"up{old}", live=False), 2.0)
    new = f"up{3 - old}"
    logged = lines(caplog)
    assert (
        logging.DEBUG,
        f"bridge hv1: learn mac={MAC1} vlan=0 port=vm1 reason=learn from=- to=up{old}",
    ) in logged
    assert (logging.WARNING, f"bridge hv1: uplink-down uplink=up{old} held=False moved=1") in logged
    move = [m for lvl, m in logged if lvl == logging.INFO and ": move " in m]
    assert move == [
        f"bridge hv1: move mac={MAC1} vlan=0 port=vm1 reason=failover from=up{old} to={new} "
        "from_bps=0 mac_bps=1500 to_bps=1500"
    ]


def test_learns_are_debug_only(caplog):
    caplog.set_level(logging.INFO, LOGGER)
    log = EventLog()
    log.names[1] = "hv1"
    log.add(0.0, "learn", dpid=1, mac=MAC1, vlan=0)
    log.add(0.0, "pin", dpid=1, mac=MAC1, vlan=0)
    assert lines(caplog) == [(logging.INFO, f"bridge hv1: pin mac={MAC1} vlan=0")]
    assert log.counters["learn"] == 1  # counted and in the ring all the same
    assert len(log.events) == 2


def test_unnamed_bridge_controller_lines_and_quoting(caplog):
    caplog.set_level(logging.DEBUG, LOGGER)
    log = EventLog()
    log.add(0.0, "switch-connect", dpid=0x5)
    log.note(0.0, "rest-write", method="POST", path="/slb/v1/rebalance", client="127.0.0.1")
    log.add(0.0, "openflow-error", dpid=5, cause="flow add table=1", error="BAD_MATCH/BAD_FIELD")
    assert lines(caplog) == [
        (logging.INFO, "bridge dpid 0x5: switch-connect"),
        (
            logging.INFO,
            "controller: rest-write client=127.0.0.1 method=POST path=/slb/v1/rebalance",
        ),
        (
            logging.WARNING,
            'bridge dpid 0x5: openflow-error cause="flow add table=1" error=BAD_MATCH/BAD_FIELD',
        ),
    ]
    assert [e["type"] for e in log.events] == ["switch-connect", "openflow-error"]  # note: no ring
    assert log.counters["rest-write"] == 1


def test_flood_is_rate_limited_per_kind_and_summarised(caplog):
    caplog.set_level(logging.DEBUG, LOGGER)
    log = EventLog(burst=3, window=10.0)
    for i in range(100):
        log.add(i * 0.01, "move", dpid=1, mac=MAC1, vlan=i)
    log.add(0.5, "pin", dpid=1, mac=MAC1, vlan=0)  # another kind has its own budget
    assert len(lines(caplog)) == 4 and log.counters["log_lines_suppressed"] == 97
    assert len(log.events) == 101  # the ring and counters miss nothing
    log.add(10.5, "move", dpid=1, mac=MAC1, vlan=0)  # window over: summary, then the line
    tail = lines(caplog)[4:]
    assert tail[0] == (
        logging.WARNING,
        "log rate limit: 97 more 'move' lines suppressed in the last 10 s "
        "(all are in GET /slb/v1/events and the metrics)",
    )
    assert tail[1][1].startswith("bridge dpid 0x1: move") and len(tail) == 2


def test_disabled_levels_cost_no_budget(caplog):
    caplog.set_level(logging.INFO, LOGGER)
    log = EventLog(burst=2, window=10.0)
    for _ in range(50):
        log.add(0.0, "learn", dpid=1)
    assert lines(caplog) == [] and log.counters["log_lines_suppressed"] == 0

"""/metrics: Prometheus text from the app's state, read at scrape time."""

from __future__ import annotations

from api_fake import MAC_A, Client, FakeApp
from prometheus_client.parser import text_string_to_metric_families

from slb_ryu import __version__
from slb_ryu.api import metrics
from slb_ryu.core.placement import Port


def scrape(client, accept=None):
    headers = {"Accept": accept} if accept else {}
    resp = client.get("/metrics", headers=headers)
    assert resp.status_int == 200, resp.text
    return resp


def samples(client) -> dict[tuple[str, tuple], float]:
    text = scrape(client).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def up(dp_id, dp_name, uplink):
    return (("dp_id", dp_id), ("dp_name", dp_name), ("uplink", uplink))


def test_text_format_and_faucet_labels():
    client = Client()
    resp = scrape(client)
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE slb_uplink_macs gauge" in resp.text
    assert "# TYPE slb_moves_total counter" in resp.text
    s = samples(client)
    assert s[("slb_uplink_up", up("0x1", "hv1", "hv1-eth1"))] == 1
    assert s[("slb_uplink_active", up("0x1", "hv1", "hv1-eth1"))] == 1
    assert s[("slb_uplink_active", up("0x1", "hv1", "hv1-eth2"))] == 0
    assert s[("slb_uplink_speed_bits_per_second", up("0x2", "hv2", "hv2-eth2"))] == 1e10
    macs = [s[("slb_uplink_macs", up("0x1", "hv1", f"hv1-eth{i}"))] for i in (1, 2)]
    assert sum(macs) == 4 and min(macs) >= 1
    assert s[("slb_bridge_connected", (("dp_id", "0x2"), ("dp_name", "hv2")))] == 1
    assert s[("slb_bridge_macs", (("dp_id", "0x1"), ("dp_name", "hv1")))] == 4
    assert s[("slb_info", (("version", __version__),))] == 1
    assert s[("slb_stats_poll_duration_seconds", ())] == 0.012
    assert s[("slb_stats_interval_seconds", ())] == client.app.settings.stats_interval
    assert s[("slb_events_total", (("type", "learn"),))] == 5
    assert ("process_cpu_seconds_total", ()) in s  # standard process metrics too


def test_openmetrics_when_asked():
    resp = scrape(Client(), accept="application/openmetrics-text; version=1.0.0")
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert resp.text.rstrip().endswith("# EOF")


def test_load_and_port_counters_follow_state():
    client = Client()
    core = client.app.bridges[1]
    entry = core.entry(MAC_A, 0)
    name = core.placement.port_name(entry.uplink)
    entry.tx_bps, entry.rx_bps = 1500.0, 300.0
    port = core.placement.port_by_name(name)
    port.tx_bytes, port.rx_bytes = 10_000, 20_000
    s = samples(client)
    labels = up("0x1", "hv1", name)
    assert s[("slb_uplink_load_tx_bytes_per_second", labels)] == 1500.0
    assert s[("slb_uplink_load_rx_bytes_per_second", labels)] == 300.0
    assert s[("slb_uplink_tx_bytes_total", labels)] == 10_000
    assert s[("slb_uplink_rx_bytes_total", labels)] == 20_000
    port.tx_bytes = 15_000
    assert samples(client)[("slb_uplink_tx_bytes_total", labels)] == 15_000


def test_moves_by_reason_failovers_learning_packets_packet_ins():
    client = Client()
    app = client.app
    core = app.bridges[1]
    app.event_log.count("packet_in", 7)
    entry = core.entry(MAC_A, 0)
    target = "hv1-eth2" if entry.uplink == 1 else "hv1-eth1"
    before = samples(client)
    assert before[("slb_packet_in_total", ())] == 7
    assert before[("slb_learning_packets_sent_total", ())] == 0
    resp = client.post(f"/slb/v1/placement/{MAC_A}/move", {"uplink": target})
    assert resp.status_int == 200
    app.event_log.count("learning_packets_sent", 1)  # the app counts what it sends
    # Fail the uplink MAC_A is on now: its MACs move with reason "failover".
    core.port_status(
        "modify", Port(core.placement.port_by_name(target).port_no, target, live=False), 2000.0
    )
    s = samples(client)
    dp = (("dp_id", "0x1"), ("dp_name", "hv1"))
    assert s[("slb_moves_total", dp + (("reason", "manual"),))] == 1
    failover_moves = sum(
        1 for e in app.event_log.events if e["type"] == "move" and e["reason"] == "failover"
    )
    assert failover_moves >= 1
    assert s[("slb_moves_total", dp + (("reason", "failover"),))] == failover_moves
    assert s[("slb_uplink_failovers_total", up("0x1", "hv1", target))] == 1
    assert s[("slb_uplink_up", up("0x1", "hv1", target))] == 0
    assert s[("slb_learning_packets_sent_total", ())] == 1
    # Counters never go down between scrapes.
    again = samples(client)
    assert again[("slb_moves_total", dp + (("reason", "manual"),))] == 1


def test_move_counts_are_exact_even_when_the_ring_scrolls():
    """Counted where the event happens: a burst larger than the ring between two scrapes
    is counted in full (the ring itself keeps only its last `maxlen` events)."""
    app = FakeApp()
    collector = metrics.SlbCollector(app)
    list(collector.collect())
    burst = app.event_log.events.maxlen + 10
    for i in range(burst):
        app.event_log.add(float(i), "move", dpid=1, reason="rebalance", mac=MAC_A, vlan=0)
    app.event_log.add(1.0, "uplink-down", dpid=1, uplink="hv1-eth1")
    fams = {f.name: f for f in collector.collect()}
    assert "slb_event_log_missed" not in fams
    (moves,) = [
        s
        for s in fams["slb_moves"].samples
        if s.name == "slb_moves_total" and s.labels["reason"] == "rebalance"
    ]
    assert moves.value == burst
    (downs,) = [s for s in fams["slb_uplink_failovers"].samples if s.name.endswith("_total")]
    assert downs.value == 1 and downs.labels["uplink"] == "hv1-eth1"


def test_drained_uplink_metrics():
    app = FakeApp()
    app.bridges[1].drain("hv1-eth1", 2000.0)
    fams = {f.name: f for f in metrics.SlbCollector(app).collect()}
    by = {
        s.labels["uplink"]: s.value
        for s in fams["slb_uplink_drained"].samples
        if s.labels["dp_name"] == "hv1"
    }
    assert by == {"hv1-eth1": 1, "hv1-eth2": 0}
    usable = {
        s.labels["uplink"]: s.value
        for s in fams["slb_uplink_usable"].samples
        if s.labels["dp_name"] == "hv1"
    }
    assert usable == {"hv1-eth1": 0, "hv1-eth2": 1}


def test_broken_state_does_not_break_the_scrape(caplog):
    app = FakeApp()
    app.bridges[1] = object()  # not a core: collection stops, the scrape still answers
    client = Client(app)
    resp = scrape(client)
    assert "slb_info" in resp.text
    assert "metrics collection failed" in caplog.text


def test_wrong_method():
    resp = Client().post("/metrics")
    assert resp.status_int == 405 and resp.headers["Allow"] == "GET, HEAD"


def test_held_uplink_is_up_but_not_usable():
    """bond/show parity: a flapping uplink held out of service is not 'up and fine'."""
    client = Client()
    client.app.bridges[1].placement.ports[2].held = True
    s = samples(client)
    held = up("0x1", "hv1", "hv1-eth2")
    assert s[("slb_uplink_up", held)] == 1
    assert s[("slb_uplink_held", held)] == 1 and s[("slb_uplink_usable", held)] == 0
    fine = up("0x1", "hv1", "hv1-eth1")
    assert s[("slb_uplink_held", fine)] == 0 and s[("slb_uplink_usable", fine)] == 1


def test_path_up_only_for_uplinks_with_a_probe_verdict():
    client = Client()
    ports = client.app.bridges[1].placement.ports
    ports[1].path, ports[1].path_dead = "dead", True
    ports[2].path = "up"
    s = samples(client)
    assert s[("slb_uplink_path_up", up("0x1", "hv1", "hv1-eth1"))] == 0
    assert s[("slb_uplink_path_up", up("0x1", "hv1", "hv1-eth2"))] == 1
    assert ("slb_uplink_path_up", up("0x2", "hv2", "hv2-eth1")) not in s  # probing off

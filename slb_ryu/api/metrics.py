"""Prometheus metrics for slb-ryu, read from the app's state at scrape time.

`SlbCollector` is a custom `prometheus_client` collector: nothing is updated on the
hot path, every scrape walks `app.bridges` and `app.event_log`. Labels follow Faucet:
`dp_id` (0x-hex datapath id), `dp_name` (bridge name), `uplink` (port name).

Served as `/metrics` on Ryu's WSGI server (the REST API's port) by `MetricsController`.

Sources:
- uplink state, speed, MAC count, smoothed load, port byte counters: the core's read
  model (`slb_ryu.core.view.uplinks`), live values;
- learning packets sent, packet-ins and every other event type: `event_log.counters`
  (exact, since start);
- moves by reason and failovers per uplink: `event_log.moves` / `uplink_downs`, counted
  where the events happen (exact, whatever the ring buffer holds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from ryu.app.wsgi import ControllerBase, Response, route
from webob import Request

from slb_ryu import __version__
from slb_ryu.core import view

LOG = logging.getLogger(__name__)
APP_KEY = "slb_app"
REGISTRY_KEY = "slb_metrics_registry"
PATH = "/metrics"

DP_LABELS = ["dp_id", "dp_name"]
UPLINK_LABELS = ["dp_id", "dp_name", "uplink"]


def dp_id_label(dpid: int) -> str:
    """Faucet's dp_id label: 0x-hex."""
    return hex(dpid)


class SlbCollector:
    """Collects slb-ryu metrics from a running app (or any object shaped like it):
    `bridges: dict[int, BridgeCore]`, `datapaths: dict`, `event_log: EventLog`,
    optional `started` (epoch seconds) and `stats_poll_seconds` (last poll duration)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> list:
        # No up-front description: registering must not run a collection.
        return []

    # ---- collection -----------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception:  # noqa: BLE001 - a scrape must never take the app down
            LOG.exception("metrics collection failed")

    def _collect(self) -> Iterator[Metric]:
        app = self.app
        info = GaugeMetricFamily("slb_info", "slb-ryu version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        started = getattr(app, "started", None)
        if isinstance(started, (int, float)):
            yield GaugeMetricFamily(
                "slb_start_time_seconds", "When the controller started (epoch)", value=started
            )
        bridges = dict(getattr(app, "bridges", {}))
        datapaths = getattr(app, "datapaths", {})
        names = {
            dpid: getattr(getattr(core, "placement", None), "name", "")
            for dpid, core in bridges.items()
        }

        connected = GaugeMetricFamily(
            "slb_bridge_connected", "1 when the bridge's switch is connected", labels=DP_LABELS
        )
        synced = GaugeMetricFamily(
            "slb_bridge_synced",
            "1 when the controller has synced the bridge's flow table",
            labels=DP_LABELS,
        )
        bridge_macs = GaugeMetricFamily(
            "slb_bridge_macs", "(MAC, VLAN) pairs placed on the bridge", labels=DP_LABELS
        )
        up = GaugeMetricFamily("slb_uplink_up", "1 when the uplink is live", labels=UPLINK_LABELS)
        held = GaugeMetricFamily(
            "slb_uplink_held",
            "1 while the uplink is held out of service for flapping (even if its link is up)",
            labels=UPLINK_LABELS,
        )
        drained = GaugeMetricFamily(
            "slb_uplink_drained",
            "1 while the operator has the uplink drained for maintenance (slb-ctl drain)",
            labels=UPLINK_LABELS,
        )
        usable = GaugeMetricFamily(
            "slb_uplink_usable",
            "1 when the uplink carries traffic: live, not held, not drained, path not dead",
            labels=UPLINK_LABELS,
        )
        path_up = GaugeMetricFamily(
            "slb_uplink_path_up",
            "Path probing: 1 when probes through the uplink get replies, 0 when path-dead "
            "(absent while probing is off or has no verdict yet)",
            labels=UPLINK_LABELS,
        )
        active = GaugeMetricFamily(
            "slb_uplink_active",
            "1 for the uplink that accepts broadcast/multicast from the fabric",
            labels=UPLINK_LABELS,
        )
        speed = GaugeMetricFamily(
            "slb_uplink_speed_bits_per_second",
            "Link speed of the uplink (0 = unknown)",
            labels=UPLINK_LABELS,
        )
        macs = GaugeMetricFamily(
            "slb_uplink_macs", "(MAC, VLAN) pairs pinned to the uplink", labels=UPLINK_LABELS
        )
        load_tx = GaugeMetricFamily(
            "slb_uplink_load_tx_bytes_per_second",
            "Smoothed load the uplink's MACs send (sum of their tx_bytes_per_s)",
            labels=UPLINK_LABELS,
        )
        load_rx = GaugeMetricFamily(
            "slb_uplink_load_rx_bytes_per_second",
            "Smoothed load the uplink's MACs receive (sum of their rx_bytes_per_s)",
            labels=UPLINK_LABELS,
        )
        tx_bytes = CounterMetricFamily(
            "slb_uplink_tx_bytes",
            "Bytes transmitted by the uplink port (OpenFlow port statistics)",
            labels=UPLINK_LABELS,
        )
        rx_bytes = CounterMetricFamily(
            "slb_uplink_rx_bytes",
            "Bytes received by the uplink port (OpenFlow port statistics)",
            labels=UPLINK_LABELS,
        )
        for dpid, core in sorted(bridges.items()):
            placement = core.placement
            dp = [dp_id_label(dpid), placement.name]
            connected.add_metric(dp, 1 if dpid in datapaths else 0)
            synced.add_metric(dp, 1 if core.synced else 0)
            bridge_macs.add_metric(dp, len(placement.macs))
            for v in view.uplinks(placement):
                labels = dp + [v.name]
                up.add_metric(labels, 1 if v.live else 0)
                held.add_metric(labels, 1 if v.held else 0)
                drained.add_metric(labels, 1 if v.drained else 0)
                usable.add_metric(labels, 1 if v.usable else 0)
                if v.path in ("up", "dead"):
                    path_up.add_metric(labels, 1 if v.path == "up" else 0)
                active.add_metric(labels, 1 if v.active else 0)
                speed.add_metric(labels, v.speed_bps)
                macs.add_metric(labels, v.macs)
                load_tx.add_metric(labels, v.tx_bytes_per_s)
                load_rx.add_metric(labels, v.rx_bytes_per_s)
                tx_bytes.add_metric(labels, v.tx_bytes)
                rx_bytes.add_metric(labels, v.rx_bytes)
        yield from (connected, synced, bridge_macs, up, held, drained, usable, path_up, active)
        yield from (speed, macs)
        yield from (load_tx, load_rx, tx_bytes, rx_bytes)

        moves = CounterMetricFamily(
            "slb_moves",
            "MAC moves from one uplink to another, by reason "
            "(failover, rebalance, manual, port-move, ...)",
            labels=DP_LABELS + ["reason"],
        )
        for (dpid, reason), n in sorted(app.event_log.moves.items()):
            moves.add_metric([dp_id_label(dpid), names.get(dpid, ""), reason], n)
        yield moves
        failovers = CounterMetricFamily(
            "slb_uplink_failovers",
            "Times the uplink went down (its MACs failed over to the others)",
            labels=UPLINK_LABELS,
        )
        for (dpid, uplink), n in sorted(app.event_log.uplink_downs.items()):
            failovers.add_metric([dp_id_label(dpid), names.get(dpid, ""), uplink], n)
        yield failovers
        counters = dict(self.app.event_log.counters)
        yield CounterMetricFamily(
            "slb_learning_packets_sent",
            "Learning packets (gratuitous ARP / RARP) sent through uplinks",
            value=counters.get("learning_packets_sent", 0),
        )
        yield CounterMetricFamily(
            "slb_packet_in", "OpenFlow packet-ins received", value=counters.get("packet_in", 0)
        )
        by_type = CounterMetricFamily(
            "slb_events",
            "Every event-log counter since start, by type (learn, move, uplink-down, ...)",
            labels=["type"],
        )
        for kind, n in sorted(counters.items()):
            by_type.add_metric([str(kind)], n)
        yield by_type

        poll = getattr(app, "stats_poll_seconds", None)
        if isinstance(poll, (int, float)) and not isinstance(poll, bool):
            yield GaugeMetricFamily(
                "slb_stats_poll_duration_seconds",
                "Duration of the last flow/port statistics poll",
                value=poll,
            )
        interval = getattr(getattr(app, "settings", None), "stats_interval", None)
        if isinstance(interval, (int, float)) and not isinstance(interval, bool):
            yield GaugeMetricFamily(
                "slb_stats_interval_seconds",
                "Configured seconds between statistics polls ([slb] stats_interval; 0 = off), "
                "to compare slb_stats_poll_duration_seconds with",
                value=interval,
            )
        jobs = CounterMetricFamily(
            "slb_periodic_job_failures",
            "Exceptions raised by a periodic job (stats-poll, rebalance, tick, ovsdb-tags); "
            "the job keeps running and /slb/v1/health says degraded while it fails",
            labels=["task"],
        )
        for task, n in app.job_failures().items():
            jobs.add_metric([task], n)
        yield jobs
        yield GaugeMetricFamily(
            "slb_scrape_time_seconds", "When these metrics were read (epoch)", value=time.time()
        )


def make_registry(app: Any) -> CollectorRegistry:
    """A registry with the slb collector and the standard process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlbCollector(app))
    try:
        ProcessCollector(registry=registry)
    except Exception:  # noqa: BLE001 - process metrics are optional (no /proc)
        LOG.debug("process metrics unavailable", exc_info=True)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Exposition body and content type for an Accept header (text or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class MetricsController(ControllerBase):
    """`GET /metrics` in Prometheus text format (OpenMetrics when asked for)."""

    def __init__(self, req: Request, link: Any, data: dict, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.registry = data[REGISTRY_KEY]

    @route("slb_metrics", PATH)
    def metrics(self, req: Request, **_: Any) -> Response:
        if req.method not in ("GET", "HEAD"):
            resp = Response(
                status=405,
                content_type="application/json",
                body=b'{"error": "method not allowed: use GET", "status": 405}\n',
            )
            resp.headers["Allow"] = "GET, HEAD"
            return resp
        try:
            body, content_type = render(self.registry, req.headers.get("Accept"))
        except Exception:  # noqa: BLE001
            LOG.exception("rendering /metrics failed")
            return Response(
                status=500,
                content_type="application/json",
                body=b'{"error": "internal error rendering metrics", "status": 500}\n',
            )
        resp = Response(status=200, body=body)
        resp.headers["Content-Type"] = content_type
        return resp

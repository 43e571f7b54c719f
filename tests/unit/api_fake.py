"""A fake `SlbApp` for REST/CLI/metrics unit tests: real `BridgeCore`s fed with plain data.

Bridges (no switch needed):
  hv1 (dpid 1): LOCAL hv1, uplinks hv1-eth1 (1), hv1-eth2 (2), VMs v11 (3), v12 (4)
  hv2 (dpid 2): LOCAL hv2, uplinks hv2-eth1 (1), hv2-eth2 (2), VM v21 (3)
MACs:
  MAC_A  hv1 v11 VLAN 0, IP 10.0.0.11             (unique)
  MAC_B  hv1 v12 VLANs 10 and 20                  (ambiguous within hv1)
  MAC_C  hv1 v11 VLAN 30 and hv2 v21 VLAN 0       (ambiguous across bridges)
"""

from __future__ import annotations

import time

from ryu.app.wsgi import WSGIApplication
from webob import Request

from slb_ryu import options
from slb_ryu.api import rest
from slb_ryu.core import pipeline
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.events import EventLog
from slb_ryu.core.placement import OFPP_LOCAL, Port

MAC_A = "02:00:00:00:01:01"
MAC_B = "02:00:00:00:01:02"
MAC_C = "02:00:00:00:01:03"
UNKNOWN_MAC = "02:00:00:00:09:09"


class FakeApp:
    """`slb_ryu.api.interface.ControllerApi` with real cores and no switch."""

    def __init__(self, **settings):
        settings.setdefault("uplinks", ["hv1-eth*", "hv2-eth*"])
        self.settings = options.build_settings(**settings)
        self.event_log = EventLog(200)
        self.bridges: dict[int, BridgeCore] = {}
        self.datapaths: dict[int, object] = {}
        self.started = time.time() - 5
        self.stats_poll_seconds = 0.012
        self.sent = []  # (dpid, Output) of every act()
        self.rebalance_calls = []
        self.failing_jobs = []
        now = 1000.0
        hv1 = self.add_bridge(1, "hv1", ["v11", "v12"], now)
        hv2 = self.add_bridge(2, "hv2", ["v21"], now)
        learn(hv1, 3, MAC_A, 0, "10.0.0.11", now + 1)
        learn(hv1, 4, MAC_B, 10, None, now + 2)
        learn(hv1, 4, MAC_B, 20, None, now + 3)
        learn(hv1, 3, MAC_C, 30, None, now + 4)
        learn(hv2, 3, MAC_C, 0, None, now + 5)

    def add_bridge(self, dpid, name, vms, now):
        core = BridgeCore(dpid, [f"{name}-eth*"], self.event_log)
        ports = [Port(OFPP_LOCAL, name), Port(1, f"{name}-eth1"), Port(2, f"{name}-eth2")]
        ports += [Port(3 + i, vm) for i, vm in enumerate(vms)]
        for p in ports[1:3]:
            p.speed_bps = 10_000_000_000
        core.connect(ports, [], [], {}, now)
        self.bridges[dpid] = core
        self.datapaths[dpid] = object()
        return core

    def act(self, dpid, fn):
        out = fn(self.bridges[dpid])
        if dpid in self.datapaths:
            self.sent.append((dpid, out))
        return out

    def request_rebalance(self, dpid):
        """Moves MAC_A to its other uplink, standing in for a rebalance decision."""
        self.rebalance_calls.append(dpid)
        if dpid not in (None, 1):
            return []
        core = self.bridges[1]
        entry = core.entry(MAC_A, 0)
        other = "hv1-eth2" if core.placement.port_name(entry.uplink) == "hv1-eth1" else "hv1-eth1"
        out = core.move(MAC_A, 0, other, time.time(), None)
        return [(1, m) for m in out.moves]

    def security_problems(self):
        return []

    def job_problems(self):
        return list(self.failing_jobs)

    def next_rebalance_in(self):
        return 7.5

    def job_failures(self):
        return {"stats-poll": len(self.failing_jobs), "rebalance": 0}


def learn(core, port, mac, vlan, ip, now):
    core.packet_in(pipeline.KIND_SRC_MISS, port, mac, vlan, ip, now)


def wsgi_app(app):
    wsgi = WSGIApplication()
    rest.register(wsgi, app)
    return wsgi


class Client:
    """Request.blank against the WSGI app; `.json` of the response is parsed."""

    def __init__(self, app=None, token=None):
        self.app = app if app is not None else FakeApp()
        self.wsgi = wsgi_app(self.app)
        self.token = token

    def request(self, method, path, body=None, headers=None, raw=None, token=None):
        headers = dict(headers or {})
        token = token if token is not None else self.token
        if token:
            headers.setdefault("Authorization", f"Bearer {token}")
        kw = {}
        if raw is not None:
            kw["body"] = raw
        elif body is not None:
            import json

            kw["body"] = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        req = Request.blank(path, method=method, headers=headers, **kw)
        return req.get_response(self.wsgi)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

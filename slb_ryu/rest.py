"""REST API on Ryu's WSGI server (webob): read placement and uplinks as JSON.

Views are built by plain functions over the app's `BridgeCore`s so they can be tested
without a server. Errors are JSON with a message, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from ryu.app.wsgi import ControllerBase, Response, route
from webob import Request

from slb_ryu.core import BridgeCore
from slb_ryu.placement import OFPP_LOCAL

APP_KEY = "slb_app"
PREFIX = "/slb/v1"


def dpid_str(dpid: int) -> str:
    return f"{dpid:016x}"


def port_label(core: BridgeCore, port_no: int) -> str:
    return "LOCAL" if port_no == OFPP_LOCAL else core.placement.port_name(port_no)


def placement_view(bridges: dict[int, BridgeCore]) -> list[dict]:
    rows = []
    for dpid, core in sorted(bridges.items()):
        for entry in sorted(core.placement.macs.values(), key=lambda e: e.key):
            rows.append(
                {
                    "dpid": dpid_str(dpid),
                    "bridge": core.placement.name,
                    "mac": entry.mac,
                    "vlan": entry.vlan,
                    "port": port_label(core, entry.port_no),
                    "uplink": core.placement.port_name(entry.uplink),
                    "tx_bps": entry.tx_bps,
                    "rx_bps": entry.rx_bps,
                    "ips": sorted(entry.ips),
                    "pinned": entry.pinned,
                    "since": entry.since,
                }
            )
    return rows


def uplinks_view(bridges: dict[int, BridgeCore]) -> list[dict]:
    rows = []
    for dpid, core in sorted(bridges.items()):
        placement = core.placement
        for port in placement.uplinks:
            macs = placement.macs_on(port.port_no)
            rows.append(
                {
                    "dpid": dpid_str(dpid),
                    "bridge": placement.name,
                    "name": port.name,
                    "port_no": port.port_no,
                    "live": port.live,
                    "active": placement.active_uplink == port.port_no,
                    "speed_bps": port.speed_bps,
                    "macs": len(macs),
                    "tx_bps": sum(e.tx_bps for e in macs),
                    "rx_bps": sum(e.rx_bps for e in macs),
                }
            )
    return rows


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        status=status,
        content_type="application/json",
        charset="utf-8",
        body=json.dumps(body, indent=1, sort_keys=True) + "\n",
    )


def error(status: int, message: str) -> Response:
    return json_response({"error": message, "status": status}, status)


class SlbRestController(ControllerBase):
    def __init__(self, req: Request, link: Any, data: dict, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.app = data[APP_KEY]

    @route("slb", PREFIX + "/placement", methods=["GET"])
    def placement(self, req: Request, **_: Any) -> Response:
        return json_response(placement_view(self.app.bridges))

    @route("slb", PREFIX + "/uplinks", methods=["GET"])
    def uplinks(self, req: Request, **_: Any) -> Response:
        return json_response(uplinks_view(self.app.bridges))

    @route("slb", PREFIX + "/events", methods=["GET"])
    def events(self, req: Request, **_: Any) -> Response:
        return json_response(list(self.app.event_log.events))

    @route("slb", PREFIX + "/health", methods=["GET"])
    def health(self, req: Request, **_: Any) -> Response:
        bridges = {
            dpid_str(dpid): {"connected": dpid in self.app.datapaths, "synced": core.synced}
            for dpid, core in self.app.bridges.items()
        }
        return json_response(
            {"status": "ok", "bridges": bridges, "counters": dict(self.app.event_log.counters)}
        )

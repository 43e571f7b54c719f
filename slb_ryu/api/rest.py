"""REST API on Ryu's WSGI server (webob), under /slb/v1. The contract is openapi.yaml.

Read: bridges, uplinks, placement (filterable), one MAC, events, config, health, the
OpenAPI document. Write: move a MAC (optionally pinning it), pin/unpin, rebalance now.

Views are plain functions over the app's `BridgeCore`s so they can be tested without a
server; the controller only parses and checks input, calls the app and turns the
result into JSON. Every answer is JSON; every error is `{"error": msg, "status": N}`
with a message that says what was wrong. An unexpected exception is logged and
answered with a JSON 500, never a traceback.

Safe by default: Ryu's listen address defaults to 127.0.0.1 (options.register), write
endpoints need `Authorization: Bearer <[slb] api_token>` when a token is set (401
otherwise) and answer 403 when `[slb] api_read_only = true`.

What the API needs from the app is declared in `slb_ryu.api.interface.ControllerApi`.
Core commands return their result (`Output.moves`); the core's domain errors map to
HTTP statuses in one place (`STATUS`).
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from ryu.app.wsgi import ControllerBase, Response, route
from ryu.lib import hub
from webob import Request

from slb_ryu.api import metrics
from slb_ryu.api.interface import ControllerApi
from slb_ryu.api.lookup import locate_mac, locate_uplink, resolve_bridge, target_dpid
from slb_ryu.api.request import (
    ApiError,
    json_body,
    parse_cursor,
    parse_int,
    parse_mac,
    parse_vlan,
    query,
)
from slb_ryu.api.response import error, json_response
from slb_ryu.api.views import (
    PAGE_MAX,
    bridges_view,
    config_view,
    cursor_text,
    events_view,
    health_view,
    openapi_document,
    openapi_text,
    placement_json,
    placement_row,
    placement_rows,
    placement_view,
    uplinks_view,
)
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.errors import Conflict, Invalid, NotFound, SlbError
from slb_ryu.core.placement import Move
from slb_ryu.core.view import dpid_str

LOG = logging.getLogger(__name__)

APP_KEY = "slb_app"
PREFIX = "/slb/v1"
MAX_EVENTS_LIMIT = 100_000
STATUS: dict[type[SlbError], int] = {NotFound: 404, Conflict: 409, Invalid: 400}
pause: Callable[[float], Any] = hub.sleep  # yield to the event loop between slices of a read


# ---- the controller --------------------------------------------------------------------

Handler = Callable[..., Response]


def endpoint(*methods: str, write: bool = False) -> Callable[[Handler], Handler]:
    """Method check (405), auth for writes (401/403), errors as JSON (never a traceback)."""
    allowed = tuple(methods) + (("HEAD",) if "GET" in methods else ())

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def handler(self: SlbRestController, req: Request, **kwargs: Any) -> Response:
            try:
                if req.method not in allowed:
                    raise ApiError(
                        405,
                        f"method {req.method} not allowed on {req.path_info}: "
                        f"use {' or '.join(methods)}",
                        {"Allow": ", ".join(allowed)},
                    )
                if write:
                    self.authorize(req)
                resp = fn(self, req, **kwargs)
            except ApiError as exc:
                resp = error(exc.status, exc.message, exc.headers)
            except SlbError as exc:
                resp = error(STATUS.get(type(exc), 409), exc.message)
            except Exception:  # noqa: BLE001 - never a traceback to the client
                LOG.exception("REST %s %s failed", req.method, req.path_info)
                resp = error(500, f"internal error handling {req.method} {req.path_info}")
            if write:
                _audit(self.app, req, resp.status_int)
            return resp

        return handler

    return wrap


class SlbRestController(ControllerBase):
    def __init__(self, req: Request, link: Any, data: dict, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.app: ControllerApi = data[APP_KEY]

    # ---- auth ---------------------------------------------------------------------------

    def authorize(self, req: Request) -> None:
        settings = self.app.settings
        if settings.api_read_only:
            raise ApiError(403, "the REST API is read-only ([slb] api_read_only = true)")
        token = settings.api_token
        if not token:
            return
        header = req.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode("utf-8", "replace"), token.encode("utf-8")
        )
        if not ok:
            what = "wrong bearer token" if header else "missing bearer token"
            raise ApiError(
                401,
                f"{what}: write endpoints need 'Authorization: Bearer <[slb] api_token>'",
                {"WWW-Authenticate": 'Bearer realm="slb-ryu"'},
            )

    # ---- reads --------------------------------------------------------------------------

    @route("slb", PREFIX + "/bridges")
    @endpoint("GET")
    def bridges(self, req: Request, **_: Any) -> Response:
        query(req, ())
        return json_response(bridges_view(self.app))

    @route("slb", PREFIX + "/uplinks")
    @endpoint("GET")
    def uplinks(self, req: Request, **_: Any) -> Response:
        params = query(req, ("bridge",))
        dpid = resolve_bridge(self.app, params["bridge"]) if "bridge" in params else None
        return json_response(uplinks_view(self.app.bridges, dpid, self.app.next_rebalance_in()))

    @route("slb", PREFIX + "/placement")
    @endpoint("GET")
    def placement(self, req: Request, **_: Any) -> Response:
        params = query(req, ("bridge", "mac", "vlan", "uplink", "limit", "after"))
        dpid = resolve_bridge(self.app, params["bridge"]) if "bridge" in params else None
        mac = parse_mac(params["mac"]) if "mac" in params else None
        vlan = parse_vlan(params["vlan"], "vlan parameter") if "vlan" in params else None
        limit = parse_int(params["limit"], "limit", 1, PAGE_MAX) if "limit" in params else None
        after = parse_cursor(params["after"]) if "after" in params else None
        uplink = params.get("uplink")
        if uplink is not None:
            known = {
                p.name
                for d, c in self.app.bridges.items()
                if dpid is None or d == dpid
                for p in c.placement.uplinks
            }
            if uplink not in known:
                raise ApiError(
                    404, f"no uplink {uplink!r} (uplinks: {', '.join(sorted(known)) or 'none'})"
                )
        rows = placement_rows(dict(self.app.bridges), dpid, mac, vlan, uplink, after)
        text, last = placement_json(rows, limit, lambda: pause(0))
        resp = Response(status=200, content_type="application/json", charset="utf-8", body=text)
        if last is not None:  # more rows follow: where the next page starts
            cursor = cursor_text(last)
            resp.headers["X-Next-After"] = cursor
            nxt = urllib.parse.urlencode({**params, "after": cursor})
            resp.headers["Link"] = f'<{req.script_name}{req.path_info}?{nxt}>; rel="next"'
        return resp

    @route("slb", PREFIX + "/placement/{mac}")
    @endpoint("GET")
    def placement_mac(self, req: Request, mac: str, **_: Any) -> Response:
        params = query(req, ("bridge", "vlan"))
        mac = parse_mac(mac)
        dpid = resolve_bridge(self.app, params["bridge"]) if "bridge" in params else None
        vlan = parse_vlan(params["vlan"], "vlan parameter") if "vlan" in params else None
        rows = placement_view(self.app.bridges, dpid, mac, vlan)
        if not rows:
            where = placement_view(self.app.bridges, mac=mac)
            if where:
                raise ApiError(404, f"MAC {mac} is not there; it is on: {_where(where)}")
            raise ApiError(404, f"MAC {mac} is not known on any bridge")
        return json_response(rows)

    @route("slb", PREFIX + "/events")
    @endpoint("GET")
    def events(self, req: Request, **_: Any) -> Response:
        params = query(req, ("since", "limit", "type"))
        since = parse_int(params["since"], "since", 0, 2**63 - 1) if "since" in params else None
        limit = (
            parse_int(params["limit"], "limit", 1, MAX_EVENTS_LIMIT) if "limit" in params else None
        )
        kinds = {k for k in params.get("type", "").split(",") if k} or None
        return json_response(events_view(self.app, since, limit, kinds))

    @route("slb", PREFIX + "/config")
    @endpoint("GET")
    def config(self, req: Request, **_: Any) -> Response:
        query(req, ())
        return json_response(config_view(self.app))

    @route("slb", PREFIX + "/health")
    @endpoint("GET")
    def health(self, req: Request, **_: Any) -> Response:
        query(req, ())
        return json_response(health_view(self.app))

    @route("slb", PREFIX + "/openapi.json")
    @endpoint("GET")
    def openapi_json(self, req: Request, **_: Any) -> Response:
        query(req, ())
        return json_response(openapi_document())

    @route("slb", PREFIX + "/openapi.yaml")
    @endpoint("GET")
    def openapi_yaml(self, req: Request, **_: Any) -> Response:
        query(req, ())
        return Response(
            status=200, content_type="application/yaml", charset="utf-8", body=openapi_text()
        )

    # ---- writes -------------------------------------------------------------------------

    def _require_connected(self, dpid: int, core: BridgeCore) -> None:
        if dpid not in self.app.datapaths or not core.synced:
            raise Conflict(
                f"bridge {core.placement.label} is not connected/synced: "
                "try again once it is (see /slb/v1/health)"
            )

    @route("slb", PREFIX + "/placement/{mac}/move")
    @endpoint("POST", write=True)
    def move(self, req: Request, mac: str, **_: Any) -> Response:
        mac = parse_mac(mac)
        body = json_body(
            req,
            {"uplink": "str", "pin": "bool", "vlan": "vlan", "bridge": "bridge", "dpid": "dpid"},
            required=("uplink",),
        )
        uplink = body["uplink"]
        dpid, core, entry = locate_mac(
            self.app, mac, body.get("vlan"), target_dpid(self.app, body), uplink
        )
        self._require_connected(dpid, core)
        old = core.placement.port_name(entry.uplink)
        out = self.app.act(
            dpid, lambda c: c.move(mac, entry.vlan, uplink, time.time(), body.get("pin"))
        )
        return json_response(
            {
                "moved": bool(out.moves),
                "from": old,
                "to": core.placement.port_name(entry.uplink),
                "learning_packets": sum(max(1, len(lp.ips)) for lp in out.learning),
                "placement": placement_row(core, entry),
            }
        )

    def _set_pinned(self, req: Request, mac: str, pinned: bool) -> Response:
        mac = parse_mac(mac)
        body = json_body(req, {"vlan": "vlan", "bridge": "bridge", "dpid": "dpid"})
        dpid, core, entry = locate_mac(self.app, mac, body.get("vlan"), target_dpid(self.app, body))
        self._require_connected(dpid, core)
        was = entry.pinned
        self.app.act(dpid, lambda c: c.set_pinned(mac, entry.vlan, pinned, time.time()))
        return json_response(
            {
                "pinned": bool(entry.pinned),
                "changed": was != entry.pinned,
                "placement": placement_row(core, entry),
            }
        )

    @route("slb", PREFIX + "/placement/{mac}/pin")
    @endpoint("POST", write=True)
    def pin(self, req: Request, mac: str, **_: Any) -> Response:
        return self._set_pinned(req, mac, True)

    @route("slb", PREFIX + "/placement/{mac}/unpin")
    @endpoint("POST", write=True)
    def unpin(self, req: Request, mac: str, **_: Any) -> Response:
        return self._set_pinned(req, mac, False)

    @route("slb", PREFIX + "/rebalance")
    @endpoint("POST", write=True)
    def rebalance(self, req: Request, **_: Any) -> Response:
        body = json_body(req, {"bridge": "bridge", "dpid": "dpid"})
        dpid = target_dpid(self.app, body)
        if dpid is not None:
            self._require_connected(dpid, self.app.bridges[dpid])
        moves = self.app.request_rebalance(dpid)
        targets = [
            d
            for d, core in sorted(self.app.bridges.items())
            if (dpid is None or d == dpid) and d in self.app.datapaths and core.synced
        ]
        now = time.time()
        return json_response(
            {
                "bridges": [dpid_str(d) for d in targets],
                "moves": [move_row(self.app.bridges[d], m, now) for d, m in moves],
            }
        )

    def _drain(self, req: Request, name: str, drain: bool) -> Response:
        body = json_body(req, {"bridge": "bridge", "dpid": "dpid"})
        dpid, core = locate_uplink(self.app, name, target_dpid(self.app, body))
        self._require_connected(dpid, core)
        port = core.placement.uplink_named(name)
        was = port.drained
        now = time.time()
        command = core.drain if drain else core.undrain
        out = self.app.act(dpid, lambda c: command(name, now))
        return json_response(
            {
                "bridge": core.placement.name,
                "dpid": dpid_str(dpid),
                "uplink": name,
                "drained": port.drained,
                "changed": was != port.drained,
                "moves": [move_row(core, m, now) for m in out.moves],
                "learning_packets": sum(max(1, len(lp.ips)) for lp in out.learning),
            }
        )

    @route("slb", PREFIX + "/uplinks/{name}/drain")
    @endpoint("POST", write=True)
    def drain(self, req: Request, name: str, **_: Any) -> Response:
        return self._drain(req, name, True)

    @route("slb", PREFIX + "/uplinks/{name}/undrain")
    @endpoint("POST", write=True)
    def undrain(self, req: Request, name: str, **_: Any) -> Response:
        return self._drain(req, name, False)


def move_row(core: BridgeCore, move: Move, now: float) -> dict:
    """A move as the answer of POST /rebalance shows it (the shape of a `move` event)."""
    name = core.placement.port_name
    return {
        "type": "move",
        "time": now,
        "dpid": dpid_str(core.dpid),
        "bridge": core.placement.name,
        "mac": move.mac,
        "vlan": move.vlan,
        "port": name(move.port_no),
        "reason": move.reason,
        "from": None if move.old_uplink is None else name(move.old_uplink),
        "to": None if move.new_uplink is None else name(move.new_uplink),
    }


class SlbFallbackController(ControllerBase):
    """Anything else under /slb/v1: a JSON 404 instead of webob's HTML page.

    Registered after every other controller (Routes matches in registration order)."""

    @route("slb_fallback", PREFIX + r"{rest:(/[\s\S]*)?}")
    def not_found(self, req: Request, **_: Any) -> Response:
        return error(
            404, f"no such endpoint: {req.method} {req.path_info} (see {PREFIX}/openapi.json)"
        )


def _audit(app: ControllerApi, req: Request, status: int) -> None:
    """Every write attempt in the log and the counters (not the event ring): who, what,
    the outcome; refused or failed ones (4xx/5xx) as 'rest-refused' (WARNING)."""
    events = app.event_log
    fields: dict[str, Any] = {"method": req.method, "path": req.path_qs, "status": status}
    fields["client"] = req.remote_addr  # the peer; X-Forwarded-For is only a claim
    if req.headers.get("X-Forwarded-For"):
        fields["forwarded_for"] = req.headers["X-Forwarded-For"][:100]
    if req.body:
        fields["body"] = req.body[:200].decode("utf-8", "replace")
    events.note(time.time(), "rest-write" if status < 400 else "rest-refused", **fields)


def _where(rows: list[dict]) -> str:
    return ", ".join(f"bridge {r['bridge'] or r['dpid']} VLAN {r['vlan']}" for r in rows)


def register(wsgi: Any, app: Any) -> None:
    """Register the REST API, /metrics and the JSON 404 fallback on Ryu's WSGI app."""
    wsgi.register(SlbRestController, {APP_KEY: app})
    wsgi.register(
        metrics.MetricsController, {APP_KEY: app, metrics.REGISTRY_KEY: metrics.make_registry(app)}
    )
    wsgi.register(SlbFallbackController, {APP_KEY: app})

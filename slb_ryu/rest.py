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

What the API needs from the app object (`SlbApp`, or a fake in tests): `bridges`
(dpid -> BridgeCore), `datapaths` (dpid -> connected datapath), `event_log`,
`settings`, `act(dpid, fn)` (run a core call, send its output to the switch), and
optionally `started`, `request_rebalance(dpid | None) -> list[dict]`.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from ryu.app.wsgi import ControllerBase, Response, route
from webob import Request

from slb_ryu import __version__, metrics
from slb_ryu.core import BridgeCore, Output
from slb_ryu.placement import OFPP_LOCAL, MacEntry, normalise_mac

LOG = logging.getLogger(__name__)

APP_KEY = "slb_app"
PREFIX = "/slb/v1"
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")
MAX_BODY = 64 * 1024
MAX_VLAN = 4094
MAX_EVENTS_LIMIT = 100_000
_DIGITS = re.compile(r"[0-9]{1,19}")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,16}")


# ---- errors and JSON -------------------------------------------------------------------


class ApiError(Exception):
    """A 4xx (or deliberate 5xx) answer with a message for the operator."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(
        status=status,
        content_type="application/json",
        charset="utf-8",
        body=json.dumps(body, indent=1, sort_keys=True, default=str) + "\n",
    )
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message, "status": status}, status, headers)


# ---- views -----------------------------------------------------------------------------


def dpid_str(dpid: int) -> str:
    return f"{dpid:016x}"


def port_label(core: BridgeCore, port_no: int) -> str:
    return "LOCAL" if port_no == OFPP_LOCAL else core.placement.port_name(port_no)


def placement_row(dpid: int, core: BridgeCore, entry: MacEntry) -> dict:
    return {
        "dpid": dpid_str(dpid),
        "bridge": core.placement.name,
        "mac": entry.mac,
        "vlan": entry.vlan,
        "port": port_label(core, entry.port_no),
        "uplink": core.placement.port_name(entry.uplink),
        "tx_bps": float(entry.tx_bps),
        "rx_bps": float(entry.rx_bps),
        "ips": sorted(entry.ips),
        "pinned": bool(entry.pinned),
        "since": float(entry.since),
    }


def placement_view(
    bridges: dict[int, BridgeCore],
    dpid: int | None = None,
    mac: str | None = None,
    vlan: int | None = None,
    uplink: str | None = None,
) -> list[dict]:
    """Placement rows, sorted by bridge then (MAC, VLAN); filters are ANDed."""
    rows = []
    for bridge_dpid, core in sorted(bridges.items()):
        if dpid is not None and bridge_dpid != dpid:
            continue
        for entry in sorted(core.placement.macs.values(), key=lambda e: e.key):
            if mac is not None and entry.mac != mac:
                continue
            if vlan is not None and entry.vlan != vlan:
                continue
            if uplink is not None and core.placement.port_name(entry.uplink) != uplink:
                continue
            rows.append(placement_row(bridge_dpid, core, entry))
    return rows


def uplinks_view(bridges: dict[int, BridgeCore], dpid: int | None = None) -> list[dict]:
    rows = []
    for bridge_dpid, core in sorted(bridges.items()):
        if dpid is not None and bridge_dpid != dpid:
            continue
        placement = core.placement
        for port in placement.uplinks:
            macs = placement.macs_on(port.port_no)
            rows.append(
                {
                    "dpid": dpid_str(bridge_dpid),
                    "bridge": placement.name,
                    "name": port.name,
                    "port_no": port.port_no,
                    "live": bool(port.live),
                    "active": placement.active_uplink == port.port_no,
                    "speed_bps": int(port.speed_bps),
                    "macs": len(macs),
                    "tx_bps": float(sum(e.tx_bps for e in macs)),
                    "rx_bps": float(sum(e.rx_bps for e in macs)),
                    "tx_bytes": int(getattr(port, "tx_bytes", 0) or 0),
                    "rx_bytes": int(getattr(port, "rx_bytes", 0) or 0),
                }
            )
    return rows


def bridges_view(app: Any) -> list[dict]:
    rows = []
    for dpid, core in sorted(app.bridges.items()):
        placement = core.placement
        active = placement.active_uplink
        rows.append(
            {
                "dpid": dpid_str(dpid),
                "name": placement.name,
                "connected": dpid in app.datapaths,
                "synced": bool(core.synced),
                "uplinks": [p.name for p in placement.uplinks],
                "live_uplinks": [p.name for p in placement.live_uplinks],
                "active_uplink": placement.port_name(active) if active is not None else None,
                "local_ports": [port_label(core, p.port_no) for p in placement.local_ports],
                "macs": len(placement.macs),
            }
        )
    return rows


def event_view(event: dict, bridges: dict[int, BridgeCore]) -> dict:
    """An event-log entry for JSON: dpid as 16 hex digits plus the bridge name."""
    row = dict(event)
    dpid = row.get("dpid")
    if isinstance(dpid, int) and not isinstance(dpid, bool):
        row["dpid"] = dpid_str(dpid)
        core = bridges.get(dpid)
        if core is not None:
            row.setdefault("bridge", core.placement.name)
    return row


def events_view(
    app: Any, since: int | None = None, limit: int | None = None, kinds: set[str] | None = None
) -> list[dict]:
    """Events oldest first. With `since`: those after that seq, the first `limit` of them
    (so a follower pages forward without gaps); without: the last `limit`."""
    events = [
        e
        for e in list(app.event_log.events)
        if (since is None or e.get("seq", 0) > since) and (not kinds or e.get("type") in kinds)
    ]
    if limit is not None:
        events = events[:limit] if since is not None else events[-limit:]
    return [event_view(e, app.bridges) for e in events]


def config_view(app: Any) -> dict:
    settings = app.settings
    raw = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)
    out = _jsonable(raw)
    if out.get("api_token"):
        out["api_token"] = "<redacted>"
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def health_view(app: Any) -> dict:
    bridges = {}
    problems = []
    for dpid, core in sorted(app.bridges.items()):
        connected = dpid in app.datapaths
        live = [p.name for p in core.placement.live_uplinks]
        bridges[dpid_str(dpid)] = {
            "name": core.placement.name,
            "connected": connected,
            "synced": bool(core.synced),
            "live_uplinks": len(live),
            "uplinks": len(core.placement.uplinks),
        }
        label = core.placement.name or dpid_str(dpid)
        if not connected:
            problems.append(f"bridge {label} is not connected")
        elif not core.synced:
            problems.append(f"bridge {label} is not synced yet")
        if not live:
            problems.append(f"bridge {label} has no live uplink")
    started = getattr(app, "started", None)
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "version": __version__,
        "uptime_s": round(time.time() - started, 3) if isinstance(started, (int, float)) else None,
        "bridges": bridges,
        "counters": {str(k): v for k, v in app.event_log.counters.items()},
    }


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict:
    """The OpenAPI document shipped with the package (parsed once)."""
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=1)
def openapi_text() -> str:
    return OPENAPI_PATH.read_text(encoding="utf-8")


# ---- input parsing ---------------------------------------------------------------------


def parse_mac(raw: str) -> str:
    try:
        return normalise_mac(raw)
    except (ValueError, TypeError, AttributeError):
        raise ApiError(
            400, f"not a MAC address: {raw!r} (expected six hex octets, e.g. 02:00:00:00:01:01)"
        ) from None


def json_int(raw: Any) -> int | None:
    """A JSON number that is an integer (JSON Schema counts 3.0 as one), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return None


def parse_dpid(raw: Any, what: str = "dpid") -> int:
    """A datapath id: JSON integer, 16 hex digits, 0x-hex, or decimal digits."""
    value = json_int(raw)
    if value is None and isinstance(raw, str):
        text = raw
        if _HEX16.fullmatch(text):
            value = int(text, 16)
        elif _HEX.fullmatch(text):
            value = int(text, 16)
        elif _DIGITS.fullmatch(text):
            value = int(text)
    if value is None or not 0 <= value < 2**64:
        raise ApiError(
            400,
            f"{what} {raw!r} is not a datapath id (16 hex digits, 0x-hex or decimal, 0 .. 2^64-1)",
        )
    return value


def parse_vlan(raw: Any, where: str = "vlan") -> int:
    """A VLAN from JSON (an integer) or from a query string (decimal digits)."""
    value = json_int(raw)
    if where == "vlan parameter" and isinstance(raw, str) and _DIGITS.fullmatch(raw):
        value = int(raw)
    if value is None or not 0 <= value <= MAX_VLAN:
        raise ApiError(400, f"{where} must be an integer 0..{MAX_VLAN} (0 = untagged), got {raw!r}")
    return value


def parse_int(raw: str, name: str, minimum: int, maximum: int) -> int:
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise ApiError(400, f"{name} must be an integer {minimum}..{maximum}, got {raw!r}")
    return int(raw)


def query(req: Request, allowed: Iterable[str]) -> dict[str, str]:
    """Query parameters as a dict; unknown or repeated parameters are a 400."""
    allowed = tuple(allowed)
    try:
        # Not req.GET: webob also splits on ';', which is a legal character in a value.
        items = urllib.parse.parse_qsl(
            req.query_string, keep_blank_values=True, encoding="utf-8", errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "query string is not valid UTF-8 / URL encoding") from None
    out: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            hint = f" (allowed: {', '.join(allowed)})" if allowed else " (none allowed)"
            raise ApiError(400, f"unknown query parameter {name!r}{hint}")
        if name in out:
            raise ApiError(400, f"query parameter {name!r} given more than once")
        out[name] = value
    return out


def json_body(req: Request, fields: dict[str, str], required: Iterable[str] = ()) -> dict:
    """Parse a JSON object body and check field types; an empty body is `{}`.

    `fields` maps name -> one of "str", "bool", "vlan", "dpid", "bridge"."""
    raw = req.body or b""
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"request body larger than {MAX_BODY} bytes")
    if not raw:
        data: Any = {}
    else:
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "request body is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ApiError(
            400, f"unknown field(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(fields)})"
        )
    missing = [name for name in required if name not in data]
    if missing:
        raise ApiError(400, f"missing required field(s): {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name, value in data.items():
        kind = fields[name]
        if kind == "str":
            if not isinstance(value, str) or not value:
                raise ApiError(400, f"{name} must be a non-empty string, got {value!r}")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ApiError(400, f"{name} must be true or false, got {value!r}")
        elif kind == "vlan":
            value = parse_vlan(value, name)
        elif kind == "dpid":
            value = parse_dpid(value, name)
        elif kind == "bridge":
            if json_int(value) is not None:
                value = json_int(value)
            elif not isinstance(value, str) or value == "":
                raise ApiError(400, f"{name} must be a bridge name or datapath id, got {value!r}")
        out[name] = value
    return out


# ---- lookups ---------------------------------------------------------------------------


def bridge_names(app: Any) -> str:
    return (
        ", ".join(
            f"{c.placement.name or '?'} ({dpid_str(d)})" for d, c in sorted(app.bridges.items())
        )
        or "none yet"
    )


def resolve_bridge(app: Any, value: Any) -> int:
    """Bridge by name, else by datapath id (int, 16 hex digits, 0x-hex, decimal)."""
    if isinstance(value, str):
        for dpid, core in app.bridges.items():
            if core.placement.name and core.placement.name == value:
                return dpid
    try:
        dpid = parse_dpid(value, "bridge")
    except ApiError:
        dpid = None
    if dpid is None or dpid not in app.bridges:
        raise ApiError(404, f"no bridge {value!r} (bridges: {bridge_names(app)})")
    return dpid


def target_dpid(app: Any, fields: dict) -> int | None:
    """The bridge a request names with `bridge` and/or `dpid` (None when neither)."""
    dpid = None
    if "dpid" in fields:
        dpid = fields["dpid"]
        if dpid not in app.bridges:
            raise ApiError(
                404, f"no bridge with dpid {dpid_str(dpid)} (bridges: {bridge_names(app)})"
            )
    if "bridge" in fields:
        by_bridge = resolve_bridge(app, fields["bridge"])
        if dpid is not None and by_bridge != dpid:
            raise ApiError(400, f"bridge {fields['bridge']!r} and dpid {dpid_str(dpid)} disagree")
        dpid = by_bridge
    return dpid


def describe(entries: list[tuple[int, BridgeCore, MacEntry]]) -> str:
    return ", ".join(
        f"bridge {c.placement.name or dpid_str(d)} VLAN {e.vlan}" for d, c, e in entries
    )


def locate_mac(
    app: Any, mac: str, vlan: int | None, dpid: int | None, uplink: str | None = None
) -> tuple[int, BridgeCore, MacEntry]:
    """The one (bridge, entry) a write request means; 404 if none, 409 if ambiguous."""
    everywhere = [
        (d, c, e)
        for d, c in sorted(app.bridges.items())
        for e in sorted(c.placement.macs.values(), key=lambda e: e.key)
        if e.mac == mac
    ]
    if not everywhere:
        raise ApiError(404, f"MAC {mac} is not known on any bridge")
    found = [
        (d, c, e)
        for d, c, e in everywhere
        if (vlan is None or e.vlan == vlan) and (dpid is None or d == dpid)
    ]
    if not found:
        want = " and ".join(
            s
            for s in (
                f"VLAN {vlan}" if vlan is not None else "",
                f"bridge {app.bridges[dpid].placement.name or dpid_str(dpid)}"
                if dpid is not None
                else "",
            )
            if s
        )
        raise ApiError(404, f"MAC {mac} is not on {want}; it is on: {describe(everywhere)}")
    if len(found) > 1 and uplink is not None:
        narrowed = [
            t for t in found if (p := t[1].placement.port_by_name(uplink)) is not None and p.uplink
        ]
        if narrowed:
            found = narrowed
    if len(found) > 1:
        raise ApiError(
            409,
            f"MAC {mac} is on several bridges/VLANs ({describe(found)}): "
            'say which with "vlan" and/or "bridge"',
        )
    return found[0]


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
                return fn(self, req, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message, exc.headers)
            except Exception:  # noqa: BLE001 - never a traceback to the client
                LOG.exception("REST %s %s failed", req.method, req.path_info)
                return error(500, f"internal error handling {req.method} {req.path_info}")

        return handler

    return wrap


class SlbRestController(ControllerBase):
    def __init__(self, req: Request, link: Any, data: dict, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.app = data[APP_KEY]

    # ---- auth ---------------------------------------------------------------------------

    def authorize(self, req: Request) -> None:
        settings = self.app.settings
        if getattr(settings, "api_read_only", False):
            raise ApiError(403, "the REST API is read-only ([slb] api_read_only = true)")
        token = getattr(settings, "api_token", None)
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
        return json_response(uplinks_view(self.app.bridges, dpid))

    @route("slb", PREFIX + "/placement")
    @endpoint("GET")
    def placement(self, req: Request, **_: Any) -> Response:
        params = query(req, ("bridge", "mac", "vlan", "uplink"))
        dpid = resolve_bridge(self.app, params["bridge"]) if "bridge" in params else None
        mac = parse_mac(params["mac"]) if "mac" in params else None
        vlan = parse_vlan(params["vlan"], "vlan parameter") if "vlan" in params else None
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
        return json_response(placement_view(self.app.bridges, dpid, mac, vlan, uplink))

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

    def _run(self, dpid: int, fn: Callable[[BridgeCore], Output]) -> Output:
        """Run a core call through the app (which sends its output to the switch)."""
        captured: list[Output] = []

        def call(core: BridgeCore) -> Output:
            out = fn(core)
            captured.append(out)
            return out

        try:
            self.app.act(dpid, call)
        except KeyError as exc:
            raise ApiError(404, _message(exc)) from None
        except ValueError as exc:
            raise ApiError(409, _message(exc)) from None
        return captured[0] if captured else Output()

    def _require_connected(self, dpid: int, core: BridgeCore) -> None:
        if dpid not in self.app.datapaths or not core.synced:
            raise ApiError(
                409,
                f"bridge {core.placement.name or dpid_str(dpid)} is not connected/synced: "
                "try again once it is (see /slb/v1/health)",
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
        placement = core.placement
        port = placement.port_by_name(uplink)
        if port is None or not port.uplink:
            names = ", ".join(p.name for p in placement.uplinks) or "none"
            raise ApiError(
                404,
                f"{uplink!r} is not an uplink of bridge {placement.name or dpid_str(dpid)} "
                f"(uplinks: {names})",
            )
        if not port.live:
            raise ApiError(409, f"uplink {uplink} is down: cannot move {mac} there")
        self._require_connected(dpid, core)
        old = placement.port_name(entry.uplink)
        out = self._run(
            dpid, lambda c: c.move(mac, entry.vlan, uplink, time.time(), body.get("pin"))
        )
        new_entry = placement.macs.get((mac, entry.vlan), entry)
        return json_response(
            {
                "moved": old != uplink,
                "from": old,
                "to": placement.port_name(new_entry.uplink),
                "learning_packets": sum(max(1, len(lp.ips)) for lp in out.learning),
                "placement": placement_row(dpid, core, new_entry),
            }
        )

    def _set_pinned(self, req: Request, mac: str, pinned: bool) -> Response:
        mac = parse_mac(mac)
        body = json_body(req, {"vlan": "vlan", "bridge": "bridge", "dpid": "dpid"})
        dpid, core, entry = locate_mac(self.app, mac, body.get("vlan"), target_dpid(self.app, body))
        self._require_connected(dpid, core)
        was = entry.pinned
        self._run(dpid, lambda c: c.set_pinned(mac, entry.vlan, pinned, time.time()))
        new_entry = core.placement.macs.get((mac, entry.vlan), entry)
        return json_response(
            {
                "pinned": bool(new_entry.pinned),
                "changed": was != new_entry.pinned,
                "placement": placement_row(dpid, core, new_entry),
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
        run = getattr(self.app, "request_rebalance", None)
        if run is None:
            raise ApiError(501, "this controller has no on-demand rebalance")
        if dpid is not None:
            self._require_connected(dpid, self.app.bridges[dpid])
        try:
            moves = run(dpid)
        except KeyError as exc:
            raise ApiError(404, _message(exc)) from None
        except ValueError as exc:
            raise ApiError(409, _message(exc)) from None
        targets = [
            d
            for d, core in sorted(self.app.bridges.items())
            if (dpid is None or d == dpid) and d in self.app.datapaths and core.synced
        ]
        return json_response(
            {
                "bridges": [dpid_str(d) for d in targets],
                "moves": [event_view(m, self.app.bridges) for m in (moves or [])],
            }
        )


class SlbFallbackController(ControllerBase):
    """Anything else under /slb/v1: a JSON 404 instead of webob's HTML page.

    Registered after every other controller (Routes matches in registration order)."""

    @route("slb_fallback", PREFIX + r"{rest:(/[\s\S]*)?}")
    def not_found(self, req: Request, **_: Any) -> Response:
        return error(
            404, f"no such endpoint: {req.method} {req.path_info} (see {PREFIX}/openapi.json)"
        )


def _message(exc: BaseException) -> str:
    """KeyError's str() is the repr of its argument; show the message itself."""
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _where(rows: list[dict]) -> str:
    return ", ".join(f"bridge {r['bridge'] or r['dpid']} VLAN {r['vlan']}" for r in rows)


def register(wsgi: Any, app: Any) -> None:
    """Register the REST API, /metrics and the JSON 404 fallback on Ryu's WSGI app."""
    wsgi.register(SlbRestController, {APP_KEY: app})
    wsgi.register(
        metrics.MetricsController, {APP_KEY: app, metrics.REGISTRY_KEY: metrics.make_registry(app)}
    )
    wsgi.register(SlbFallbackController, {APP_KEY: app})

"""REST input: JSON errors, strict parsing of paths, query strings and bodies, and the
lookups that turn a MAC / bridge / dpid into the core that holds it. Every failure is
an `ApiError` whose message says what was wrong.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from ryu.app.wsgi import Response
from webob import Request

from slb_ryu.api.views import dpid_str
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.placement import MacEntry, normalise_mac

MAX_BODY = 64 * 1024
MAX_VLAN = 4094
_DIGITS = re.compile(r"[0-9]{1,19}")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,16}")


# ---- errors and JSON -------------------------------------------------------------------


class ApiError(Exception):
    """A 4xx (or deliberate 5xx) answer with a message for the operator."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
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

"""REST input: strict parsing of paths, query strings and JSON bodies. Every failure is
an `ApiError` whose message says what was wrong; nothing here looks at the bridges.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from webob import Request

from slb_ryu.core.placement import normalise_mac

MAX_BODY = 64 * 1024
MAX_VLAN = 4094
_DIGITS = re.compile(r"[0-9]{1,19}")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,16}")


# ---- errors ----------------------------------------------------------------------------


class ApiError(Exception):
    """A 4xx (or deliberate 5xx) answer with a message for the operator."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


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


def parse_cursor(raw: str) -> tuple[int, str, int]:
    """A page cursor `DPID,MAC,VLAN` (as `X-Next-After` gives it): (dpid, MAC, VLAN)."""
    parts = raw.split(",")
    try:
        if len(parts) != 3 or not _DIGITS.fullmatch(parts[2]):
            raise ApiError(400, "")
        return parse_dpid(parts[0]), parse_mac(parts[1]), parse_vlan(int(parts[2]))
    except ApiError:
        raise ApiError(
            400,
            f"after must be a cursor 'DPID,MAC,VLAN' as the X-Next-After header gives it "
            f"(e.g. 0000000000000001,02:00:00:00:01:01,0), got {raw!r}",
        ) from None


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

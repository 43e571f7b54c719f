"""JSON views of the app's state for the REST API: plain functions over `BridgeCore`s,
testable without a server.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any

import yaml

from slb_ryu import __version__
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.placement import OFPP_LOCAL, MacEntry

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


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
                    "held": bool(port.held),
                    "usable": bool(port.usable),
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
                "held_uplinks": [p.name for p in placement.uplinks if p.held],
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
        live = [p.name for p in core.placement.usable_uplinks]
        held = [p.name for p in core.placement.uplinks if p.held]
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
            problems.append(f"bridge {label} has no usable uplink")
        for name in held:
            problems.append(f"uplink {name} of bridge {label} is held down (flapping)")
    extra = getattr(app, "security_problems", None)  # impostors, unmanaged bridges
    problems += extra() if callable(extra) else []
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

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
from slb_ryu.api.interface import ControllerApi
from slb_ryu.core import view
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.placement import MacEntry
from slb_ryu.core.view import dpid_str

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


# ---- views -----------------------------------------------------------------------------
#
# JSON forms of the core's read model (`slb_ryu.core.view`). Field names carry their
# units; the names of release 0.1 (`tx_bps`/`rx_bps` for bytes/s, `live_uplinks` in
# /health for what is really the usable count) are kept as deprecated aliases for one
# release (README "REST API", openapi.yaml).

DEPRECATED_RATE_ALIASES = {"tx_bps": "tx_bytes_per_s", "rx_bps": "rx_bytes_per_s"}


def _with_aliases(row: dict) -> dict:
    for old, new in DEPRECATED_RATE_ALIASES.items():
        row[old] = row[new]
    return row


def mac_row(v: view.MacView) -> dict:
    row = dataclasses.asdict(v)
    row["dpid"] = dpid_str(v.dpid)
    row["ips"] = list(v.ips)
    return _with_aliases(row)


def placement_row(core: BridgeCore, entry: MacEntry) -> dict:
    return mac_row(view.mac_view(core.placement, entry))


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
        if dpid is None or bridge_dpid == dpid:
            rows += [mac_row(v) for v in view.macs(core.placement, mac, vlan, uplink)]
    return rows


def uplinks_view(
    bridges: dict[int, BridgeCore], dpid: int | None = None, next_rebalance: float | None = None
) -> list[dict]:
    """Uplink rows; `next_rebalance_in_s` is bond/show's "next rebalance" (None = off)."""
    rows = []
    for bridge_dpid, core in sorted(bridges.items()):
        if dpid is not None and bridge_dpid != dpid:
            continue
        for v in view.uplinks(core.placement):
            row = dataclasses.asdict(v)
            row["dpid"] = dpid_str(v.dpid)
            row["next_rebalance_in_s"] = next_rebalance
            rows.append(_with_aliases(row))
    return rows


def bridges_view(app: ControllerApi) -> list[dict]:
    rows = []
    for dpid, core in sorted(app.bridges.items()):
        v = view.bridge(core.placement, core.synced)
        row = dataclasses.asdict(v)
        row.update(dpid=dpid_str(dpid), connected=dpid in app.datapaths)
        rows.append({k: list(x) if isinstance(x, tuple) else x for k, x in row.items()})
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
    app: ControllerApi,
    since: int | None = None,
    limit: int | None = None,
    kinds: set[str] | None = None,
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


def config_view(app: ControllerApi) -> dict:
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


def health_view(app: ControllerApi) -> dict:
    bridges = {}
    problems = []
    for dpid, core in sorted(app.bridges.items()):
        v = view.bridge(core.placement, core.synced)
        connected = dpid in app.datapaths
        bridges[dpid_str(dpid)] = {
            "name": v.name,
            "connected": connected,
            "synced": v.synced,
            "usable_uplinks": len(v.usable_uplinks),
            "live_uplinks": len(v.usable_uplinks),  # deprecated alias of usable_uplinks
            "uplinks": len(v.uplinks),
            "drained_uplinks": list(v.drained_uplinks),
        }
        if not connected:
            problems.append(f"bridge {v.label} is not connected")
        elif not v.synced:
            problems.append(f"bridge {v.label} is not synced yet")
        if not v.usable_uplinks:
            problems.append(f"bridge {v.label} has no usable uplink")
        for name in v.held_uplinks:
            problems.append(f"uplink {name} of bridge {v.label} is held down (flapping)")
        for name in v.path_dead_uplinks:
            problems.append(
                f"uplink {name} of bridge {v.label} is path-dead (probes unanswered or BFD down)"
            )
        for target in getattr(core, "unreachable", ()):
            problems.append(
                f"probe target {target} is unreachable from every uplink of bridge {v.label} "
                "(nothing moved: the target or the whole fabric is down)"
            )
    problems += app.security_problems()  # impostors, unmanaged bridges
    problems += app.job_problems()
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "version": __version__,
        "uptime_s": round(time.time() - app.started, 3),
        "next_rebalance_in_s": app.next_rebalance_in(),
        "bridges": bridges,
        "counters": {str(k): v for k, v in app.event_log.counters.items()},
    }


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict:
    """The OpenAPI document shipped with the package (parsed once)."""
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    doc["info"]["version"] = __version__  # one version string: the package's metadata
    return doc


@functools.lru_cache(maxsize=1)
def openapi_text() -> str:
    """The served document as YAML (the version filled in, like the JSON form)."""
    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True)

"""JSON views of the app's state for the REST API: plain functions over `BridgeCore`s,
testable without a server.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterator
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
    row = dict(vars(v))  # flat dataclass: what dataclasses.asdict gives, several times faster
    row["dpid"] = dpid_str(v.dpid)
    row["ips"] = list(v.ips)
    return _with_aliases(row)


def placement_row(core: BridgeCore, entry: MacEntry) -> dict:
    return mac_row(view.mac_view(core.placement, entry))


# ---- placement, in slices ----------------------------------------------------------------
#
# GET /placement at 10,000 MACs is ~10 ms of work per 1,000 rows; done in one go it held
# the event loop (packet-ins, echo replies) for 0.11-0.15 s. The rows are built
# PLACEMENT_SLICE at a time and the caller pauses (yields) between slices; each row is a
# consistent snapshot of one MAC, a MAC forgotten meanwhile is left out. `limit`/`after`
# page through the rows by their sort key (a cursor stays valid whatever changes).

PLACEMENT_SLICE = 128  # MACs visited between two pauses: 1-3 ms of work
PAGE_MAX = 10_000  # the largest `limit` a client may ask for

Cursor = tuple[int, str, int]  # (dpid, MAC, VLAN): the sort key of a placement row


def cursor_text(cursor: Cursor) -> str:
    """The `after` value that continues after this row (`X-Next-After`)."""
    return f"{dpid_str(cursor[0])},{cursor[1]},{cursor[2]}"


def _keys(placement: Any, mac: str | None, vlan: int | None, after: tuple | None) -> list:
    if mac is not None:
        keys = [(mac, vlan)] if vlan is not None else [k for k in placement.macs if k[0] == mac]
    else:
        keys = list(placement.macs)
    keys.sort()
    if after is not None:
        keys = keys[bisect.bisect_right(keys, after) :]
    return keys


def placement_rows(
    bridges: dict[int, BridgeCore],
    dpid: int | None = None,
    mac: str | None = None,
    vlan: int | None = None,
    uplink: str | None = None,
    after: Cursor | None = None,
) -> Iterator[tuple[Cursor, dict] | None]:
    """(cursor, row) in answer order (bridge, then MAC, then VLAN; filters ANDed, only
    rows after `after`), and None after every PLACEMENT_SLICE MACs visited: a point
    where the caller may pause."""
    visited = 0
    for bridge_dpid, core in sorted(bridges.items()):
        if (dpid is not None and bridge_dpid != dpid) or (after and bridge_dpid < after[0]):
            continue
        placement = core.placement
        start = after[1:] if after and bridge_dpid == after[0] else None
        names: dict[Any, str] = {}
        for key in _keys(placement, mac, vlan, start):
            visited += 1
            if visited % PLACEMENT_SLICE == 0:
                yield None
            entry = placement.macs.get(key)
            if entry is None or (vlan is not None and entry.vlan != vlan):
                continue
            if uplink is not None:
                name = names.get(entry.uplink)
                if name is None:
                    name = names[entry.uplink] = placement.port_name(entry.uplink)
                if name != uplink:
                    continue
            yield (bridge_dpid, key[0], key[1]), mac_row(view.mac_view(placement, entry))


def placement_json(
    rows: Iterator[tuple[Cursor, dict] | None],
    limit: int | None = None,
    pause: Callable[[], None] = lambda: None,
) -> tuple[str, Cursor | None]:
    """The JSON array text of the first `limit` rows (all without one), one row per
    line, and the cursor after the last one when more rows follow (else None). Rows
    are encoded slice by slice, with `pause()` between slices."""
    parts: list[str] = []
    last: Cursor | None = None
    for item in rows:
        if item is None:
            pause()
            continue
        if limit is not None and len(parts) >= limit:
            return _array(parts), last
        last, row = item
        parts.append(json.dumps(row, sort_keys=True, default=str))
    return _array(parts), None


def _array(parts: list[str]) -> str:
    return "[\n" + ",\n".join(parts) + "\n]\n" if parts else "[]\n"


def placement_view(
    bridges: dict[int, BridgeCore],
    dpid: int | None = None,
    mac: str | None = None,
    vlan: int | None = None,
    uplink: str | None = None,
) -> list[dict]:
    """Placement rows, sorted by bridge then (MAC, VLAN); filters are ANDed (in one go:
    for small answers, e.g. one MAC)."""
    return [item[1] for item in placement_rows(bridges, dpid, mac, vlan, uplink) if item]


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

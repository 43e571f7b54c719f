"""Which bridge and which (MAC, VLAN) a request means: names, datapath ids and MACs
resolved against the app's bridges, with 404/409 messages that list what exists."""

from __future__ import annotations

from typing import Any

from slb_ryu.api.request import ApiError, parse_dpid
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.placement import MacEntry
from slb_ryu.core.view import dpid_str


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


def locate_uplink(app: Any, name: str, dpid: int | None) -> tuple[int, BridgeCore]:
    """The one bridge whose uplink is called `name`; 404 if none, 409 if several."""
    found = [
        (d, c)
        for d, c in sorted(app.bridges.items())
        if (dpid is None or d == dpid)
        and (p := c.placement.port_by_name(name)) is not None
        and p.uplink
    ]
    if not found:
        names = sorted({p.name for c in app.bridges.values() for p in c.placement.uplinks})
        where = f" on bridge {app.bridges[dpid].placement.label}" if dpid is not None else ""
        raise ApiError(404, f"no uplink {name!r}{where} (uplinks: {', '.join(names) or 'none'})")
    if len(found) > 1:
        bridges = ", ".join(c.placement.label for _, c in found)
        raise ApiError(
            409, f'uplink {name!r} is on several bridges ({bridges}): say which with "bridge"'
        )
    return found[0]

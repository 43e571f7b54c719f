"""The read model: immutable snapshots of one bridge's state for the REST API, the
metrics and the CLI, so none of them reaches into `BridgePlacement`.

Units are in the names: `*_bytes_per_s` are smoothed byte rates from flow statistics,
`speed_bps` is the link speed in bits/s, `*_bytes` are port counters. `live` is the
carrier; `usable` is live, not held down for flapping, not drained and not path-dead
(what placement
uses).
"""

from __future__ import annotations

from dataclasses import dataclass

from slb_ryu.core.placement import OFPP_LOCAL, BridgePlacement, MacEntry


def dpid_str(dpid: int) -> str:
    """The one display form of a datapath id: 16 hex digits, as `ovs-ofctl show` prints it."""
    return f"{dpid:016x}"


@dataclass(frozen=True)
class MacView:
    dpid: int
    bridge: str
    mac: str
    vlan: int
    port: str
    uplink: str
    tx_bytes_per_s: float
    rx_bytes_per_s: float
    ips: tuple[str, ...]
    pinned: bool
    since: float


@dataclass(frozen=True)
class UplinkView:
    dpid: int
    bridge: str
    name: str
    port_no: int
    live: bool
    held: bool
    drained: bool
    usable: bool
    active: bool
    speed_bps: int
    macs: int
    tx_bytes_per_s: float
    rx_bytes_per_s: float
    tx_bytes: int
    rx_bytes: int
    path: str  # path probing verdict: off, unknown, up, dead (core/probe.py)
    last_reply: float | None  # Unix time of the last probe reply through it


@dataclass(frozen=True)
class BridgeView:
    dpid: int
    name: str
    synced: bool
    uplinks: tuple[str, ...]
    live_uplinks: tuple[str, ...]
    usable_uplinks: tuple[str, ...]
    held_uplinks: tuple[str, ...]
    drained_uplinks: tuple[str, ...]
    path_dead_uplinks: tuple[str, ...]
    active_uplink: str | None
    local_ports: tuple[str, ...]
    macs: int

    @property
    def label(self) -> str:
        return self.name or dpid_str(self.dpid)


def port_label(placement: BridgePlacement, port_no: int) -> str:
    return "LOCAL" if port_no == OFPP_LOCAL else placement.port_name(port_no)


def mac_view(placement: BridgePlacement, entry: MacEntry) -> MacView:
    return MacView(
        dpid=placement.dpid,
        bridge=placement.name,
        mac=entry.mac,
        vlan=entry.vlan,
        port=port_label(placement, entry.port_no),
        uplink=placement.port_name(entry.uplink),
        tx_bytes_per_s=float(entry.tx_bps),
        rx_bytes_per_s=float(entry.rx_bps),
        ips=tuple(sorted(entry.ips)),
        pinned=bool(entry.pinned),
        since=float(entry.since),
    )


def macs(
    placement: BridgePlacement,
    mac: str | None = None,
    vlan: int | None = None,
    uplink: str | None = None,
) -> list[MacView]:
    """Placement rows sorted by (MAC, VLAN); the filters are ANDed."""
    if mac is not None:
        keys = [(mac, vlan)] if vlan is not None else [k for k in placement.macs if k[0] == mac]
        entries = [placement.macs[k] for k in keys if k in placement.macs]
    else:
        entries = list(placement.macs.values())
    rows = []
    for entry in sorted(entries, key=lambda e: e.key):
        if vlan is not None and entry.vlan != vlan:
            continue
        if uplink is not None and placement.port_name(entry.uplink) != uplink:
            continue
        rows.append(mac_view(placement, entry))
    return rows


def uplink_totals(placement: BridgePlacement) -> dict[int, tuple[int, float, float]]:
    """(MACs, tx bytes/s, rx bytes/s) per uplink port number, in one pass."""
    totals = {p.port_no: [0, 0.0, 0.0] for p in placement.uplinks}
    for entry in placement.macs.values():
        slot = totals.get(entry.uplink)
        if slot is not None:
            slot[0] += 1
            slot[1] += entry.tx_bps
            slot[2] += entry.rx_bps
    return {port: (int(n), tx, rx) for port, (n, tx, rx) in totals.items()}


def uplinks(placement: BridgePlacement) -> list[UplinkView]:
    totals = uplink_totals(placement)
    return [
        UplinkView(
            dpid=placement.dpid,
            bridge=placement.name,
            name=port.name,
            port_no=port.port_no,
            live=bool(port.live),
            held=bool(port.held),
            drained=bool(port.drained),
            usable=bool(port.usable),
            active=placement.active_uplink == port.port_no,
            speed_bps=int(port.speed_bps),
            macs=totals[port.port_no][0],
            tx_bytes_per_s=float(totals[port.port_no][1]),
            rx_bytes_per_s=float(totals[port.port_no][2]),
            tx_bytes=int(port.tx_bytes or 0),
            rx_bytes=int(port.rx_bytes or 0),
            path=str(port.path),
            last_reply=port.last_reply,
        )
        for port in placement.uplinks
    ]


def bridge(placement: BridgePlacement, synced: bool) -> BridgeView:
    active = placement.active_uplink
    return BridgeView(
        dpid=placement.dpid,
        name=placement.name,
        synced=bool(synced),
        uplinks=tuple(p.name for p in placement.uplinks),
        live_uplinks=tuple(p.name for p in placement.live_uplinks),
        usable_uplinks=tuple(p.name for p in placement.usable_uplinks),
        held_uplinks=tuple(p.name for p in placement.uplinks if p.held),
        drained_uplinks=tuple(p.name for p in placement.uplinks if p.drained),
        path_dead_uplinks=tuple(p.name for p in placement.uplinks if p.path_dead),
        active_uplink=placement.port_name(active) if active is not None else None,
        local_ports=tuple(port_label(placement, p.port_no) for p in placement.local_ports),
        macs=len(placement.macs),
    )

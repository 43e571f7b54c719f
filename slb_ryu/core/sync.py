"""What the switch holds, as the controller believes it, and the diff to what it wants.

Flows are indexed by owner (one learned (MAC, VLAN), or the bridge-wide base) so a
change to one MAC costs a few dict operations, not a scan of the whole table: a MAC
flood or a 10,000-MAC bridge must not make every packet-in slow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slb_ryu.core import pipeline
from slb_ryu.core.pipeline import FlowSpec, GroupSpec, MeterSpec

MAC_KINDS = {
    pipeline.KIND_SRC,
    pipeline.KIND_ARP_SNOOP,
    pipeline.KIND_MIGRATION,
    pipeline.KIND_REFLECTION,
    pipeline.KIND_DST,
}

Mod = tuple[str, str, Any]  # ("flow" | "group" | "meter", "add" | "modify" | "delete", spec)
MacKey = tuple[str, int]


def owner(flow: FlowSpec) -> MacKey | None:
    """The (MAC, VLAN) a per-MAC flow belongs to; None for bridge-wide flows."""
    if pipeline.cookie_kind(flow.cookie) not in MAC_KINDS:
        return None
    fields = dict(flow.match)
    mac = fields.get("eth_src") or fields.get("eth_dst")
    vid = int(fields.get("vlan_vid", 0))
    return (str(mac), pipeline.vlan_of(vid))


class SwitchState:
    """Installed flows, groups and meters of one switch, and minimal diffs against them."""

    def __init__(self) -> None:
        self.flows: dict[tuple, FlowSpec] = {}
        self.groups: dict[int, GroupSpec] = {}
        self.meters: dict[int, MeterSpec] = {}
        self.by_mac: dict[MacKey, set[tuple]] = {}
        self.base: set[tuple] = set()

    def reset(
        self,
        flows: Iterable[FlowSpec],
        groups: Iterable[GroupSpec],
        meters: Iterable[MeterSpec],
    ) -> None:
        """Adopt what the switch reported (only our cookies count as ours)."""
        self.flows, self.by_mac, self.base = {}, {}, set()
        self.adopt(flows)
        self.groups = {g.group_id: g for g in groups}
        self.meters = {m.meter_id: m for m in meters}

    def adopt(self, flows: Iterable[FlowSpec]) -> None:
        """Add more of what the switch reported (a reset in slices: `reset([])`, then
        `adopt` each slice)."""
        for flow in flows:
            if pipeline.cookie_kind(flow.cookie) is not None:
                self._add(flow)

    def sync_all(self, desired: Iterable[FlowSpec]) -> list[Mod]:
        """Make every flow of ours match `desired`: add, modify, delete."""
        wanted = {f.key: f for f in desired}
        return self._sync(wanted, set(self.flows))

    def sync_base(self, desired: Iterable[FlowSpec]) -> list[Mod]:
        return self._sync({f.key: f for f in desired}, set(self.base))

    def sync_mac(self, key: MacKey, desired: Iterable[FlowSpec]) -> list[Mod]:
        return self._sync({f.key: f for f in desired}, set(self.by_mac.get(key, ())))

    def sync_groups(self, desired: Iterable[GroupSpec]) -> list[Mod]:
        return _sync_by_id("group", self.groups, {g.group_id: g for g in desired})

    def stale_groups(self, desired: Iterable[GroupSpec]) -> list[Mod]:
        """Groups we no longer want (e.g. a VLAN that is gone); sent after the flows."""
        wanted = {g.group_id for g in desired}
        return [("group", "delete", self.groups.pop(g)) for g in sorted(set(self.groups) - wanted)]

    def sync_meters(self, desired: Iterable[MeterSpec]) -> list[Mod]:
        return _sync_by_id("meter", self.meters, {m.meter_id: m for m in desired})

    def sync_want(self, wanted: dict[tuple, FlowSpec]) -> list[Mod]:
        """The adds/modifies of `sync_all`, for one slice of the desired flows; the
        deletions (`delete_flows`) follow once every slice is in."""
        mods: list[Mod] = []
        for key, spec in wanted.items():
            have = self.flows.get(key)
            if have == spec:
                continue
            # MODIFY keeps counters (load measurement) but cannot change the cookie,
            # the timeouts or the flags.
            same = have is not None and (have.cookie, have.idle_timeout, have.flags) == (
                spec.cookie,
                spec.idle_timeout,
                spec.flags,
            )
            command = "modify" if same else "add"
            mods.append(("flow", command, spec))
            if have is not None:
                self._remove(key)
            self._add(spec)
        return mods

    def delete_flows(self, keys: Iterable[tuple]) -> list[Mod]:
        """Delete these flows (the ones held before a sync and not wanted), in key order."""
        mods: list[Mod] = []
        for key in sorted(keys, key=repr):
            mods.append(("flow", "delete", self.flows[key]))
            self._remove(key)
        return mods

    def removed(self, key: tuple) -> None:
        """The switch removed a flow by itself (idle timeout): forget it without a mod."""
        if key in self.flows:
            self._remove(key)

    def stale_meters(self, desired: Iterable[MeterSpec]) -> list[Mod]:
        """Meters we no longer want (a deleted port's); sent after the flows."""
        wanted = {m.meter_id for m in desired}
        return [("meter", "delete", self.meters.pop(m)) for m in sorted(set(self.meters) - wanted)]

    def _sync(self, wanted: dict[tuple, FlowSpec], current: set[tuple]) -> list[Mod]:
        return self.sync_want(wanted) + self.delete_flows(current - set(wanted))

    def _add(self, flow: FlowSpec) -> None:
        self.flows[flow.key] = flow
        mac = owner(flow)
        if mac is None:
            self.base.add(flow.key)
        else:
            self.by_mac.setdefault(mac, set()).add(flow.key)

    def _remove(self, key: tuple) -> None:
        flow = self.flows.pop(key)
        mac = owner(flow)
        if mac is None:
            self.base.discard(key)
            return
        keys = self.by_mac.get(mac)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.by_mac[mac]


def _sync_by_id(kind: str, have: dict[int, Any], wanted: dict[int, Any]) -> list[Mod]:
    """Add or modify groups/meters (by id) so `have` holds `wanted`; extras stay."""
    mods: list[Mod] = []
    for ident, spec in wanted.items():
        if have.get(ident) != spec:
            mods.append((kind, "add" if ident not in have else "modify", spec))
            have[ident] = spec
    return mods

"""The (re)connect sync in slices: `connect_steps` yields between slices of MACs and
must end exactly where the one-piece sync ends (same mods in the same order, same
placement, same switch state, no learning packets on recovery), whatever the slice size.
The reference is the one-piece algorithm, written out here against pipeline.desired_flows
and SwitchState.sync_all, so a pipeline change that the sliced walk misses fails here."""

from __future__ import annotations

import pytest

from slb_ryu.core import pipeline as pl
from slb_ryu.core.bridge import BridgeCore, Limits, Output
from slb_ryu.core.placement import OFPP_LOCAL, Port

N = 60


def mac(i: int) -> str:
    return f"02:00:00:01:{i >> 8:02x}:{i & 0xFF:02x}"


def ports() -> list[Port]:
    return [
        Port(OFPP_LOCAL, "hv1"),
        Port(1, "up1"),
        Port(2, "up2"),
        Port(3, "vm1"),
        Port(4, "vm2"),
    ]


def new_core() -> BridgeCore:
    return BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=0, packet_in_rate=10**6))


def loaded() -> BridgeCore:
    """N MACs on two ports and three VLANs, some with an IP, two pinned."""
    core = new_core()
    core.connect(ports(), [], [], {}, 0.0)
    for i in range(N):
        ip = f"10.0.{i >> 8}.{i & 255}" if i % 3 == 0 else None
        core.packet_in(pl.KIND_SRC_MISS, 3 + i % 2, mac(i), (0, 10, 20)[i % 3], ip, 1.0 + i)
    core.set_pinned(mac(0), 0, True, 100.0)
    core.set_pinned(mac(4), 10, True, 100.0)
    assert len(core.placement.macs) == N
    return core


def reference_connect(core, switch_ports, groups, flows, ages, now, meters) -> Output:
    """The one-piece connect, as it was before it was sliced."""
    flows = list(flows)
    moves = core.placement.set_ports(map(core._port, switch_ports), now)
    core.events.names[core.dpid] = core.placement.name
    if not core.placement.macs:
        recovered = core.placement.recover(pl.entries_from_flows(flows, ages, now))
        if recovered:
            core.events.add(now, "recovery", dpid=core.dpid, macs=len(recovered))
        moves += core.placement.repair(now)
    core._log_moves(moves, now)
    core.switch.reset(flows, groups, meters)
    out = Output()
    wanted_groups = pl.groups(core.placement)
    wanted_meters = pl.meters(core.placement, core.limits.packet_in_rate, core._probe_meter_rate())
    out.mods += core.switch.sync_meters(wanted_meters)
    out.mods += core.switch.sync_groups(wanted_groups)
    out.mods += core.switch.sync_all(pl.desired_flows(core.placement, core.tuning).values())
    core.pending_flows.clear()
    out.mods += core.switch.stale_groups(wanted_groups)
    out.mods += core.switch.stale_meters(wanted_meters)
    core._learning(moves, out, now)
    core.synced = True
    return out


def sliced(core, size, *args) -> tuple[Output, int]:
    steps = core.connect_steps(*args, size=size)
    pauses = 0
    while True:
        try:
            next(steps)
            pauses += 1
            assert not core.synced  # the app answers 409 to writes until the end
        except StopIteration as done:
            return done.value, pauses


def state(core) -> tuple:
    macs = {k: (e.uplink, e.port_no, e.pinned, e.since) for k, e in core.placement.macs.items()}
    return macs, dict(core.switch.flows), dict(core.switch.groups), dict(core.switch.meters)


def scenarios():
    """(name, core factory, what the switch reports) for restart, reconnect, damage."""
    base = loaded()
    flows = list(base.switch.flows.values())
    groups = list(base.switch.groups.values())
    meters = list(base.switch.meters.values())
    ages = {f.key: 30.0 for f in flows}
    stale = pl.FlowSpec(
        pl.TABLE_FORWARD,
        100,
        pl.match(eth_dst="02:00:00:09:09:09", vlan_vid=0),
        pl.cookie(pl.KIND_DST),
        actions=(("output", 9),),
    )
    damaged = flows[:-3]  # some MAC lost flows
    down = [p if p.port_no != 1 else Port(1, "up1", live=False) for p in ports()]
    return [
        ("restart", new_core, (ports(), groups, flows, ages, 200.0, meters)),
        ("restart, damaged", new_core, (ports(), [], damaged + [stale], ages, 200.0, [])),
        ("reconnect, same flows", loaded, (ports(), groups, flows, ages, 200.0, meters)),
        ("reconnect, table flushed", loaded, (ports(), [], [], {}, 200.0, [])),
        ("reconnect, an uplink down", loaded, (down, groups, flows, ages, 200.0, meters)),
    ]


@pytest.mark.parametrize("size", [1, 7, N, 10 * N])
@pytest.mark.parametrize("name, make, report", scenarios(), ids=[s[0] for s in scenarios()])
def test_sliced_connect_ends_where_the_one_piece_connect_ends(size, name, make, report):
    want_core, got_core = make(), make()
    want = reference_connect(want_core, *report)
    got, pauses = sliced(got_core, size, *report)
    assert got.mods == want.mods
    assert [(lp.mac, lp.vlan, lp.out_port) for lp in got.learning] == [
        (lp.mac, lp.vlan, lp.out_port) for lp in want.learning
    ]
    assert state(got_core) == state(want_core)
    assert got_core.synced and len(got_core.placement.macs) >= N - 1
    assert set(got_core.switch.flows) == set(pl.desired_flows(got_core.placement, got_core.tuning))
    if size < N:
        assert pauses >= N // size  # one yield per slice of MACs at least


def test_restart_recovery_is_exact_and_quiet():
    """A new controller process adopts what the switch holds: 0 mods, 0 moves."""
    base = loaded()
    report = (
        ports(),
        list(base.switch.groups.values()),
        list(base.switch.flows.values()),
        {},
        200.0,
        list(base.switch.meters.values()),
    )
    fresh = new_core()
    out, pauses = sliced(fresh, 8, *report)
    assert out.mods == [] and out.learning == [] and pauses > N // 8
    assert {k: (e.uplink, e.pinned) for k, e in fresh.placement.macs.items()} == {
        k: (e.uplink, e.pinned) for k, e in base.placement.macs.items()
    }
    assert fresh.connect(*report).mods == []  # and connect() is the same walk, in one go

"""SwitchState: minimal diffs, per-MAC index, cookies decide add vs modify."""

from slb_ryu.core import pipeline as pl
from slb_ryu.core.sync import SwitchState, owner

MAC = "02:00:00:00:00:01"


def src(uplink, flags=0, port=3):
    return pl.FlowSpec(
        pl.TABLE_LOCAL_SRC,
        100,
        pl.match(in_port=port, eth_src=MAC, vlan_vid=0),
        pl.cookie(pl.KIND_SRC, flags),
        write_metadata=uplink,
        goto=pl.TABLE_FORWARD,
    )


def test_owner_of_per_mac_and_base_flows():
    assert owner(src(1)) == (MAC, 0)
    base = pl.FlowSpec(pl.TABLE_FORWARD, 0, (), pl.cookie(pl.KIND_DROP))
    assert owner(base) is None


def test_add_then_modify_keeps_counters_then_cookie_change_needs_add():
    state = SwitchState()
    assert state.sync_mac((MAC, 0), [src(1)]) == [("flow", "add", src(1))]
    assert state.sync_mac((MAC, 0), [src(1)]) == []
    assert state.sync_mac((MAC, 0), [src(2)]) == [("flow", "modify", src(2))]
    pinned = src(2, pl.FLAG_PINNED)
    assert state.sync_mac((MAC, 0), [pinned]) == [("flow", "add", pinned)]


def test_port_change_deletes_old_key_and_index_stays_exact():
    state = SwitchState()
    state.sync_mac((MAC, 0), [src(1, port=3)])
    mods = state.sync_mac((MAC, 0), [src(1, port=4)])
    assert [(c, dict(s.match)["in_port"]) for _, c, s in mods] == [("add", 4), ("delete", 3)]
    assert state.sync_mac((MAC, 0), []) == [("flow", "delete", src(1, port=4))]
    assert state.flows == {} and state.by_mac == {}


def test_reset_ignores_foreign_flows_and_sync_all_removes_stale():
    state = SwitchState()
    foreign = pl.FlowSpec(0, 5, (), cookie=0x1234)
    stale = src(9, port=7)
    state.reset([foreign, stale], [], [])
    assert list(state.flows) == [stale.key]
    assert state.sync_all([src(1)]) == [("flow", "add", src(1)), ("flow", "delete", stale)]


def test_groups_and_meters_add_modify_and_stale_groups_deleted():
    state = SwitchState()
    g1 = pl.GroupSpec(1, "ff", ((1, (("output", 1),)),))
    g2 = pl.GroupSpec(1, "ff", ((2, (("output", 2),)),))
    flood = pl.GroupSpec(pl.FLOOD_GROUP_BASE + 10, "all", ())
    assert state.sync_groups([g1, flood]) == [("group", "add", g1), ("group", "add", flood)]
    assert state.sync_groups([g2]) == [("group", "modify", g2)]
    assert state.stale_groups([g2]) == [("group", "delete", flood)]
    meter = pl.MeterSpec(1, 100, 100)
    assert state.sync_meters([meter]) == [("meter", "add", meter)]
    assert state.sync_meters([pl.MeterSpec(1, 50, 50)])[0][1] == "modify"

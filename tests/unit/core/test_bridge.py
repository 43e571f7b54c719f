"""BridgeCore: connect/sync, packet-in learning, failover output, manual moves."""

import pytest

from slb_ryu.core import pipeline as pl
from slb_ryu.core.bridge import BridgeCore
from slb_ryu.core.errors import Conflict, Invalid, NotFound
from slb_ryu.core.placement import OFPP_LOCAL, Port

MAC1 = "00:00:00:00:00:01"
MAC2 = "00:00:00:00:00:02"


def ports():
    return [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm1"), Port(4, "vm2")]


def connected(**kw):
    core = BridgeCore(1, ["up*"], **kw)
    out = core.connect(ports(), [], [], {}, now=0.0)
    return core, out


def flow_mods(out, command=None):
    return [s for o, c, s in out.mods if o == "flow" and (command is None or c == command)]


def test_connect_on_empty_switch_adds_groups_before_flows():
    core, out = connected()
    kinds = [o for o, _, _ in out.mods]
    assert kinds.index("flow") > max(i for i, k in enumerate(kinds) if k == "group")
    admit = {pl.admit_group(1, 0), pl.admit_group(2, 0)}
    assert {s.group_id for o, _, s in out.mods if o == "group"} == {1, 2, pl.FLOOD_GROUP} | admit
    assert len(flow_mods(out, "add")) == len(pl.base_flows(core.placement))
    assert core.synced


def test_packet_in_learns_and_installs_without_reinjecting():
    """The local-miss flow already forwarded the frame: re-injecting would duplicate it."""
    core, _ = connected()
    out = core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, now=1.0)
    assert not out.reinject
    adds = flow_mods(out, "add")
    assert len(adds) == 5 and all(pl.cookie_kind(f.cookie) is not None for f in adds)
    again = core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, now=1.1)
    assert not again.reinject and again.mods == []
    assert core.events.counters["learn"] == 1


def test_packet_in_before_sync_and_unexpected_kinds_are_counted_drops():
    core = BridgeCore(1, ["up*"])
    assert core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0).mods == []
    core.connect(ports(), [], [], {}, 0.0)
    out = core.packet_in(None, 3, MAC1, 0, None, 1.0)
    assert out.mods == [] and not out.reinject
    assert core.events.counters["packet_in_before_sync"] == 1
    assert core.events.counters["packet_in_unexpected"] == 1


def test_arp_snoop_records_ip_used_in_learning_packets():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, "10.0.0.1", 1.0)
    core.packet_in(pl.KIND_ARP_SNOOP, 3, MAC1, 0, "10.0.0.9", 2.0)
    uplink = core.entry(MAC1, 0).uplink
    out = core.port_status("modify", Port(uplink, f"up{uplink}", live=False), 3.0)
    assert len(out.learning) == 1
    lp = out.learning[0]
    assert lp.out_port != uplink and lp.ips == ("10.0.0.1", "10.0.0.9")
    src = [f for f in flow_mods(out) if f.table == pl.TABLE_LOCAL_SRC and f.priority == 100]
    assert src[0].write_metadata == lp.out_port


def test_failover_reorders_the_admission_groups():
    core, _ = connected()
    assert core.placement.active_uplink == 1
    out = core.port_status("modify", Port(1, "up1", live=False), 1.0)
    groups = {s.group_id: s for o, _, s in out.mods if o == "group"}
    assert [w for w, _ in groups[pl.admit_group(2, 0)].buckets] == [2]
    assert groups[pl.admit_group(2, 0)].buckets[0][1] == (("group", pl.FLOOD_GROUP),)
    assert core.events.counters["uplink-down"] == 1


def test_manual_move_and_pin_and_errors():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    uplink = core.entry(MAC1, 0).uplink
    other = "up2" if uplink == 1 else "up1"
    out = core.move(MAC1.upper(), 0, other, 2.0, pin=True)
    assert out.learning and core.entry(MAC1, 0).pinned
    src = [f for f in flow_mods(out) if f.table == pl.TABLE_LOCAL_SRC and f.priority == 100][0]
    assert pl.cookie_flags(src.cookie) & pl.FLAG_PINNED
    unpin = core.move(MAC1, 0, other, 3.0, pin=False)
    assert flow_mods(unpin) and not unpin.learning
    with pytest.raises(
        Invalid, match=r"'vm1' is not an uplink of bridge hv1 \(uplinks: up1, up2\)"
    ):
        core.move(MAC1, 0, "vm1", 4.0, None)
    with pytest.raises(NotFound, match="'nope' is not an uplink"):
        core.move(MAC1, 0, "nope", 4.0, None)
    with pytest.raises(NotFound, match=f"MAC {MAC2} is not known on VLAN 0"):
        core.move(MAC2, 0, "up1", 4.0, None)
    with pytest.raises(NotFound):
        core.set_pinned(MAC2, 0, True, 4.0)
    assert unpin.moves == [] and [m.new_uplink for m in out.moves] == [core.entry(MAC1, 0).uplink]


def test_reconnect_with_same_flows_sends_nothing_and_restart_recovers():
    core, out = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    core.packet_in(pl.KIND_SRC_MISS, 4, MAC2, 0, None, 1.0)
    switch_flows = list(core.switch.flows.values())
    switch_groups = list(core.switch.groups.values())
    meters = list(core.switch.meters.values())
    # same controller reconnects: nothing to do
    assert core.connect(ports(), switch_groups, switch_flows, {}, 5.0, meters).mods == []
    # a new controller process: recovers placement, sends nothing, no learning packets
    fresh = BridgeCore(1, ["up*"])
    out = fresh.connect(ports(), switch_groups, switch_flows, {}, 5.0, meters)
    assert out.mods == [] and out.learning == []
    assert {k: e.uplink for k, e in fresh.placement.macs.items()} == {
        k: e.uplink for k, e in core.placement.macs.items()
    }


def test_sync_removes_stale_flows_and_fixes_changed_ones():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    flows = list(core.switch.flows.values())
    stale = pl.FlowSpec(
        pl.TABLE_FORWARD,
        100,
        pl.match(eth_dst=MAC2, vlan_vid=0),
        pl.cookie(pl.KIND_DST),
        actions=(("output", 9),),
    )
    fresh = BridgeCore(1, ["up*"])
    out = fresh.connect(
        ports(),
        list(core.switch.groups.values()),
        flows + [stale],
        {},
        2.0,
        list(core.switch.meters.values()),
    )
    assert [(c, s) for o, c, s in out.mods] == [("delete", stale)]


def test_deleted_vm_port_removes_its_flows():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    out = core.port_status("delete", Port(3, "vm1"), 2.0)
    deletes = flow_mods(out, "delete")
    assert len([f for f in deletes if f.table != pl.TABLE_LOCAL_MISS]) == 5
    # the port's own local-miss flows and meter go too
    assert {dict(f.match).get("in_port") for f in deletes if f.table == pl.TABLE_LOCAL_MISS} == {3}
    assert [s.meter_id for o, c, s in out.mods if o == "meter" and c == "delete"] == [
        pl.port_meter(3)
    ]
    assert core.entry(MAC1, 0) is None


def src_dst_samples(core, tx, rx, age):
    """Fake flow statistics: every installed per-MAC source/destination flow."""
    samples = []
    for spec in core.switch.flows.values():
        kind = pl.cookie_kind(spec.cookie)
        if kind == pl.KIND_SRC:
            samples.append((spec, tx, age))
        elif kind == pl.KIND_DST:
            samples.append((spec, rx, age))
    return samples


def test_flow_stats_become_smoothed_rates_and_drive_rebalance():
    from slb_ryu.core.rebalance import RebalanceParams

    core = BridgeCore(1, ["up*"], params=RebalanceParams(min_dwell=0.0), half_life=1.0)
    core.connect(ports(), [], [], {}, 0.0)
    core.port_status("modify", Port(2, "up2", live=False), 0.0)
    for i, port in enumerate((3, 3, 4, 4)):
        core.packet_in(pl.KIND_SRC_MISS, port, f"02:00:00:00:00:0{i}", 0, None, 0.5)
    core.port_status("modify", Port(2, "up2", live=True), 1.0)
    assert {e.uplink for e in core.placement.macs.values()} == {1}
    core.flow_stats(src_dst_samples(core, 0, 0, 1.0), now=1.0)
    core.flow_stats(src_dst_samples(core, 1_000_000, 500_000, 2.0), now=2.0)
    entry = next(iter(core.placement.macs.values()))
    assert entry.tx_bps == pytest.approx(1_000_000) and entry.rx_bps == pytest.approx(500_000)
    out = core.rebalance(now=3.0)
    on = {u: len(core.placement.macs_on(u)) for u in (1, 2)}
    assert on == {1: 2, 2: 2}
    assert len(out.learning) == 2 and all(lp.out_port == 2 for lp in out.learning)
    assert core.events.counters["rebalance"] == 1
    assert core.rebalance(now=4.0).mods == []  # converged: nothing more


def test_counter_reset_gives_no_negative_load():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    core.flow_stats(src_dst_samples(core, 5_000, 5_000, 10.0), now=10.0)
    core.flow_stats(src_dst_samples(core, 10, 10, 0.5), now=15.0)  # flow re-installed
    entry = core.entry(MAC1, 0)
    assert entry.tx_bps >= 0 and entry.rx_bps >= 0


def test_speed_overrides_apply_to_ports():
    core = BridgeCore(1, ["up*"], speeds={"up2": 1_000_000_000})
    core.connect(ports(), [], [], {}, 0.0)
    assert core.placement.ports[2].speed_bps == 1_000_000_000
    core.port_status("modify", Port(2, "up2", live=False, speed_bps=10), 1.0)
    assert core.placement.ports[2].speed_bps == 1_000_000_000


def test_flapping_uplink_is_held_then_released_after_quiet():
    from slb_ryu.core.bridge import Limits

    core = BridgeCore(1, ["up*"], limits=Limits(flap_limit=3, flap_window=10, flap_hold=5))
    core.connect(ports(), [], [], {}, 0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 0.5)
    core.packet_in(pl.KIND_SRC_MISS, 4, MAC2, 0, None, 0.5)
    moves_before = core.events.counters["move"]
    t = 1.0
    for _ in range(3):
        core.port_status("modify", Port(1, "up1", live=False), t)
        core.port_status("modify", Port(1, "up1", live=True), t + 0.1)
        t += 0.2
    up1 = core.placement.ports[1]
    assert up1.held and up1.live and not up1.usable
    assert core.events.counters["uplink-held"] == 1
    # While held: nothing goes back to it, and the groups no longer fall back onto it.
    assert all(e.uplink == 2 for e in core.placement.macs.values())
    assert all(
        1 not in [b[0] for b in g.buckets] for g in core.switch.groups.values() if g.type == "ff"
    )
    # Only the first down moved MACs; the later bounces moved nothing.
    assert core.events.counters["move"] - moves_before == 1
    assert core.tick(t + 1.0).mods == []  # not quiet yet
    out = core.tick(t + 5.0)
    assert not core.placement.ports[1].held and out.mods
    assert core.events.counters["uplink-released"] == 1


def test_gratuitous_arp_from_fabric_means_migration_unless_locked():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, "10.0.0.1", 1.0)
    # The VM's own GARP seen on its port, then its reflection from the fabric: ignored.
    core.packet_in(pl.KIND_ARP_SNOOP, 3, MAC1, 0, "10.0.0.1", 2.0, garp=True)
    out = core.packet_in(pl.KIND_MIGRATION, 1, MAC1, 0, "10.0.0.1", 2.1, garp=True)
    assert out.mods == [] and core.entry(MAC1, 0) is not None
    # A non-gratuitous ARP reflection: dropped, counted.
    core.packet_in(pl.KIND_MIGRATION, 1, MAC1, 0, "10.0.0.1", 9.0, garp=False)
    assert core.entry(MAC1, 0) is not None
    assert core.events.counters["reflection_dropped"] == 1
    # Later a GARP from the fabric: the VM lives elsewhere now.
    out = core.packet_in(pl.KIND_MIGRATION, 2, MAC1, 0, "10.0.0.1", 9.5, garp=True)
    assert core.entry(MAC1, 0) is None
    assert len(flow_mods(out, "delete")) == 5
    assert core.events.counters["migrated-away"] == 1


def test_learning_packets_we_send_lock_the_mac():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    uplink = core.entry(MAC1, 0).uplink
    core.port_status("modify", Port(uplink, f"up{uplink}", live=False), 2.0)
    core.packet_in(pl.KIND_MIGRATION, 1, MAC1, 0, "10.0.0.1", 3.0, garp=True)
    assert core.entry(MAC1, 0) is not None
    assert core.events.counters["garp_lock_ignored"] == 1


def test_mac_limit_per_port_counts_drops():
    from slb_ryu.core.bridge import Limits

    core = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=2))
    core.connect(ports(), [], [], {}, 0.0)
    for i in range(5):
        out = core.packet_in(pl.KIND_SRC_MISS, 3, f"02:00:00:00:01:{i:02x}", 0, None, 1.0)
    assert len(core.placement.macs) == 2 and not out.reinject
    assert core.events.counters["mac_limit_drop"] == 3
    core.packet_in(pl.KIND_SRC_MISS, 4, MAC2, 0, None, 1.0)
    assert core.entry(MAC2, 0) is not None  # other ports unaffected


def test_access_port_macs_are_learned_on_their_vlan_and_forgotten_on_retag():
    core = BridgeCore(1, ["up*"], access_vlans={"vm1": 10})
    core.connect(ports(), [], [], {}, 0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 10, None, 1.0)
    assert core.entry(MAC1, 10) is not None
    # Re-tagging a port in OVSDB forgets its MACs (they belong to another VLAN now).
    core.set_access_vlans({"vm1": 20}, 2.0)
    assert core.entry(MAC1, 10) is None


def test_a_learned_mac_that_still_misses_costs_nothing():
    """A frame that keeps missing table 1 after its MAC was learned makes no mods."""
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    outs = [core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0) for _ in range(10)]
    assert all(o.mods == [] and not o.reinject for o in outs)


def src_flow(core, mac, vlan=0):
    return next(
        f
        for f in core.switch.flows.values()
        if pl.cookie_kind(f.cookie) == pl.KIND_SRC and dict(f.match)["eth_src"] == mac
    )


def test_the_mac_that_fills_a_port_on_a_vlan_in_use_installs_the_port_full_drop():
    """Learning on a VLAN already in use skips the bridge-wide flows, but not when the
    MAC fills its port: otherwise the port keeps forwarding new sources (it did)."""
    from slb_ryu.core.bridge import Limits

    core = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=2))
    core.connect(ports(), [], [], {}, 0.0)
    core.packet_in(pl.KIND_SRC_MISS, 4, MAC1, 0, None, 1.0)  # VLAN 0 now in use
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC2, 0, None, 1.0)
    assert not core.placement.port_full(3)
    out = core.packet_in(pl.KIND_SRC_MISS, 3, "00:00:00:00:00:03", 0, None, 2.0)
    assert core.placement.port_full(3)
    added = [
        f
        for f in flow_mods(out, "add")
        if pl.cookie_kind(f.cookie) == pl.KIND_PORT_FULL and dict(f.match)["in_port"] == 3
    ]
    assert len(added) == 1
    assert core.packet_in(pl.KIND_SRC_MISS, 3, "00:00:00:00:00:04", 0, None, 3.0).mods == []
    assert core.entry("00:00:00:00:00:04", 0) is None


def test_idle_source_flow_forgets_the_mac_its_flows_and_its_port_slot():
    from slb_ryu.core.bridge import Limits

    core = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=1, mac_idle_timeout=30))
    core.connect(ports(), [], [], {}, 0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    src = src_flow(core, MAC1)
    assert src.idle_timeout == 30 and src.flags == pl.FLAG_SEND_FLOW_REM
    full = [f for f in core.switch.flows.values() if pl.cookie_kind(f.cookie) == pl.KIND_PORT_FULL]
    assert [dict(f.match)["in_port"] for f in full] == [3]
    # A delete we caused, or an idle flow of another port, is not aging.
    assert core.flow_removed(src, "delete", 40.0).mods == []
    assert core.entry(MAC1, 0) is not None
    out = core.flow_removed(src, "idle", 40.0)
    assert core.entry(MAC1, 0) is None and not core.placement.port_full(3)
    deleted = flow_mods(out, "delete")
    assert src not in deleted  # the switch already removed it
    assert len([f for f in deleted if pl.cookie_kind(f.cookie) != pl.KIND_PORT_FULL]) == 4
    assert any(pl.cookie_kind(f.cookie) == pl.KIND_PORT_FULL for f in deleted)
    assert core.events.counters["aged"] == 1
    assert src.key not in core.switch.flows


def test_aging_off_means_no_timeout_and_restart_reads_the_timeout_back():
    from slb_ryu.core.bridge import Limits

    core = BridgeCore(1, ["up*"], limits=Limits(mac_idle_timeout=0))
    core.connect(ports(), [], [], {}, 0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    assert src_flow(core, MAC1).idle_timeout == 0
    # Another timeout configured: the source flow is re-added (MODIFY cannot change it).
    fresh = BridgeCore(1, ["up*"], limits=Limits(mac_idle_timeout=60))
    out = fresh.connect(
        ports(),
        list(core.switch.groups.values()),
        list(core.switch.flows.values()),
        {},
        5.0,
        list(core.switch.meters.values()),
    )
    mods = [
        (c, f.idle_timeout)
        for o, c, f in out.mods
        if o == "flow" and pl.cookie_kind(f.cookie) == pl.KIND_SRC
    ]
    assert mods == [("add", 60)] and fresh.entry(MAC1, 0) is not None


def test_guard_hits_are_counted_and_reported_once_per_window():
    from slb_ryu.core.bridge import Limits

    core = BridgeCore(1, ["up*"], limits=Limits(guard_window=5))
    core.connect(ports(), [], [], {}, 0.0)
    outs = [core.packet_in(pl.KIND_GUARD, 3, MAC2, 0, None, 1.0 + i) for i in range(7)]
    assert core.entry(MAC2, 0) is None and all(o.mods == [] for o in outs)
    assert core.events.counters["guard_drop"] == 7
    assert core.events.counters["guard"] == 2  # at 1.0 and 6.0
    assert [bool(o.warnings) for o in outs] == [True] + [False] * 4 + [True, False]
    assert "hijack or loop" in outs[0].warnings[0]


def test_snooped_ips_are_capped_and_age_and_learning_packets_stay_bounded():
    from slb_ryu.core.bridge import Limits

    core = BridgeCore(1, ["up*"], limits=Limits(max_ips_per_mac=2, mac_idle_timeout=100))
    core.connect(ports(), [], [], {}, 0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    for i in range(50):
        core.packet_in(pl.KIND_ARP_SNOOP, 3, MAC1, 0, f"10.0.{i}.1", 2.0 + i)
    assert core.entry(MAC1, 0).ips == {"10.0.0.1", "10.0.1.1"}
    assert core.events.counters["ip"] == 2 and core.events.counters["ip_limit_drop"] == 48
    core.packet_in(pl.KIND_ARP_SNOOP, 3, MAC1, 0, "10.0.1.1", 60.0)  # still used
    core.tick(150.0)
    assert core.entry(MAC1, 0).ips == {"10.0.1.1"}
    uplink = core.entry(MAC1, 0).uplink
    out = core.port_status("modify", Port(uplink, f"up{uplink}", live=False), 151.0)
    assert [lp.ips for lp in out.learning] == [("10.0.1.1",)]


def test_an_ip_a_fabric_host_claimed_is_never_snooped_for_a_vm():
    """The poisoning ARP: a VM ARPs with a remote host's address. The datapath marks the
    packet-in (reg1) when a fabric host ARPed from that address lately."""
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    core.packet_in(pl.KIND_ARP_SNOOP, 3, MAC1, 0, "10.0.0.1", 2.0)
    for t in range(5):
        core.packet_in(pl.KIND_ARP_SNOOP, 3, MAC1, 0, "10.0.0.99", 3.0 + t, claimed=True)
    core.packet_in(pl.KIND_ARP_SNOOP, 3, MAC1, 0, "10.0.0.1", 9.0, claimed=True)
    assert core.entry(MAC1, 0).ips == set()
    assert core.events.counters["ip_claimed"] == 6
    assert core.events.counters["ip-claimed"] == 2  # one event per MAC per window
    uplink = core.entry(MAC1, 0).uplink
    out = core.port_status("modify", Port(uplink, f"up{uplink}", live=False), 10.0)
    assert [lp.ips for lp in out.learning] == [()]  # a RARP, no gratuitous ARP


def test_meters_per_local_port_on_every_controller_bound_flow():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    assert set(core.switch.meters) == {pl.port_meter(p) for p in (3, 4, OFPP_LOCAL)}
    for flow in core.switch.flows.values():
        to_controller = [a for a in flow.actions if a[0] in ("controller", "controller_meter")]
        if not to_controller:
            continue
        in_port = dict(flow.match).get("in_port", 3)
        want = pl.port_meter(in_port)
        got = flow.meter if to_controller[0][0] == "controller" else to_controller[0][2]
        assert got == want, flow


def test_port_security_learns_only_the_attached_mac():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 1.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC2, 0, None, 1.0)
    out = core.set_attached_macs({"vm1": MAC2.upper(), "vm2": "not-a-mac"}, 2.0)
    assert core.entry(MAC1, 0) is None and core.entry(MAC2, 0) is not None
    assert core.placement.attached_macs == {3: MAC2}
    assert core.events.counters["attached_mac_invalid"] == 1
    miss = [f for f in flow_mods(out) if f.table == pl.TABLE_LOCAL_MISS]
    assert {(f.priority, pl.cookie_kind(f.cookie)) for f in miss} >= {
        (100, pl.KIND_SRC_MISS),
        (90, pl.KIND_PORT_SECURITY),
    }
    learn = next(f for f in miss if f.priority == 100)
    assert dict(learn.match) == {"in_port": 3, "eth_src": MAC2}
    assert core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 3.0).mods == []
    core.packet_in(pl.KIND_PORT_SECURITY, 3, MAC1, 0, None, 3.0)
    assert core.entry(MAC1, 0) is None and core.events.counters["port_security_drop"] == 2
    assert core.set_attached_macs({"vm1": MAC2}, 4.0).mods == []  # unchanged: nothing


def test_a_new_vms_own_garp_echo_is_not_a_migration():
    """The local-miss flow forwards a new VM's GARP itself; when it comes back through
    the other switch after the flows are in, the grat-ARP lock must already hold."""
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, "10.0.0.1", 1.0, garp=True)
    core.packet_in(pl.KIND_MIGRATION, 2, MAC1, 0, "10.0.0.1", 1.01, garp=True)
    assert core.entry(MAC1, 0) is not None
    assert core.events.counters["garp_lock_ignored"] == 1


def test_a_guarded_announcement_is_a_migration_in_anything_else_is_refused():
    core, _ = connected()
    out = core.packet_in(pl.KIND_GUARD_ANNOUNCE, 3, MAC1, 0, "10.0.0.9", 1.0)
    assert core.entry(MAC1, 0) is None and core.events.counters["guard_drop"] == 1
    out = core.packet_in(pl.KIND_GUARD_ANNOUNCE, 3, MAC1, 0, "10.0.0.9", 2.0, garp=True)
    assert core.entry(MAC1, 0) is not None and out.reinject and not out.untag
    assert core.events.counters["migrated-in"] == 1 and flow_mods(out, "add")
    # its echo from the fabric is the grat-ARP lock's, not a migration away
    core.packet_in(pl.KIND_MIGRATION, 1, MAC1, 0, "10.0.0.9", 2.1, garp=True)
    assert core.entry(MAC1, 0) is not None


def test_drain_moves_macs_off_leaves_ff_groups_and_broadcast_role_then_undrain():
    core, _ = connected()
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, "10.0.0.1", 1.0)
    core.packet_in(pl.KIND_SRC_MISS, 4, MAC2, 0, None, 1.0)
    core.move(MAC1, 0, "up1", 2.0, None)
    core.move(MAC2, 0, "up1", 2.0, None)
    assert core.placement.active_uplink == 1
    out = core.drain("up1", 3.0)
    assert {(m.mac, m.reason, m.new_uplink) for m in out.moves} == {
        (MAC1, "drain", 2),
        (MAC2, "drain", 2),
    }
    assert {lp.mac for lp in out.learning} == {MAC1, MAC2}  # learning packets follow
    assert core.placement.active_uplink == 2
    groups = {s.group_id: s for o, c, s in out.mods if o == "group"}
    assert [b[0] for b in groups[2].buckets] == [2]  # up1 left out of fast failover
    assert [b[0] for b in groups[1].buckets] == [2]
    assert core.drain("up1", 3.5).moves == []  # idempotent
    with pytest.raises(Conflict, match="would leave bridge hv1 with no usable uplink"):
        core.drain("up2", 4.0)
    with pytest.raises(Conflict, match="drained"):
        core.move(MAC1, 0, "up1", 4.0, None)
    # A link flap of the drained uplink does not bring it back.
    core.port_status("modify", Port(1, "up1", live=False), 5.0)
    core.port_status("modify", Port(1, "up1", live=True), 6.0)
    assert core.placement.ports[1].drained and not core.placement.ports[1].usable
    out = core.undrain("up1", 7.0)
    assert out.moves == [] and core.placement.ports[1].usable
    groups = {s.group_id: s for o, c, s in out.mods if o == "group"}
    assert [b[0] for b in groups[1].buckets] == [1, 2]
    kinds = [e["type"] for e in core.events.events]
    assert "uplink-drained" in kinds and "uplink-undrained" in kinds

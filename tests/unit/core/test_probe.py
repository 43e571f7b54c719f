"""Path probing: the per-uplink state machine (plain data) and its effect on a bridge."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slb_ryu.core import pipeline as pl
from slb_ryu.core.bridge import BridgeCore, Limits
from slb_ryu.core.placement import OFPP_LOCAL, Port
from slb_ryu.core.probe import (
    PATH_DEAD,
    PATH_UNKNOWN,
    PATH_UP,
    PathProber,
    ProbeParams,
    ProbeTarget,
    is_probe_mac,
    meter_rate,
    parse_target,
    probe_mac,
)

GW = ProbeTarget("10.0.0.1")
PARAMS = ProbeParams(interval=0.2, misses=3, recover=5)


def run(prober, replies_by_round, live=(1, 2)):
    """Drive rounds: each item is the set of uplinks that get a reply in that round.

    Returns every change seen, as (round index, port, old, new)."""
    seen = []
    prober.round(0.0, live)  # the first round only sends
    for i, answered in enumerate(replies_by_round, start=1):
        for port in answered:
            prober.reply(port, GW.ip, 0, i * 0.2 - 0.1)
        seen += [(i, *c) for c in prober.round(i * 0.2, live)]
    return seen


def test_an_uplink_missing_while_the_other_answers_goes_dead_after_misses_rounds():
    prober = PathProber(1, (GW,), PARAMS)
    changes = run(prober, [{1, 2}, {1}, {1}, {1}])
    assert changes == [(1, 1, PATH_UNKNOWN, PATH_UP), (1, 2, PATH_UNKNOWN, PATH_UP),
                       (4, 2, PATH_UP, PATH_DEAD)]  # fmt: skip
    assert prober.state(2) == PATH_DEAD and prober.state(1) == PATH_UP


def test_two_misses_are_not_enough_and_a_reply_resets_the_count():
    prober = PathProber(1, (GW,), PARAMS)
    run(prober, [{1, 2}, {1}, {1}, {1, 2}, {1}, {1}])
    assert prober.state(2) == PATH_UP


def test_a_dead_uplink_comes_back_after_recover_good_rounds_in_a_row():
    prober = PathProber(1, (GW,), PARAMS)
    rounds = [{1}] * 3 + [{1, 2}] * 4 + [{1}] + [{1, 2}] * 5
    changes = run(prober, rounds)
    dead = [c for c in changes if c[1] == 2]
    # dead at round 3; 4 good rounds then a miss do not revive it; 5 good rounds do.
    assert dead == [(3, 2, PATH_UNKNOWN, PATH_DEAD), (13, 2, PATH_DEAD, PATH_UP)]


def test_nobody_answering_moves_nothing_and_names_the_target_unreachable():
    prober = PathProber(1, (GW,), PARAMS)
    changes = run(prober, [{1, 2}] + [set()] * 10)
    assert [c for c in changes if c[3] == PATH_DEAD] == []
    assert prober.unreachable() == [GW]
    for port in (1, 2):
        prober.reply(port, GW.ip, 0, 5.0)
    prober.round(5.0, (1, 2))
    assert prober.unreachable() == []


def test_a_reply_from_an_unknown_target_or_port_does_not_count():
    prober = PathProber(1, (GW,), PARAMS)
    prober.round(0.0, (1, 2))
    assert not prober.reply(1, "10.9.9.9", 0, 0.1)
    assert not prober.reply(1, GW.ip, 10, 0.1)  # same IP, other VLAN: another target
    assert not prober.reply(7, GW.ip, 0, 0.1)
    assert prober.path(1).last_reply is None


def test_carrier_down_uplinks_are_neither_probed_nor_judged_and_keep_their_verdict():
    prober = PathProber(1, (GW,), PARAMS)
    run(prober, [{1}] * 3)
    assert prober.state(2) == PATH_DEAD
    for t in range(10):  # uplink 2 carrier down: not probed, stays dead, no change
        assert prober.round(10.0 + t, (1,)) == []
        assert [r.port_no for r in prober.requests((1,))] == [1]
    assert prober.state(2) == PATH_DEAD and prober.path(2).good == 0


def test_any_target_answering_keeps_an_uplink_up():
    gw2 = ProbeTarget("10.0.0.2")
    prober = PathProber(1, (GW, gw2), PARAMS)
    prober.round(0.0, (1, 2))
    for i in range(1, 6):
        prober.reply(1, GW.ip, 0, i)
        prober.reply(2, gw2.ip, 0, i)
        prober.round(float(i), (1, 2))
    assert prober.state(1) == prober.state(2) == PATH_UP
    assert prober.unreachable() == []


@given(
    st.lists(st.sets(st.sampled_from([1, 2, 3])), min_size=1, max_size=40),
    st.integers(1, 5),
    st.integers(1, 5),
)
def test_never_every_uplink_dead_and_never_dead_in_a_round_nobody_answers(rounds, misses, recover):
    """Whatever the replies: an uplink only dies in a round where another one answered,
    so at least one uplink is never dead (the last one keeps the VMs)."""
    prober = PathProber(1, (GW,), ProbeParams(0.2, misses, recover))
    prober.round(0.0, (1, 2, 3))
    for i, answered in enumerate(rounds, start=1):
        for port in answered:
            prober.reply(port, GW.ip, 0, float(i))
        changes = prober.round(float(i), (1, 2, 3))
        died = [port for port, _, new in changes if new == PATH_DEAD]
        if died:
            assert answered - set(died), (i, answered, died)
        assert any(prober.state(p) != PATH_DEAD for p in (1, 2, 3))


@given(st.integers(1, 60), st.integers(1, 5))
def test_all_uplinks_missing_never_kills_any(rounds, misses):
    prober = PathProber(1, (GW,), ProbeParams(0.2, misses, 5))
    prober.round(0.0, (1, 2))
    for i in range(1, rounds + 1):
        assert prober.round(float(i), (1, 2)) == []
    assert prober.state(1) == prober.state(2) == PATH_UNKNOWN


def test_probe_macs_are_unicast_locally_administered_and_distinct():
    macs = {probe_mac(dpid, port) for dpid in (1, 2, 0x1234_0000_0001) for port in (1, 2, 3)}
    assert len(macs) == 9
    for mac in macs:
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01 and is_probe_mac(mac)
    assert not is_probe_mac("02:00:00:00:01:01")


@pytest.mark.parametrize(
    "text, target",
    [("10.0.0.1", ProbeTarget("10.0.0.1")), (" 10.0.0.1@10 ", ProbeTarget("10.0.0.1", 10))],
)
def test_parse_target(text, target):
    assert parse_target(text) == target


@pytest.mark.parametrize(
    "text, message",
    [
        ("gateway", "not an IPv4 address"),
        ("224.0.0.1", "not a unicast"),
        ("10.0.0.1@x", "not a VLAN number"),
        ("10.0.0.1@4095", "not in 1..4094"),
    ],
)
def test_parse_target_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_target(text)


def test_meter_rate_leaves_headroom_over_the_expected_reply_rate():
    assert meter_rate(1, 2, 0.2) >= 4 * 2 / 0.2
    assert meter_rate(1, 2, 30.0) == 20


# ---- the bridge: draining a path-dead uplink like a carrier loss ------------------------

MAC1, MAC2 = "00:00:00:00:00:01", "00:00:00:00:00:02"


def bridge(**kw):
    core = BridgeCore(1, ["up*"], probe_targets=(GW,), probe_params=PARAMS, **kw)
    ports = [
        Port(OFPP_LOCAL, "hv1"),
        Port(1, "up1"),
        Port(2, "up2"),
        Port(3, "vm1"),
        Port(4, "vm2"),
    ]
    out = core.connect(ports, [], [], {}, now=0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, "10.0.0.11", 0.1)
    core.packet_in(pl.KIND_SRC_MISS, 4, MAC2, 0, None, 0.1)
    return core, out


def probe_rounds(core, answered_rounds, start=1.0):
    outs = []
    for i, answered in enumerate(answered_rounds):
        now = start + i * 0.2
        for port in answered:
            core.probe_reply(port, GW.ip, 0, now - 0.1)
        outs.append(core.probe_round(now))
    return outs


def test_probing_adds_its_flows_and_meter_and_probes_every_live_uplink():
    core, out = bridge()
    probe = [s for o, _, s in out.mods if o == "flow" and pl.cookie_kind(s.cookie) == pl.KIND_PROBE]
    punts = [f for f in probe if f.actions]
    assert {dict(f.match)["in_port"] for f in punts} == {1, 2}
    for f in punts:
        fields = dict(f.match)
        assert fields["eth_dst"] == probe_mac(1, fields["in_port"]) and fields["arp_op"] == 2
        assert f.meter == pl.PROBE_METER_ID
    ports = {pl.port_meter(p.port_no) for p in core.placement.local_ports}
    assert {s.meter_id for o, _, s in out.mods if o == "meter"} == ports | {pl.PROBE_METER_ID}
    _, requests = core.probe_round(1.0)
    assert [(r.port_no, r.src_mac, r.target) for r in requests] == [
        (1, probe_mac(1, 1), GW),
        (2, probe_mac(1, 2), GW),
    ]


def test_no_probe_flows_or_meter_when_probing_is_off():
    core = BridgeCore(1, ["up*"])
    out = core.connect([Port(1, "up1"), Port(2, "up2"), Port(3, "vm1")], [], [], {}, 0.0)
    assert all(pl.cookie_kind(s.cookie) != pl.KIND_PROBE for o, _, s in out.mods if o == "flow")
    ports = {pl.port_meter(p.port_no) for p in core.placement.local_ports}
    assert {s.meter_id for o, _, s in out.mods if o == "meter"} == ports
    out, requests = core.probe_round(1.0)
    assert requests == [] and out.mods == []


def test_path_dead_uplink_loses_its_macs_groups_and_active_role_then_returns():
    core, _ = bridge()
    core.placement.move(MAC1, 0, 1, 0.2, "manual")
    core.placement.move(MAC2, 0, 1, 0.2, "manual")
    assert core.placement.active_uplink == 1
    outs = probe_rounds(core, [set()] + [{1, 2}] + [{2}] * 3)
    out, _ = outs[-1]
    port = core.placement.ports[1]
    assert port.path_dead and port.path == PATH_DEAD and port.live and not port.usable
    assert {m.new_uplink for m in out.moves} == {2} and len(out.moves) == 2
    assert {m.reason for m in out.moves} == {"failover"}
    assert {lp.out_port for lp in out.learning} == {2}  # learning packets, as on carrier loss
    assert core.placement.active_uplink == 2
    ff = {g.group_id: g for g in pl.groups(core.placement) if g.type == "ff"}
    assert [b[0] for b in ff[1].buckets] == [2] and [b[0] for b in ff[2].buckets] == [2]
    assert core.events.counters["uplink-path-dead"] == 1
    assert core.placement.uplink_named("up1").last_reply is not None
    # Five good rounds in a row bring it back into the groups (MACs return by rebalance).
    outs = probe_rounds(core, [{1, 2}] * 5, start=3.0)
    assert not port.path_dead and port.usable and port.path == PATH_UP
    ff = {g.group_id: g for g in pl.groups(core.placement) if g.type == "ff"}
    assert [b[0] for b in ff[2].buckets] == [2, 1]
    assert core.events.counters["uplink-path-up"] == 1
    assert any(o == "group" for o, _, _ in outs[-1][0].mods)


def test_target_down_moves_nothing_and_is_reported():
    core, _ = bridge()
    outs = probe_rounds(core, [set(), {1, 2}] + [set()] * 6)
    assert all(out.moves == [] for out, _ in outs)
    assert not any(p.path_dead for p in core.placement.uplinks)
    assert core.unreachable == (GW,)
    assert core.events.counters["probe-target-unreachable"] == 1


def test_repeated_path_deaths_hold_the_uplink_like_link_flaps():
    core, _ = bridge(limits=Limits(flap_limit=2, flap_window=60.0, flap_hold=30.0))
    cycle = [{1, 2}] + [{2}] * 3 + [{1, 2}] * 5
    probe_rounds(core, [set()] + cycle * 2)
    port = core.placement.ports[1]
    assert port.held and not port.path_dead and not port.usable
    assert core.events.counters["uplink-held"] == 1


def test_probe_replies_count_only_for_known_targets():
    core, _ = bridge()
    core.probe_round(1.0)
    core.probe_reply(1, "10.0.0.99", 0, 1.1)
    core.probe_reply(1, None, 0, 1.1)
    core.probe_reply(1, GW.ip, 0, 1.1)
    assert core.events.counters["probe_replies_unexpected"] == 2
    assert core.events.counters["probe_replies"] == 1


def test_a_port_status_keeps_the_path_dead_verdict():
    core, _ = bridge()
    probe_rounds(core, [set(), {1, 2}, {2}, {2}, {2}])
    assert core.placement.ports[1].path_dead
    core.port_status("modify", Port(1, "up1", live=True, speed_bps=10**9), 3.0)
    assert core.placement.ports[1].path_dead and not core.placement.ports[1].usable


# ---- OVS BFD (OVSDB bfd_status) -------------------------------------------------------


def bfd_bridge():
    core = BridgeCore(1, ["up*"])
    ports = [Port(OFPP_LOCAL, "hv1"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm1")]
    core.connect(ports, [], [], {}, now=0.0)
    core.packet_in(pl.KIND_SRC_MISS, 3, MAC1, 0, None, 0.1)
    core.placement.move(MAC1, 0, 1, 0.2, "manual")
    return core


def test_bfd_down_drains_the_uplink_and_bfd_up_restores_it():
    core = bfd_bridge()
    out = core.bfd_update({"up1": ("down", 2), "up2": ("up", 1)}, 1.0)
    port = core.placement.ports[1]
    assert port.path_dead and port.path == PATH_DEAD and not port.usable
    assert [(m.old_uplink, m.new_uplink) for m in out.moves] == [(1, 2)]
    assert core.bfd_update({"up1": ("init", 3), "up2": ("up", 1)}, 1.5).moves == []  # still
    out = core.bfd_update({"up1": ("up", 4), "up2": ("up", 1)}, 2.0)
    assert not port.path_dead and port.usable and port.path == "off"
    assert core.events.counters["uplink-path-up"] == 1


def test_bfd_never_takes_the_last_uplink():
    core = bfd_bridge()
    core.bfd_update({"up1": ("down", 2), "up2": ("down", 2)}, 1.0)
    dead = [p.name for p in core.placement.uplinks if p.path_dead]
    assert dead == ["up1"]  # up2 stays: a switch without BFD must not cut the host off
    assert core.events.counters["bfd_down_ignored_last_uplink"] == 1


def test_uplinks_without_bfd_or_with_a_session_never_up_or_admin_down_are_not_affected():
    core = bfd_bridge()
    assert core.bfd_update({}, 1.0).moves == []
    assert core.bfd_update({"up1": ("down", 0)}, 1.1).moves == []  # never up: no BFD peer
    assert core.bfd_update({"up1": ("admin_down", 3)}, 1.2).moves == []
    assert all(p.usable for p in core.placement.uplinks)


def test_rounds_nobody_answers_do_not_count_as_misses():
    """Target down for a while, then back with uplink 2's reply one round late: uplink 2
    must not die for the silent rounds (they say nothing about its path)."""
    prober = PathProber(1, (GW,), PARAMS)
    changes = run(prober, [{1, 2}] + [set()] * 10 + [{1}, {1, 2}, {1, 2}])
    assert [c for c in changes if c[3] == PATH_DEAD] == []
    assert prober.state(2) == PATH_UP


def test_misses_interrupted_by_a_silent_round_still_add_up():
    prober = PathProber(1, (GW,), PARAMS)
    changes = run(prober, [{1, 2}, {1}, set(), {1}, {1}])
    assert changes[-1] == (5, 2, PATH_UP, PATH_DEAD)


def test_manual_move_to_a_path_dead_uplink_is_a_conflict_that_says_why():
    from slb_ryu.core.errors import Conflict

    core = bfd_bridge()
    core.bfd_update({"up1": ("down", 2)}, 1.0)
    with pytest.raises(Conflict, match="up1 is path-dead"):
        core.move(MAC1, 0, "up1", 2.0, None)

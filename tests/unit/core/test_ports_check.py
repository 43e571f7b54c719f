"""Configured uplinks against the bridge's ports: what is refused and why."""

from slb_ryu.core import pipeline
from slb_ryu.core.placement import OFPP_LOCAL, Port
from slb_ryu.core.ports_check import check_uplinks, drop_all_flow, is_glob


def ports(*names: str) -> list[Port]:
    return [Port(OFPP_LOCAL, "br0")] + [Port(i, n) for i, n in enumerate(names, start=1)]


def test_matching_configuration_passes():
    assert check_uplinks(("eth1", "eth2"), ports("eth1", "eth2", "vif1.0")) == []
    assert check_uplinks(("eth*",), ports("eth1", "eth2", "vif1.0")) == []


def test_a_typo_names_the_missing_port_and_lists_the_real_ones():
    (problem,) = check_uplinks(("eth1", "eth3"), ports("eth1", "eth2", "vif1.0"))
    assert "eth3" in problem and "eth1, eth2, vif1.0" in problem


def test_a_glob_matching_nothing_is_refused():
    (problem,) = check_uplinks(("bond*",), ports("eth1", "eth2", "vif1.0"))
    assert "'bond*' matches no port" in problem


def test_fewer_ports_than_configured_uplinks_is_refused():
    problems = check_uplinks(("eth1", "eth2", "eth3"), ports("eth1", "eth2", "vif1.0"))
    assert len(problems) == 1 and "eth3" in problems[0]


def test_a_glob_matching_every_port_is_refused():
    (problem,) = check_uplinks(("rt*",), ports("rt1", "rt2", "rtvm1"))
    assert "match every port" in problem


def test_literal_names_may_cover_every_port_of_a_host_without_vms():
    assert check_uplinks(("eth1", "eth2"), ports("eth1", "eth2")) == []


def test_a_port_carrying_learned_vm_macs_cannot_be_an_uplink():
    (problem,) = check_uplinks(("eth1", "eth2", "vif1.0"), ports("eth1", "eth2", "vif1.0"), {3})
    assert "vif1.0" in problem and "learned VM MACs" in problem
    assert check_uplinks(("eth1", "eth2"), ports("eth1", "eth2", "vif1.0"), {3}) == []


def test_the_local_port_is_never_an_uplink_nor_a_missing_one():
    assert check_uplinks(("br*", "eth1"), ports("eth1", "vif1.0")) != []  # br0 is LOCAL


def test_drop_all_flow_is_ours_and_lowest_priority_in_table_0():
    flow = drop_all_flow()
    assert (flow.table, flow.priority, flow.match, flow.actions, flow.goto) == (0, 0, (), (), None)
    assert pipeline.cookie_kind(flow.cookie) == pipeline.KIND_DROP


def test_is_glob():
    assert is_glob("eth*") and is_glob("eth[12]") and is_glob("eth?") and not is_glob("eth1")

"""Configuration validation: clear errors, per-bridge uplinks, safe REST exposure."""

import pytest
from oslo_config import cfg

from slb_ryu import options
from slb_ryu.options import ConfigError, build_settings, check_api_exposure


def test_global_and_per_bridge_uplinks():
    s = build_settings(uplinks=["eth1", "eth2"], bridge_uplinks=["br1=p1,p2", "0x10=q1 q2"])
    assert s.uplinks == ("eth1", "eth2")
    assert s.uplinks_for(1, "BR1") == ("p1", "p2")
    assert s.uplinks_for(16, "other") == ("q1", "q2")
    assert s.uplinks_for(2, "br2") == ("eth1", "eth2")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "no uplinks configured"),
        ({"uplinks": [], "bridge_uplinks": ["br1"]}, "BRIDGE=port,port"),
        ({"bridge_uplinks": ["=eth1"]}, "missing bridge name"),
        ({"bridge_uplinks": ["0xzz=eth1"]}, "bad datapath id"),
        ({"bridge_uplinks": ["br1="]}, "empty uplink list"),
        ({"uplinks": ["eth1"], "stats_interval": -1}, "stats_interval must be >= 0"),
        ({"uplinks": ["eth1"], "rebalance_interval": 0.5}, "0 (off) or >= 1"),
        ({"uplinks": ["eth1"], "max_moves": 0}, "max_moves"),
        ({"uplinks": ["eth1"], "uplink_speeds": {"eth1": "fast"}}, "not Mbit/s"),
        ({"uplinks": ["eth1"], "uplink_speeds": {"eth1": "0"}}, "must be > 0"),
        ({"uplinks": ["eth1"], "bogus": 1}, "unknown option"),
        ({"uplinks": ["eth'1"]}, "invalid port name"),
    ],
)
def test_invalid_configuration_names_the_problem(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_settings(**raw)


def test_speeds_in_mbits_become_bits_per_second():
    s = build_settings(uplinks=["eth*"], uplink_speeds={"eth1": "10000", "eth2": "1000"})
    assert s.uplink_speeds == {"eth1": 10_000_000_000, "eth2": 1_000_000_000}


def test_api_exposure_needs_token_or_read_only_off_loopback():
    s = build_settings(uplinks=["eth1"])
    check_api_exposure(s, "127.0.0.1")
    check_api_exposure(s, "::1")
    with pytest.raises(ConfigError, match="api_token"):
        check_api_exposure(s, "0.0.0.0")
    check_api_exposure(build_settings(uplinks=["eth1"], api_token="s3cret"), "0.0.0.0")
    check_api_exposure(build_settings(uplinks=["eth1"], api_read_only=True), "10.1.2.3")


def test_load_from_oslo_config_file(tmp_path):
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.StrOpt("wsapi_host", default="0.0.0.0")])
    path = tmp_path / "slb.conf"
    path.write_text("[slb]\nuplinks = eth1, eth2\nbridge_uplinks = br9=x1\nmax_moves = 3\n")
    conf(args=["--config-file", str(path)], project="slb-test")
    settings = options.load(conf)
    assert conf.wsapi_host == "127.0.0.1"  # our safer default
    assert settings.uplinks == ("eth1", "eth2") and settings.max_moves == 3
    assert settings.uplinks_for(1, "br9") == ("x1",)


def test_load_reports_bad_types(tmp_path):
    conf = cfg.ConfigOpts()
    path = tmp_path / "slb.conf"
    path.write_text("[slb]\nuplinks = eth1\nstats_interval = soon\n")
    conf(args=["--config-file", str(path)], project="slb-test")
    with pytest.raises(ConfigError, match="stats_interval"):
        options.load(conf)


def test_probe_targets_global_per_bridge_and_vlan(tmp_path):
    conf = cfg.ConfigOpts()
    path = tmp_path / "slb.conf"
    path.write_text(
        "[slb]\nuplinks = eth1, eth2\nprobe_targets = 10.0.0.1, 10.0.10.1@10\n"
        "bridge_probe_targets = br1=192.0.2.1\nbridge_probe_targets = 0x2=\n"
        "probe_interval = 0.5\nprobe_misses = 4\n"
    )
    conf(args=["--config-file", str(path)], project="slb-test")
    s = options.load(conf)
    assert [str(t) for t in s.probe_targets_for(9, "br9")] == ["10.0.0.1", "10.0.10.1@10"]
    assert [str(t) for t in s.probe_targets_for(1, "BR1")] == ["192.0.2.1"]
    assert s.probe_targets_for(2, "x") == ()  # probing off on that bridge
    assert (s.probe_interval, s.probe_misses, s.probe_recover) == (0.5, 4, 5)
    assert build_settings(uplinks=["eth1"]).probe_targets == ()  # off by default


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"probe_targets": ["gateway"]}, "probe_targets: 'gateway': not an IPv4 address"),
        ({"probe_targets": ["10.0.0.1@5000"]}, "not in 1..4094"),
        ({"bridge_probe_targets": ["br1"]}, "BRIDGE=IP[@VLAN]"),
        ({"bridge_probe_targets": ["br1=224.0.0.5"]}, "not a unicast"),
        ({"probe_interval": 0.01}, "probe_interval must be >= 0.05"),
        ({"probe_misses": 0}, "probe_misses must be >= 1"),
    ],
)
def test_invalid_probe_options_name_the_problem(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_settings(uplinks=["eth1"], **raw)

"""Configuration: options defined once (OPTS), everything else derived; every mistake
refused at start with a one-line message naming the option and what is allowed."""

import dataclasses
import math
from pathlib import Path

import pytest
from oslo_config import cfg, types

from slb_ryu import options
from slb_ryu.core.bridge import Limits
from slb_ryu.core.rebalance import RebalanceParams
from slb_ryu.options import OPTS, ConfigError, Settings, build_settings, check_api_exposure

REPO = Path(__file__).resolve().parents[2]
NOT_CONFIGURABLE = {"tolerance"}  # RebalanceParams fields with no option (bench/algorithm.py)


# ---- one definition ----------------------------------------------------------------------


def test_settings_fields_are_the_options():
    assert [f.name for f in dataclasses.fields(Settings)] == [o.dest for o in OPTS]
    defaults = Settings()
    for opt in OPTS:
        if opt.convert is None:
            assert getattr(defaults, opt.dest) == opt.default, opt.dest
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.max_moves = 1


def test_every_core_parameter_is_fed_by_exactly_one_option():
    fed = [o.feeds for o in OPTS if o.feeds]
    assert len(fed) == len(set(fed))
    assert {f"limits.{f.name}" for f in dataclasses.fields(Limits)} <= set(fed)
    params = {f.name for f in dataclasses.fields(RebalanceParams)} - NOT_CONFIGURABLE
    assert {f"rebalance.{name}" for name in params} <= set(fed)


def test_defaults_of_options_and_core_agree():
    s = build_settings(uplinks=["eth1"])
    assert s.limits() == Limits()
    assert s.rebalance_params() == RebalanceParams()


def test_settings_map_onto_core_parameters():
    s = build_settings(
        uplinks=["eth1"],
        rebalance_min_gain=0.2,
        rebalance_min_load=1000,
        min_dwell=7,
        max_moves=3,
        max_macs_per_port=9,
        packet_in_rate=50,
        grat_arp_lock=2,
        flap_limit=2,
        flap_window=5,
        flap_hold=6,
    )
    assert s.rebalance_params() == RebalanceParams(
        min_gain=0.2, min_load=1000.0, min_dwell=7.0, max_moves=3
    )
    assert s.limits() == Limits(
        max_macs_per_port=9,
        packet_in_rate=50,
        grat_arp_lock=2.0,
        flap_limit=2,
        flap_window=5.0,
        flap_hold=6.0,
    )


def test_every_number_has_finite_bounds_and_says_why():
    for opt in OPTS:
        assert opt.help, opt.dest
        if isinstance(opt.type, types.Number):
            assert math.isfinite(opt.type.min) and math.isfinite(opt.type.max), opt.dest
            assert opt.type.min <= opt.default <= opt.type.max, opt.dest
            assert f"Allowed: {options.allowed(opt)}" in opt.help, opt.dest


def test_oslo_float_lets_nan_through_ours_does_not():
    assert math.isnan(types.Float(min=0, max=10)("nan"))  # why Finite exists
    with pytest.raises(ValueError, match="NaN"):
        options.Finite(0, 10)("nan")
    with pytest.raises(ValueError, match="less than or equal"):
        options.Finite(0, 10)("inf")
    with pytest.raises(ValueError, match="0 \\(off\\) or at least 1"):
        options.Finite(0, 10, off_below=1)("0.5")
    assert options.Finite(0, 10, off_below=1)("0") == 0.0


# ---- plain data ----------------------------------------------------------------------------


def test_global_and_per_bridge_uplinks():
    s = build_settings(uplinks=["eth1", "eth2"], bridge_uplinks=["br1=p1,p2", "0x10=q1 q2"])
    assert s.uplinks == ("eth1", "eth2")
    assert s.uplinks_for(1, "BR1") == ("p1", "p2")
    assert s.uplinks_for(16, "other") == ("q1", "q2")
    assert s.uplinks_for(2, "br2") == ("eth1", "eth2")


def test_same_bridge_by_name_and_by_dpid_is_allowed():
    s = build_settings(bridge_uplinks=["br0=eth1,eth2", "0x1=eth3"])
    assert s.uplinks_for(5, "br0") == ("eth1", "eth2")
    assert s.uplinks_for(1, "other") == ("eth3",)


U = {"uplinks": ["eth1"]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "[slb] uplinks: no uplinks configured"),
        ({"bridge_uplinks": ["br1"]}, "is not of the form BRIDGE=port,port"),
        ({"bridge_uplinks": ["=eth1"]}, "missing bridge name"),
        ({"bridge_uplinks": ["0xzz=eth1"]}, "bad datapath id '0xzz'"),
        ({"bridge_uplinks": ["0x10000000000000000=eth1"]}, "bad datapath id"),
        ({"bridge_uplinks": ["br1="]}, "empty uplink list"),
        ({"bridge_uplinks": ["br 1=eth1"]}, "[slb] bridge_uplinks: odd bridge name 'br 1'"),
        ({"bridge_uplinks": ["br0=eth1,eth2", "br0=eth3"]}, "bridge 'br0' given twice"),
        ({"bridge_uplinks": ["br0=eth1", "BR0 = eth3"]}, "given twice"),
        ({"bridge_uplinks": ["0x10=eth1", "16=eth3"]}, "bridge '16' given twice"),
        ({"uplinks": ["eth1", "", "eth2"]}, "[slb] uplinks: empty port name"),
        ({"uplinks": ["eth1", "eth1"]}, "port 'eth1' listed twice"),
        ({"uplinks": ["eth1", "eth2  # bond"]}, "no inline comments"),
        ({"uplinks": ["eth'1"]}, "odd port name"),
        ({"uplinks": ["eth1:10"]}, "odd port name"),
        ({"uplinks": ["e" * 300]}, "at most 255 characters"),
        ({**U, "stats_interval": -1}, "[slb] stats_interval = -1 is not allowed: 0 (off) or"),
        ({**U, "stats_interval": 0.2}, "0 (off) or a number in 0.5..3600"),
        ({**U, "stats_interval": "nan"}, "stats_interval = nan"),
        ({**U, "rebalance_interval": 0.5}, "0 (off) or a number in 1..86400"),
        ({**U, "max_moves": 0}, "[slb] max_moves = 0 is not allowed: an integer in 1..1000"),
        ({**U, "max_moves": 2.5}, "max_moves = 2.5"),
        ({**U, "max_moves": "lots"}, "max_moves = lots"),
        ({**U, "packet_in_rate": 4294967296}, "packet_in_rate = 4294967296 is not allowed"),
        ({**U, "learning_repeat": 1000000}, "an integer in 1..10"),
        ({**U, "learning_repeat_interval": math.nan}, "learning_repeat_interval = nan"),
        ({**U, "learning_repeat_interval": math.inf}, "a number in 0.1..10"),
        ({**U, "learning_repeat_interval": -1.0}, "a number in 0.1..10"),
        ({**U, "grat_arp_lock": 0}, "[slb] grat_arp_lock = 0 is not allowed: a number in 1..60"),
        ({**U, "event_log_size": 10**9}, "an integer in 1..100000"),
        ({**U, "flap_hold": -5}, "flap_hold"),
        ({**U, "uplink_speeds": {"eth1": "fast"}}, "uplink_speeds: eth1 = fast is not allowed"),
        ({**U, "uplink_speeds": {"eth1": "0"}}, "Mbit/s in 0.001..1e6"),
        ({**U, "uplink_speeds": {"eth1": "nan"}}, "Mbit/s in 0.001..1e6"),
        ({**U, "uplink_speeds": {"eth1": "inf"}}, "Mbit/s in 0.001..1e6"),
        ({**U, "uplink_speeds": {"eth1": "1e7"}}, "Mbit/s in 0.001..1e6"),
        ({**U, "access_ports": {"vif1.0": "4095"}}, "a VLAN id in 1..4094"),
        ({**U, "access_ports": {"vif 1": "10"}}, "[slb] access_ports: odd port name"),
        ({**U, "api_token": "s3cret  # ops"}, "[slb] api_token: contains whitespace"),
        (
            {**U, "api_readonly": True},
            "[slb] api_readonly: unknown option; did you mean api_read_only?",
        ),
        ({**U, "bogus": 1}, "[slb] bogus: unknown option"),
        (
            {**U, "learning_packets": "maybe"},
            "learning_packets = maybe is not allowed: true or false",
        ),
    ],
)
def test_invalid_configuration_names_the_problem(raw, message):
    with pytest.raises(ConfigError) as info:
        build_settings(**raw)
    assert any(message in p for p in info.value.problems), info.value.problems
    for problem in info.value.problems:
        assert problem.startswith("[slb] ") and "\n" not in problem


def test_every_problem_is_reported_not_just_the_first():
    with pytest.raises(ConfigError) as info:
        build_settings(
            uplinks=["eth1", "eth1"],
            packet_in_rate=0,
            grat_arp_lock=0.0,
            api_readonly=True,
            bridge_uplinks=["br0=a", "br0=b"],
        )
    problems = info.value.problems
    assert len(problems) == 5, problems
    assert str(info.value) == "\n".join(problems)


def test_a_secret_is_never_echoed():
    with pytest.raises(ConfigError) as info:
        build_settings(uplinks=["eth1"], api_token="s3cret  # ops token")
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(build_settings(uplinks=["eth1"], api_token="s3cret"))


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


# ---- a real oslo ConfigOpts reading a file ---------------------------------------------


def read(tmp_path, text, host=None):
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.StrOpt("wsapi_host", default="0.0.0.0")])
    path = tmp_path / "slb.conf"
    path.write_text(text)
    conf(args=["--config-file", str(path)], project="slb-test")
    return conf


def problems(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        options.load(read(tmp_path, text))
    return info.value.problems


def test_load_from_oslo_config_file(tmp_path):
    conf = read(tmp_path, "[slb]\nuplinks = eth1, eth2\nbridge_uplinks = br9=x1\nmax_moves = 3\n")
    settings = options.load(conf)
    assert conf.wsapi_host == "127.0.0.1"  # our safer default
    assert settings.uplinks == ("eth1", "eth2") and settings.max_moves == 3
    assert settings.uplinks_for(1, "br9") == ("x1",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stats_interval = soon", "[slb] stats_interval = soon is not allowed: 0 (off) or"),
        ("api_readonly = true", "[slb] api_readonly: unknown option; did you mean api_read_only?"),
        ("Max_Moves = 3", "did you mean max_moves?"),
        ("packet_in_rate = 4294967296", "[slb] packet_in_rate = 4294967296 is not allowed: "),
        ("learning_repeat = 1000000", "[slb] learning_repeat = 1000000 is not allowed: "),
        ("learning_repeat_interval = nan", "[slb] learning_repeat_interval = nan is not"),
        ("learning_repeat_interval = inf", "[slb] learning_repeat_interval = inf is not"),
        ("grat_arp_lock = 0", "[slb] grat_arp_lock = 0 is not allowed: a number in 1..60"),
        ("max_moves = 3  # a few", "[slb] max_moves = 3  # a few is not allowed"),
        ("max_moves =", "[slb] max_moves = (empty) is not allowed"),
        ("api_token = s3cret  # ops", "[slb] api_token: contains whitespace"),
        ("bridge_uplinks = br0=eth1\nbridge_uplinks = br0=eth2", "bridge 'br0' given twice"),
        ("max_moves = 3\nmax_moves = 4", "[slb] max_moves: given 2 times in"),
        ("uplinks = eth3", "[slb] uplinks: given 2 times in"),
    ],
)
def test_file_mistakes_are_refused_by_name(tmp_path, text, message):
    found = problems(tmp_path, f"[slb]\nuplinks = eth1, eth2\n{text}\n")
    assert any(message in p for p in found), found


def test_slb_option_in_default_section_is_refused(tmp_path):
    found = problems(tmp_path, "[DEFAULT]\nuplinks = eth1\n[slb]\nuplinks = eth1\n")
    assert any("[slb] uplinks: found in [DEFAULT]" in p for p in found), found


def test_file_with_many_mistakes_lists_them_all(tmp_path):
    text = (
        "[slb]\nuplinks = eth1,,eth2\napi_readonly = true\npacket_in_rate = 4294967296\n"
        "grat_arp_lock = 0\nbridge_uplinks = br0=a\nbridge_uplinks = br0=b\n"
    )
    found = problems(tmp_path, text)
    names = ["uplinks", "api_readonly", "packet_in_rate", "grat_arp_lock", "bridge_uplinks"]
    for name in names:
        assert sum(p.startswith(f"[slb] {name}") for p in found) == 1, (name, found)
    assert len(found) == len(names), found


def test_non_loopback_rest_without_token_is_refused(tmp_path):
    found = problems(tmp_path, "[DEFAULT]\nwsapi_host = 0.0.0.0\n[slb]\nuplinks = eth1\n")
    assert found == [p for p in found if "[slb] api_token: REST API on non-loopback" in p]


# ---- generated documentation ------------------------------------------------------------


def test_readme_table_is_generated_from_the_options():
    readme = (REPO / "README.md").read_text()
    assert options.readme_with_table(readme) == readme, (
        "README option table is stale: run python -m slb_ryu.options --write"
    )
    for opt in OPTS:
        assert f"| `{opt.dest}` |" in readme


def test_sample_config_is_generated_from_the_options():
    assert (REPO / options.SAMPLE_PATH).read_text() == options.sample_config(), (
        "etc/slb-ryu.conf.sample is stale: run python -m slb_ryu.options --write"
    )
    assert "NO inline comments" in options.sample_config()


def test_sample_config_uncommented_gives_the_defaults(tmp_path):
    lines = []
    for line in options.sample_config().splitlines():
        name, _, value = line[1:].partition(" = ")
        if line.startswith("#") and name in options.BY_NAME and value:
            line = line[1:]
        lines.append(line)
    lines.append("uplinks = eth1")
    conf = read(tmp_path, "\n".join(lines) + "\n")
    assert options.load(conf) == build_settings(uplinks=["eth1"])
    assert (
        len(options.file_problems([tmp_path / "slb.conf"])[1])
        == len([o for o in OPTS if options.default_text(o)]) + 1
    )


def test_write_regenerates_both_files(tmp_path, capsys):
    (tmp_path / "README.md").write_text(
        f"# x\n\n{options.TABLE_BEGIN}\nold\n{options.TABLE_END}\n\nafter\n"
    )
    assert options.main(["--write", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert options.markdown_table() in readme and "\nold\n" not in readme and "after" in readme
    assert (tmp_path / options.SAMPLE_PATH).read_text() == options.sample_config()
    assert options.main(["--table"]) == 0
    assert capsys.readouterr().out.endswith(options.markdown_table())


def test_advice_warns_about_allowed_but_unwise_combinations():
    assert options.advice(build_settings(uplinks=["eth1"])) == []
    short = options.advice(build_settings(uplinks=["eth1"], min_dwell=5, rebalance_interval=10))
    assert short == [
        "[slb] min_dwell (5 s) < rebalance_interval (10 s): a MAC moved in one run may be "
        "moved back in the next; keep min_dwell >= rebalance_interval"
    ]
    blind = options.advice(build_settings(uplinks=["eth1"], stats_interval=0))
    assert blind and "stats_interval = 0" in blind[0]
    assert (
        options.advice(build_settings(uplinks=["e"], stats_interval=0, rebalance_interval=0)) == []
    )


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
        ({"bridge_probe_targets": ["br1=10.0.0.1", "BR1=10.0.0.2"]}, "given twice"),
        ({"probe_interval": 0.01}, "probe_interval = 0.01 is not allowed: a number in 0.05..60"),
        ({"probe_misses": 0}, "probe_misses = 0 is not allowed: an integer in 1..100"),
    ],
)
def test_invalid_probe_options_name_the_problem(raw, message):
    with pytest.raises(ConfigError) as exc:
        build_settings(uplinks=["eth1"], **raw)
    assert any(message in p for p in exc.value.problems), exc.value.problems

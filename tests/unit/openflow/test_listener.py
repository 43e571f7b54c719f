"""OpenFlow listener defaults: loopback unless the operator says otherwise."""

from oslo_config import cfg

from slb_ryu.openflow import listener


def conf_with_listen_host() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf.register_cli_opts([cfg.StrOpt("ofp-listen-host", default="0.0.0.0")])
    return conf


def test_default_becomes_loopback():
    conf = conf_with_listen_host()
    conf([], project="test")
    listener.listen_on_loopback(conf)
    assert conf.ofp_listen_host == "127.0.0.1"


def test_command_line_still_wins():
    conf = conf_with_listen_host()
    conf(["--ofp-listen-host", "192.0.2.1"], project="test")
    listener.listen_on_loopback(conf)
    assert conf.ofp_listen_host == "192.0.2.1"


def test_missing_option_is_only_a_warning():
    listener.listen_on_loopback(cfg.ConfigOpts())

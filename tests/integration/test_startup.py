"""ryu-manager with the real app: a bad configuration stops it at start, clearly."""

import pytest

from lab import testbed as h


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[slb]\n", "no uplinks configured"),
        ("[slb]\nuplinks = eth1\nstats_interval = soon\n", "stats_interval"),
        ("[slb]\nbridge_uplinks = br0\n", "BRIDGE=port,port"),
    ],
)
def test_bad_configuration_stops_the_controller_with_a_message(config, message):
    ctl = h.Controller(config=config, of_port=6673, ws_port=8097)
    with pytest.raises(h.TestbedError):
        ctl.start(timeout=20)
    log = ctl.log_text()
    assert "configuration error" in log and message in log, log
    assert not ctl.running


def test_good_configuration_serves_rest_on_loopback_only():
    ctl = h.Controller(
        config="[slb]\nuplinks = eth1, eth2\n", of_port=6673, ws_port=8097, ws_host=None
    )
    assert "--wsapi-host" not in ctl.argv()  # our default (127.0.0.1) applies, not Ryu's 0.0.0.0
    with ctl:
        assert ctl.get_json("/slb/v1/placement") == []
        assert ctl.get_json("/slb/v1/health")["status"] == "ok"
        listening = h.sh(["ss", "-ltnH", "sport = :8097"])
        assert "127.0.0.1:8097" in listening and "0.0.0.0:8097" not in listening, listening

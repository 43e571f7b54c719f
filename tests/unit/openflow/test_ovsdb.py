"""OVSDB readers: the JSON `ovs-vsctl --format=json list` prints, parsed tolerantly."""

import json

import pytest

from slb_ryu.openflow import ovsdb


def fake_run(monkeypatch, data):
    calls = []

    def run(cmd, timeout):
        calls.append(cmd)
        return json.dumps({"headings": ["name", "bfd_status"], "data": data})

    monkeypatch.setattr(ovsdb, "_run", run)
    return calls


def test_bfd_states_only_for_interfaces_with_bfd(monkeypatch):
    calls = fake_run(
        monkeypatch,
        [
            ["eth1", ["map", [["flap_count", "2"], ["state", "down"]]]],
            ["eth2", ["map", [["state", "up"], ["forwarding", "true"]]]],
            ["eth3", ["map", []]],  # BFD not enabled
            ["eth4", "garbage"],
        ],
    )
    assert ovsdb.bfd_states(["eth1", "eth2", "eth3", "eth4"]) == {
        "eth1": ("down", 2),
        "eth2": ("up", 0),
    }
    assert calls[0][-5:] == ["Interface", "eth1", "eth2", "eth3", "eth4"]
    assert ovsdb.bfd_states([]) == {}


def test_bfd_states_errors_are_ovsdb_errors(monkeypatch):
    monkeypatch.setattr(ovsdb, "_run", lambda cmd, timeout: "not json")
    with pytest.raises(ovsdb.OvsdbError):
        ovsdb.bfd_states(["eth1"])

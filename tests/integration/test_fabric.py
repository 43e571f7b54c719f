"""The test infrastructure itself: chassis topology, RSTP fabric, ryu-manager.

These tests use their own name prefix and ports (``x``: xtor1, xhv1, ...;
OpenFlow 6663, REST 8099) so they never touch a chassis built with the default
names/ports (hv1.., 6653/8080), e.g. a running demo.
"""

import pytest

from lab import testbed

PREFIX = "x"
OF_PORT = 6663
WS_PORT = 8099
TOPO = {"prefix": PREFIX, "hvs": 1, "uplinks": 2, "vms_per_hv": 2, "remotes": 2}

pytestmark = pytest.mark.timeout(120)


def _hv_bridges_secure_netdev(chassis):
    names = chassis.chassis_names(**TOPO)
    for br in names["fabric"] + names["hvs"]:
        assert testbed.ovs_get("Bridge", br, "datapath_type") == "netdev", br
    for br in names["hvs"]:
        assert testbed.ovs_get("Bridge", br, "fail_mode") == "secure", br
        assert "OpenFlow13" in testbed.ovs_get("Bridge", br, "protocols"), br
    for br in names["fabric"]:
        assert testbed.ovs_get("Bridge", br, "fail_mode") == "standalone", br
        assert testbed.ovs_get("Bridge", br, "rstp_enable") == "true", br
        assert testbed.ovs_get("Bridge", br, "controller") == "[]", br
    dpids = {
        br: testbed.ovs_get("Bridge", br, "datapath_id") for br in names["fabric"] + names["hvs"]
    }
    assert len(set(dpids.values())) == len(dpids), dpids
    assert dpids[PREFIX + "hv1"] == chassis.chassis_dpid("hv1", PREFIX)


def test_fabric_without_controller(network_factory):
    chassis = testbed.load_chassis()
    net = network_factory(controller_port=OF_PORT, **TOPO)  # returns once r1 pings r2
    names = chassis.chassis_names(**TOPO)
    r1, r2 = net.get(PREFIX + "r1"), net.get(PREFIX + "r2")
    assert testbed.ping(r1, r2, count=2)
    _hv_bridges_secure_netdev(chassis)

    # RSTP broke the tor/agg square: exactly one fabric port is Alternate/Discarding,
    # every other one forwards; agg1 is the root bridge.
    states = {}
    for br in names["fabric"]:
        states.update(testbed.rstp_ports(br))
    blocked = [
        p
        for p, rs in states.items()
        if rs != ("Designated", "Forwarding") and rs != ("Root", "Forwarding")
    ]
    assert len(blocked) == 1 and states[blocked[0]] == ("Alternate", "Discarding"), states
    assert "This bridge is the root" in testbed.sh(
        ["ovs-appctl", "--timeout=5", "rstp/show", PREFIX + "agg1"], timeout=7
    )

    # hv1 is secure with no controller: nothing crosses it, VMs are isolated.
    v11 = net.get(PREFIX + "v11")
    assert not testbed.ping(v11, r1)
    assert testbed.dump_flows(PREFIX + "hv1") == []

    # Uplinks are hv1-eth1.. with ofport 1..; the ToR port facing each one is the
    # veth peer the helper names, and the ToR learns a MAC sent up that uplink on
    # exactly that port number.
    umap = chassis.uplink_map(**TOPO)
    assert list(umap) == names["hvs"]
    for hv, rows in umap.items():
        assert [r["uplink"] for r in rows] == ["%s-eth%d" % (hv, i) for i in (1, 2)]
        assert [r["tor"] for r in rows] == [PREFIX + "tor1", PREFIX + "tor2"]
        for i, row in enumerate(rows):
            assert testbed.port_no(hv, row["uplink"]) == row["port_no"]
            assert testbed.port_no(row["tor"], row["tor_port"]) == row["tor_port_no"]
            assert testbed.veth_peer(row["uplink"]) == row["tor_port"]
            mac = "02:aa:00:00:00:%02x" % (i + 1)
            testbed.send_raw(row["uplink"], testbed.garp_frame(mac, "10.0.0.%d" % (240 + i)))
            testbed.wait_until(
                lambda row=row, mac=mac: (
                    testbed.fdb(row["tor"]).get(mac) == (row["tor_port_no"], 0)
                ),
                timeout=5,
                desc="%s to learn %s on port %d" % (row["tor"], mac, row["tor_port_no"]),
            )

    # Teardown: net.stop() alone leaves nothing of this topology behind.
    leftovers = network_factory.stop(net)
    assert leftovers == {"bridges": [], "links": [], "pids": []}
    assert not [b for b in testbed.list_bridges() if b.startswith(PREFIX)]
    assert testbed.load_chassis().chassis_leftovers(PREFIX) == leftovers


def test_ryu_manager_controls_hv(network_factory, controller_factory):
    chassis = testbed.load_chassis()
    ctl = controller_factory(apps=["ryu.app.ofctl_rest"], of_port=OF_PORT, ws_port=WS_PORT)
    assert ctl.running and testbed.tcp_listening(OF_PORT) and testbed.tcp_listening(WS_PORT)
    net = network_factory(controller_port=OF_PORT, **TOPO)
    hv = PREFIX + "hv1"
    testbed.wait_until(lambda: testbed.controller_connected(hv), timeout=20, desc="hv1 connected")
    dpid = int(chassis.chassis_dpid("hv1", PREFIX), 16)
    switches = testbed.wait_until(
        lambda: dpid in ctl.get_json("/stats/switches") and ctl.get_json("/stats/switches"),
        timeout=10,
        desc="dpid in /stats/switches",
    )
    assert switches == [dpid]  # only hv bridges have a controller, fabric has none
    desc = ctl.get_json("/stats/portdesc/%d" % dpid)[str(dpid)]
    assert {p["name"] for p in desc} >= {hv + "-eth1", hv + "-eth2"}

    # A crash (SIGKILL): the switch notices, fail_mode=secure keeps it closed.
    ctl.kill9()
    testbed.wait_until(
        lambda: not testbed.controller_connected(hv), timeout=20, desc="hv1 to notice"
    )
    assert testbed.ovs_get("Bridge", hv, "fail_mode") == "secure"
    assert not testbed.ping(net.get(PREFIX + "v11"), net.get(PREFIX + "r1"))

    # A clean restart on the same ports, then SIGTERM.
    ctl2 = controller_factory(apps=["ryu.app.ofctl_rest"], of_port=OF_PORT, ws_port=WS_PORT)
    testbed.wait_until(lambda: testbed.controller_connected(hv), timeout=20, desc="reconnect")
    assert ctl2.stop() is not None and not ctl2.running
    assert "ryu.app.ofctl_rest" in ctl2.log_text()


def test_controller_reports_startup_failure(ovs, controller_factory):
    ctl = controller_factory(
        start=False, apps=["no_such_module_xyz"], of_port=OF_PORT, ws_port=WS_PORT
    )
    with pytest.raises(testbed.TestbedError, match="exited"):
        ctl.start(timeout=20)
    assert not ctl.running

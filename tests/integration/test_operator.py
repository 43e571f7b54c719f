"""The operator interface against a live controller: curl, slb-ctl, /metrics, the token.

Real ryu-manager + slb_ryu.app (with an api_token) and a Mininet chassis with prefix 'x'
(xhv1 with uplinks xhv1-eth1 -> xtor1, xhv1-eth2 -> xtor2, VMs xv11 and xv12, remotes
xr1 and xr2) on OpenFlow port 6663 / REST port 8099. The module shares one network and
controller; tests run in file order.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from lab import testbed as h

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OF_PORT = 6663
WS_PORT = 8099
TOKEN = "op-test-token"
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=2, remotes=2, prefix="x")
UPLINKS = ("xhv1-eth1", "xhv1-eth2")
CONFIG = f"""
[slb]
uplinks = {", ".join(UPLINKS)}
api_token = {TOKEN}
stats_interval = 1
load_half_life = 2
rebalance_interval = 0
"""
BASE = f"http://127.0.0.1:{WS_PORT}"
SLB_CTL = str(h.VENV_BIN / "slb-ctl")


@pytest.fixture(scope="module")
def lab():
    with h.lab(CONFIG, OF_PORT, WS_PORT, **TOPO) as (net, ctl):
        r1 = net.get("xr1")
        for name in ("xv11", "xv12"):
            h.wait_until(
                lambda n=name: h.ping_learned(ctl, net.get(n), r1),
                timeout=10,
                desc=f"{name} -> xr1",
            )
        yield net, ctl


# ---- helpers ------------------------------------------------------------------------------


def curl(*args: str) -> tuple[int, str]:
    """curl -s ... -w '\\n%{http_code}': (status, body)."""
    out = h.sh(["curl", "-s", "-m", "5", "-w", "\n%{http_code}", *args], timeout=10)
    body, _, code = out.rpartition("\n")
    return int(code), body


def slb_ctl(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SLB_TOKEN", "SLB_URL")}
    env["SLB_URL"] = BASE
    if token:
        env["SLB_TOKEN"] = token
    return subprocess.run(
        [SLB_CTL, *args], capture_output=True, text=True, timeout=20, env=env, check=False
    )


def metrics() -> dict[tuple[str, frozenset], float]:
    text = h.sh(["curl", "-s", "-m", "5", f"{BASE}/metrics"], timeout=10)
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(sample: dict, name: str, **labels: str) -> float:
    return sample.get((name, frozenset(labels.items())), 0.0)


def placement(ctl, mac: str) -> dict:
    (row,) = ctl.get_json(f"/slb/v1/placement/{mac}")
    return row


def tor_of(uplink: str) -> tuple[str, int]:
    row = next(r for r in h.load_chassis().uplink_map(**TOPO)["xhv1"] if r["uplink"] == uplink)
    return row["tor"], row["tor_port_no"]


def dp_labels() -> dict[str, str]:
    """Faucet-style labels of xhv1: dp_id as 0x-hex, dp_name."""
    return {"dp_id": hex(int(h.load_chassis().chassis_dpid("hv1", "x"), 16)), "dp_name": "xhv1"}


# ---- tests --------------------------------------------------------------------------------


def test_curl_reads_without_a_token(lab):
    net, ctl = lab
    code, body = curl(f"{BASE}/slb/v1/uplinks")
    assert code == 200
    ups = {u["name"]: u for u in json.loads(body)}
    assert set(ups) == set(UPLINKS)
    assert all(u["live"] for u in ups.values()) and sum(u["active"] for u in ups.values()) == 1
    assert sum(u["macs"] for u in ups.values()) >= 2
    code, body = curl(f"{BASE}/slb/v1/placement?uplink=xhv1-eth1")
    assert code == 200 and all(r["uplink"] == "xhv1-eth1" for r in json.loads(body))
    mac = net.get("xv11").MAC()
    code, body = curl(f"{BASE}/slb/v1/placement/{mac}")
    (row,) = json.loads(body)
    assert code == 200 and row["port"].startswith("xhv1-eth") and row["port"] not in UPLINKS
    assert row["ips"] == [net.get("xv11").IP()]
    code, body = curl(f"{BASE}/slb/v1/placement/02:00:00:00:99:99")
    assert code == 404 and "is not known on any bridge" in json.loads(body)["error"]
    code, body = curl(f"{BASE}/slb/v1/placement?vlan=x")
    assert code == 400 and "vlan" in json.loads(body)["error"]
    code, body = curl(f"{BASE}/slb/v1/openapi.json")
    assert code == 200 and json.loads(body)["openapi"].startswith("3.")
    code, body = curl(f"{BASE}/slb/v1/config")
    assert code == 200 and json.loads(body)["api_token"] == "<redacted>" and TOKEN not in body
    code, body = curl(f"{BASE}/slb/v1/events?limit=5")
    assert code == 200 and 0 < len(json.loads(body)) <= 5


def test_writes_need_the_token(lab):
    net, ctl = lab
    mac = net.get("xv11").MAC()
    before = placement(ctl, mac)
    target = UPLINKS[1] if before["uplink"] == UPLINKS[0] else UPLINKS[0]
    url = f"{BASE}/slb/v1/placement/{mac}/move"
    data = json.dumps({"uplink": target})
    code, body = curl("-X", "POST", "-H", "Content-Type: application/json", "-d", data, url)
    assert code == 401 and "missing bearer token" in json.loads(body)["error"]
    json_type = ("-H", "Content-Type: application/json")
    code, body = curl("-X", "POST", *json_type, "-H", "Authorization: Bearer nope", "-d", data, url)
    assert code == 401 and "wrong bearer token" in json.loads(body)["error"]
    res = slb_ctl("move", mac, target)
    assert res.returncode == 1 and "HTTP 401" in res.stderr and "SLB_TOKEN" in res.stderr
    assert placement(ctl, mac) == before
    # Authenticated, but bad input: a clear 4xx.
    auth = ("-H", f"Authorization: Bearer {TOKEN}", *json_type)
    code, body = curl("-X", "POST", *auth, "-d", '{"uplink": "xhv1-eth9"}', url)
    assert code == 404 and "'xhv1-eth9' is not an uplink" in json.loads(body)["error"]
    code, body = curl("-X", "POST", *auth, "-d", "{oops", url)
    assert code == 400 and "not valid JSON" in json.loads(body)["error"]
    assert placement(ctl, mac) == before


def test_move_and_pin_with_slb_ctl_is_followed_by_the_tor_tables(lab):
    net, ctl = lab
    v11 = net.get("xv11")
    mac, ip = v11.MAC(), v11.IP()
    before = placement(ctl, mac)
    old = before["uplink"]
    target = UPLINKS[1] if old == UPLINKS[0] else UPLINKS[0]
    new_tor, new_tor_port = tor_of(target)
    old_tor, old_tor_port = tor_of(old)
    assert h.ping(v11, net.get("xr1"))
    assert h.fdb(old_tor).get(mac, (None,))[0] == old_tor_port
    m0 = metrics()
    cap = h.capture(
        net.get("xhv1"), target, f"ether src {mac} and (arp or rarp)", 6, direction="out"
    )
    time.sleep(1.5)  # tcpdump attaches
    t0 = time.monotonic()
    res = slb_ctl("move", mac, target, "--pin", token=TOKEN)
    assert res.returncode == 0, res.stderr
    assert f"moved {mac} vlan 0 on xhv1: {old} -> {target} (pinned)" in res.stdout
    assert "1 learning packet(s) sent" in res.stdout
    # The VM sends nothing; the learning packet alone moves it in both ToRs' tables.
    h.wait_until(
        lambda: h.fdb(new_tor).get(mac, (None,))[0] == new_tor_port,
        timeout=5,
        interval=0.05,
        desc=f"{new_tor} to learn {mac} on port {new_tor_port}",
    )
    t_tor = time.monotonic() - t0
    assert h.fdb(old_tor).get(mac, (None,))[0] != old_tor_port
    frames = h.captured(cap)
    assert any("Request who-has" in ln and f"tell {ip}" in ln for ln in frames), frames
    row = placement(ctl, mac)
    assert row["uplink"] == target and row["pinned"] is True
    moves = ctl.get_json("/slb/v1/events?type=move")
    assert moves[-1]["mac"] == mac and moves[-1]["reason"] == "manual"
    assert (moves[-1]["from"], moves[-1]["to"]) == (old, target)
    # Traffic follows, through the new uplink.
    assert h.ping(v11, net.get("xr2"), count=2)
    assert h.fdb(new_tor).get(mac, (None,))[0] == new_tor_port
    # Metrics moved with it.
    m1 = metrics()
    lbl = dp_labels()
    assert metric(m1, "slb_moves_total", **lbl, reason="manual") == (
        metric(m0, "slb_moves_total", **lbl, reason="manual") + 1
    )
    assert metric(m1, "slb_learning_packets_sent_total") >= (
        metric(m0, "slb_learning_packets_sent_total") + 1
    )
    for name, delta in ((old, -1), (target, +1)):
        assert metric(m1, "slb_uplink_macs", **lbl, uplink=name) == (
            metric(m0, "slb_uplink_macs", **lbl, uplink=name) + delta
        )
    print(f"\nREST move {old} -> {target}: {new_tor} re-learned {mac} in {t_tor * 1000:.0f} ms")
    # Unpin with curl (the token in the header), pin again with slb-ctl.
    code, body = curl(
        "-X", "POST", "-H", f"Authorization: Bearer {TOKEN}",
        "-H", "Content-Type: application/json", "-d", "{}",
        f"{BASE}/slb/v1/placement/{mac}/unpin",
    )  # fmt: skip
    assert code == 200 and json.loads(body)["pinned"] is False, body
    assert placement(ctl, mac)["pinned"] is False
    res = slb_ctl("pin", mac, token=TOKEN)
    assert res.returncode == 0 and f"pinned to {target}" in res.stdout


def test_slb_ctl_tables_json_events_rebalance(lab):
    net, ctl = lab
    res = slb_ctl("uplinks")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("---- xhv1 (dpid ")
    assert all(any(ln.startswith(u) for ln in res.stdout.splitlines()) for u in UPLINKS)
    mac = net.get("xv12").MAC()
    res = slb_ctl("placement", "--mac", mac)
    assert res.returncode == 0 and mac in res.stdout and "xhv1" in res.stdout
    res = slb_ctl("--json", "placement", "--mac", mac)
    assert [r["mac"] for r in json.loads(res.stdout)] == [mac]
    res = slb_ctl("events", "--type", "move")
    assert res.returncode == 0 and "(manual)" in res.stdout
    res = slb_ctl("rebalance", token=TOKEN)
    assert res.returncode == 0 and res.stdout.startswith("rebalance"), res.stderr
    # A pinned MAC stays where it was put.
    pinned = [r for r in ctl.get_json("/slb/v1/placement") if r["pinned"]]
    res = slb_ctl("rebalance", "--bridge", "xhv1", token=TOKEN)
    assert res.returncode == 0
    for row in pinned:
        assert placement(ctl, row["mac"])["uplink"] == row["uplink"]
    res = slb_ctl("--url", "http://127.0.0.1:9", "uplinks")
    assert res.returncode == 3 and "cannot reach the slb-ryu controller" in res.stderr


def test_metrics_move_when_traffic_flows(lab):
    net, ctl = lab
    v11, v12 = net.get("xv11"), net.get("xv12")
    r1 = net.get("xr1")
    lbl = dp_labels()
    m0 = metrics()
    assert metric(m0, "slb_bridge_connected", **lbl) == 1
    assert metric(m0, "slb_uplink_up", **lbl, uplink=UPLINKS[0]) == 1
    assert sum(metric(m0, "slb_uplink_active", **lbl, uplink=u) for u in UPLINKS) == 1
    # Bytes: ~400 kB from xv11 through its uplink; the port counters (stats polled every
    # 1 s) and the smoothed load must show it.
    uplink = placement(ctl, v11.MAC())["uplink"]
    tx0 = metric(m0, "slb_uplink_tx_bytes_total", **lbl, uplink=uplink)
    out = v11.cmd(f"ping -n -q -i 0.01 -s 1400 -c 300 -W 1 {r1.IP()}")
    sent, received, _ = h.loss_window_ms(out, 10.0)
    assert sent == 300 and received >= 200, out

    def grown():
        m = metrics()
        return (
            metric(m, "slb_uplink_tx_bytes_total", **lbl, uplink=uplink) >= tx0 + 300 * 1400
            and metric(m, "slb_uplink_load_tx_bytes_per_second", **lbl, uplink=uplink) > 0
        ) and m

    m1 = h.wait_until(grown, timeout=8, interval=0.5, desc="byte counters and load to grow")
    assert metric(m1, "slb_stats_poll_duration_seconds") > 0
    (row,) = ctl.get_json(f"/slb/v1/placement?mac={v11.MAC()}")
    assert row["tx_bps"] > 0 and row["rx_bps"] > 0, row
    up = next(u for u in ctl.get_json("/slb/v1/uplinks") if u["name"] == uplink)
    assert up["tx_bytes"] >= 300 * 1400 and up["tx_bps"] > 0, up
    # A MAC the switch has never seen: packet-in, learn, one more MAC on an uplink.
    new_mac = "02:00:00:00:77:77"
    try:
        v12.cmd(f"ip link set dev xv12-eth0 address {new_mac}")
        assert h.ping(v12, r1, count=2)
        h.wait_until(
            lambda: ctl.get_json(f"/slb/v1/placement?mac={new_mac}"), timeout=5, desc="learned"
        )
    finally:
        v12.cmd(f"ip link set dev xv12-eth0 address {v12.MAC()}")
        for name in ("xr1", "xr2"):
            net.get(name).cmd(f"ip neigh flush dev {name}-eth0")
    m2 = metrics()
    assert metric(m2, "slb_packet_in_total") > metric(m1, "slb_packet_in_total")
    learned = metric(m2, "slb_events_total", type="learn")
    assert learned >= metric(m1, "slb_events_total", type="learn") + 1
    assert metric(m2, "slb_bridge_macs", **lbl) == metric(m1, "slb_bridge_macs", **lbl) + 1
    assert sum(metric(m2, "slb_uplink_macs", **lbl, uplink=u) for u in UPLINKS) == (
        sum(metric(m1, "slb_uplink_macs", **lbl, uplink=u) for u in UPLINKS) + 1
    )
    assert h.ping(v12, r1, count=2)


def test_refuses_to_start_on_all_addresses_without_a_token(ovs):
    ctl = h.Controller(
        config=f"[slb]\nuplinks = {', '.join(UPLINKS)}\n",
        of_port=6664,
        ws_port=8098,
        ws_host="0.0.0.0",
    )
    with pytest.raises(h.TestbedError, match="exited"):
        ctl.start(timeout=20)
    log = ctl.log_text()
    assert "non-loopback address '0.0.0.0'" in log and "api_token" in log, log
    assert not ctl.running and not h.tcp_listening(8098)


def test_drain_for_maintenance_moves_every_mac_and_the_tors_follow(lab):
    """`slb-ctl drain` (OVS: bond/disable-member): every MAC of the uplink moves off with
    learning packets, the ToRs re-learn at once, the drained uplink leaves the datapath's
    fast-failover groups and the broadcast role, and a flap does not bring it back."""
    net, ctl = lab
    r1 = net.get("xr1")
    vms = [net.get("xv11"), net.get("xv12")]
    drained, other = UPLINKS
    for vm in vms:  # put both VMs on the uplink to drain
        res = slb_ctl("move", vm.MAC(), drained, token=TOKEN)
        assert res.returncode == 0, res.stderr
    other_tor, other_port = tor_of(other)
    on_it = len(ctl.get_json(f"/slb/v1/placement?uplink={drained}"))  # the VMs and LOCAL
    assert on_it >= 2
    res = slb_ctl("drain", drained, token=TOKEN)
    assert res.returncode == 0, res.stderr
    assert f"{drained} on xhv1: drained, {on_it} MAC(s) moved" in res.stdout
    assert res.stdout.count("(drain)") == on_it
    for vm in vms:
        mac = vm.MAC()
        h.wait_until(
            lambda m=mac: h.fdb(other_tor).get(m, (None,))[0] == other_port,
            timeout=5,
            interval=0.05,
            desc=f"{other_tor} to learn {vm.name} on port {other_port}",
        )
        assert placement(ctl, vm.MAC())["uplink"] == other
        assert h.ping(vm, r1, count=2)
    ups = {u["name"]: u for u in ctl.get_json("/slb/v1/uplinks")}
    assert ups[drained]["drained"] and not ups[drained]["usable"] and not ups[drained]["active"]
    assert ups[other]["active"] and ups[drained]["macs"] == 0
    port_no = ups[drained]["port_no"]
    groups = " ".join(h.dump_groups("xhv1"))
    assert f"watch_port:{port_no}," not in groups, groups  # out of fast failover
    out = slb_ctl("uplinks").stdout
    assert "drained" in next(ln for ln in out.splitlines() if ln.startswith(drained))
    assert metric(metrics(), "slb_uplink_drained", **dp_labels(), uplink=drained) == 1
    # A flap of the drained link does not return it to service.
    hv, tor = net.get("xhv1"), net.get(tor_of(drained)[0])
    net.configLinkStatus(hv.name, tor.name, "down")
    net.configLinkStatus(hv.name, tor.name, "up")
    time.sleep(0.5)
    assert {u["name"]: u for u in ctl.get_json("/slb/v1/uplinks")}[drained]["drained"]
    res = slb_ctl("undrain", drained, token=TOKEN)
    assert res.returncode == 0 and "in service" in res.stdout, res.stderr
    ups = {u["name"]: u for u in ctl.get_json("/slb/v1/uplinks")}
    assert ups[drained]["usable"] and not ups[drained]["drained"]
    assert f"watch_port:{port_no}," in " ".join(h.dump_groups("xhv1"))
    for vm in vms:
        assert h.ping(vm, r1, count=2)

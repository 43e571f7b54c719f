"""The demo: a stacked virtual chassis in Mininet, one hypervisor bridge, four VMs.

Starts OVS and the controller, shows the VMs pinned to both uplinks (REST) and what
the top-of-rack switches learned, kills one uplink's far end while a VM pings every
10 ms, shows the failover, brings the uplink back, drives TCP traffic so the rebalancer
spreads the VMs again, and tears everything down.

Run as root from the repo's venv: `make demo` (or `.venv/bin/python -m lab.demo`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from lab import testbed as tb
from slb_ryu import cli

if TYPE_CHECKING:
    from mininet.net import Mininet

CONFIG = """
[slb]
uplinks = hv1-eth1, hv1-eth2
stats_interval = 1
load_half_life = 2
rebalance_interval = 5
min_dwell = 5
"""
UPLINK_MBITS = 10
VMS = ["v11", "v12", "v13", "v14"]


def show(ctl: tb.Controller, title: str) -> None:
    """The placement and uplinks as `slb-ctl placement` / `slb-ctl uplinks` print them."""
    print(f"\n== {title}")
    print(cli.format_placement(ctl.get_json("/slb/v1/placement")))
    print()
    print(cli.format_uplinks(ctl.get_json("/slb/v1/uplinks")))


def show_tor_tables(net: Mininet, macs: dict[str, str], uplink_map: list[dict]) -> None:
    facing = {(r["tor"], r["tor_port_no"]): r["uplink"] for r in uplink_map}
    print("\n== what the top-of-rack switches learned (ovs-appctl fdb/show)")
    for tor in ("tor1", "tor2"):
        fdb = tb.fdb(tor)
        for vm, mac in macs.items():
            port, _vlan = fdb.get(mac, (None, None))
            where = facing.get((tor, port), "the fabric side" if port else "-")
            print(f"  {tor}: {vm} {mac} on port {port} ({where})")


def failover(net: Mininet, ctl: tb.Controller, uplink_map: list[dict]) -> None:
    v11 = net.get("v11")
    mac = v11.MAC()
    dead = next(r["uplink"] for r in ctl.get_json("/slb/v1/placement") if r["mac"] == mac)
    row = next(r for r in uplink_map if r["uplink"] == dead)
    print(f"\n== failover: v11 pings r1 every 10 ms; {row['tor_port']} (far end of {dead}) dies")
    pinger = v11.popen(["ping", "-n", "-i", "0.01", "-c", "300", "-W", "1", net.get("r1").IP()])
    time.sleep(1.0)
    tb.sh(["ip", "link", "set", row["tor_port"], "down"])
    out = pinger.communicate(timeout=30)[0]
    out = out.decode() if isinstance(out, bytes) else out
    sent, received, window = tb.loss_window_ms(out, 10.0)
    print(f"  {received}/{sent} replies, loss window {window:.0f} ms")
    show(ctl, f"placement after {dead} died")
    events = [e for e in ctl.get_json("/slb/v1/events") if e["type"] in ("move", "uplink-down")]
    for e in events[-6:]:
        print(
            f"  event: {e['type']} {e.get('mac', '')} {e.get('from', '')} -> {e.get('to', '')}"
            f" {e.get('uplink', '')} ({e.get('reason', '')})"
        )
    tb.sh(["ip", "link", "set", row["tor_port"], "up"])
    tb.wait_until(
        lambda: all(u["live"] for u in ctl.get_json("/slb/v1/uplinks")), timeout=10, desc="uplink"
    )
    ok = all(tb.ping(net.get(vm), net.get("r2")) for vm in VMS)
    print(f"\n== {dead} is back; every VM reaches r2: {ok}")


def rebalance(net: Mininet, ctl: tb.Controller) -> None:
    """Every VM sits on the surviving uplink now; traffic makes the rebalancer spread them."""
    print("\n== rebalance: all VMs are on one uplink; each sends TCP (iperf3) to a remote")
    print(f"   (uplinks limited to {UPLINK_MBITS} Mbit/s; rebalance every 5 s)")
    remotes = [net.get("r1"), net.get("r2")]
    servers = [remotes[i % 2].popen(["iperf3", "-s", "-1", "-p", str(5201 + i)]) for i in range(4)]
    time.sleep(1.0)
    clients = [
        net.get(vm).popen(
            ["iperf3", "-c", remotes[i % 2].IP(), "-p", str(5201 + i), "-t", "16", "-J"]
        )
        for i, vm in enumerate(VMS)
    ]
    t0 = time.monotonic()
    try:
        tb.wait_until(
            lambda: len({r["uplink"] for r in ctl.get_json("/slb/v1/placement")}) == 2,
            timeout=15,
            interval=0.5,
            desc="both uplinks in use",
        )
        print(f"   both uplinks carry VMs {time.monotonic() - t0:.1f} s after traffic started")
        moves = [e for e in ctl.get_json("/slb/v1/events") if e.get("reason") == "rebalance"]
        for e in moves:
            print(f"   event: move {e['mac']} {e['from']} -> {e['to']} (rebalance)")
        show(ctl, "placement during the transfer (smoothed load, shown in bits/s)")
        results = [json.loads(c.communicate(timeout=40)[0]) for c in clients]
        total = sum(r["end"]["sum_received"]["bits_per_second"] for r in results)
        print(
            f"\n   aggregate TCP throughput {total / 1e6:.1f} Mbit/s "
            f"over two {UPLINK_MBITS} Mbit/s uplinks"
        )
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--of-port", type=int, default=6653)
    parser.add_argument("--ws-port", type=int, default=8080)
    args = parser.parse_args(argv)
    tb.ensure_ovs()
    ctl = tb.Controller(config=CONFIG, of_port=args.of_port, ws_port=args.ws_port).start()
    net = None
    try:
        topo = dict(hvs=1, uplinks=2, vms_per_hv=4, remotes=2, uplink_bw=UPLINK_MBITS)
        print("building the virtual chassis (tor1/tor2 stacked, agg1/agg2 stacked, RSTP)...")
        net = tb.start_network(controller_port=args.of_port, **topo)
        uplink_map = tb.load_chassis().uplink_map(**topo)["hv1"]
        r1 = net.get("r1")
        for vm in VMS:
            tb.wait_until(lambda v=vm: tb.ping(net.get(v), r1), timeout=15, desc=f"{vm} -> r1")
        show(ctl, "placement: each VM MAC pinned to one uplink")
        show_tor_tables(net, {vm: net.get(vm).MAC() for vm in VMS}, uplink_map)
        failover(net, ctl, uplink_map)
        show_tor_tables(net, {vm: net.get(vm).MAC() for vm in VMS}, uplink_map)
        rebalance(net, ctl)
        show_tor_tables(net, {vm: net.get(vm).MAC() for vm in VMS}, uplink_map)
        return 0
    finally:
        if net is not None:
            tb.stop_network(net)
        ctl.stop()
        print(f"\ntorn down; controller log: {ctl.log_path}")


if __name__ == "__main__":
    sys.exit(main())

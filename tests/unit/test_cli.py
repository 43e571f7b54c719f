"""slb-ctl against the REST API of a fake app served over real HTTP (wsgiref, a thread)."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from api_fake import MAC_A, MAC_B, UNKNOWN_MAC, FakeApp, wsgi_app

from slb_ryu import cli


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    servers = []

    def start(app=None):
        app = app or FakeApp()
        httpd = make_server("127.0.0.1", 0, wsgi_app(app), handler_class=QuietHandler)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        servers.append(httpd)
        return app, f"http://127.0.0.1:{httpd.server_port}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def ctl(url, *argv, token=None):
    out = io.StringIO()
    args = ["--url", url] + (["--token", token] if token else []) + list(argv)
    code = cli.main(args, out=out)
    return code, out.getvalue()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uplinks_table_like_bond_show(server):
    app, url = server()
    app.bridges[1].placement.ports[1].tx_bytes = 3 * 1024 * 1024
    code, out = ctl(url, "uplinks")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "---- hv1 (dpid 0000000000000001) ----"
    assert lines[1].split() == [
        "UPLINK",
        "PORT",
        "STATE",
        "PATH",
        "OUT",
        "USABLE",
        "ACTIVE",
        "SPEED",
        "MACS",
        "TX",
        "LOAD",
        "RX",
        "LOAD",
        "TX",
        "BYTES",
        "RX",
        "BYTES",
        "LAST",
        "REPLY",
    ]
    eth1 = next(ln for ln in lines if ln.startswith("hv1-eth1"))
    assert "up" in eth1 and "active" in eth1 and "10 Gb/s" in eth1 and "3.0 MiB" in eth1
    assert "---- hv2 (dpid 0000000000000002) ----" in lines
    code, out = ctl(url, "uplinks", "--bridge", "hv2")
    assert "hv1" not in out and "hv2-eth2" in out


def test_uplinks_table_shows_a_held_uplink_as_up_but_not_usable(server):
    app, url = server()
    app.bridges[1].placement.ports[2].held = True  # flapping: link up, out of service
    code, out = ctl(url, "uplinks", "--bridge", "hv1")
    assert code == 0
    rows = {ln.split()[0]: ln.split()[:6] for ln in out.splitlines()[2:] if ln.strip()}
    assert rows["hv1-eth2"] == ["hv1-eth2", "2", "up", "off", "held", "NO"]
    assert rows["hv1-eth1"] == ["hv1-eth1", "1", "up", "off", "yes", "active"]


def test_uplinks_table_shows_the_path_and_the_age_of_the_last_probe_reply(server):
    app, url = server()
    port = app.bridges[1].placement.ports[1]
    port.path, port.last_reply = "up", time.time() - 3
    code, out = ctl(url, "uplinks", "--bridge", "hv1")
    assert code == 0
    eth1 = next(ln.split() for ln in out.splitlines() if ln.startswith("hv1-eth1"))
    assert eth1[3] == "up" and eth1[-2:] in (["3s", "ago"], ["4s", "ago"])
    eth2 = next(ln.split() for ln in out.splitlines() if ln.startswith("hv1-eth2"))
    assert eth2[3] == "off" and eth2[-1] != "ago"  # no reply yet: the cell is empty


def test_version(capsys):
    from slb_ryu import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"slb-ctl {__version__}"


def test_placement_table_and_filters(server):
    app, url = server()
    code, out = ctl(url, "placement")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["BRIDGE", "MAC", "VLAN", "PORT", "UPLINK"]
    assert len(lines) == 1 + 5
    row_a = next(ln for ln in lines if MAC_A in ln)
    assert "10.0.0.11" in row_a and row_a.startswith("hv1")
    code, out = ctl(url, "placement", "--mac", MAC_B, "--vlan", "20")
    assert len(out.splitlines()) == 2 and " 20 " in out.splitlines()[1]
    code, out = ctl(url, "placement", "--uplink", "hv2-eth1", "--bridge", "hv2")
    assert code == 0
    code, out = ctl(url, "--json", "placement", "--bridge", "hv1")
    rows = json.loads(out)
    assert {r["bridge"] for r in rows} == {"hv1"} and len(rows) == 4


def test_move_pin_unpin(server):
    app, url = server()
    core = app.bridges[1]
    target = "hv1-eth2" if core.entry(MAC_A, 0).uplink == 1 else "hv1-eth1"
    code, out = ctl(url, "move", MAC_A, target, "--pin")
    assert code == 0, out
    assert f"moved {MAC_A} vlan 0 on hv1:" in out and f"-> {target} (pinned)" in out
    assert "1 learning packet(s) sent" in out
    assert core.entry(MAC_A, 0).pinned
    code, out = ctl(url, "unpin", MAC_A)
    assert code == 0 and f"unpinned, on {target}" in out and not core.entry(MAC_A, 0).pinned
    code, out = ctl(url, "pin", MAC_A)
    assert code == 0 and f"pinned to {target}" in out
    code, out = ctl(url, "--json", "move", MAC_B, "hv1-eth1", "--vlan", "10", "--bridge", "hv1")
    assert code == 0 and json.loads(out)["placement"]["vlan"] == 10


def test_refusals_show_the_message_and_exit_1(server, capsys):
    app, url = server()
    code, _ = ctl(url, "move", UNKNOWN_MAC, "hv1-eth1")
    err = capsys.readouterr().err
    assert code == 1
    assert "HTTP 404" in err and f"MAC {UNKNOWN_MAC} is not known on any bridge" in err
    code, _ = ctl(url, "move", MAC_B, "hv1-eth1")
    assert code == 1 and "several bridges/VLANs" in capsys.readouterr().err
    code, _ = ctl(url, "placement", "--bridge", "nope")
    assert code == 1 and "no bridge 'nope'" in capsys.readouterr().err


def test_token(server, capsys, monkeypatch):
    app, url = server(FakeApp(api_token="s3cret"))
    code, _ = ctl(url, "pin", MAC_A)
    err = capsys.readouterr().err
    assert code == 1 and "HTTP 401" in err and "--token or $SLB_TOKEN" in err
    code, out = ctl(url, "pin", MAC_A, token="s3cret")
    assert code == 0 and "pinned" in out
    monkeypatch.setenv("SLB_TOKEN", "s3cret")
    monkeypatch.setenv("SLB_URL", url)
    out = io.StringIO()
    assert cli.main(["unpin", MAC_A], out=out) == 0 and "unpinned" in out.getvalue()


def test_rebalance(server):
    app, url = server()
    code, out = ctl(url, "rebalance", "--bridge", "hv2")
    assert code == 0 and out.strip() == "rebalance on 0000000000000002: no moves"
    ctl(url, "move", MAC_A, "hv1-eth2")
    ctl(url, "move", MAC_A, "hv1-eth1")
    code, out = ctl(url, "rebalance")
    assert code == 0 and "rebalance: 1 move(s)" in out and "(manual)" in out
    assert app.rebalance_calls == [2, None]


def test_events_and_follow(server):
    app, url = server()
    code, out = ctl(url, "events", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 2 and "learn" in out
    code, out = ctl(url, "--json", "events", "--since", "4")
    assert [e["seq"] for e in json.loads(out)] == [5, 6]
    # --follow: prints what is there, then what arrives (bounded by the hidden --max-polls).
    timer = threading.Timer(
        0.3, lambda: app.event_log.add(0.0, "uplink-down", dpid=1, uplink="hv1-eth1")
    )
    timer.start()
    code, out = ctl(
        url, "events", "--since", "5", "--follow", "--interval", "0.2", "--max-polls", "4"
    )
    timer.join()
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2, out
    assert "uplink-down" in lines[1] and "uplink=hv1-eth1" in lines[1]
    code, out = ctl(
        url,
        "--json",
        "events",
        "--since",
        "6",
        "--follow",
        "--interval",
        "0.05",
        "--max-polls",
        "1",
    )
    assert [json.loads(ln)["type"] for ln in out.splitlines()] == ["uplink-down"]


def test_bridges_health_config(server):
    app, url = server(FakeApp(api_token="t"))
    code, out = ctl(url, "bridges")
    assert code == 0 and "hv1" in out and "hv1-eth1,hv1-eth2" in out
    code, out = ctl(url, "health")
    assert code == 0 and out.startswith("status: ok")
    code, out = ctl(url, "config")
    assert code == 0 and 'api_token = "<redacted>"' in out


def test_unreachable_controller_exits_3(capsys):
    code, _ = ctl(f"http://127.0.0.1:{free_port()}", "uplinks")
    err = capsys.readouterr().err
    assert code == 3 and "cannot reach the slb-ryu controller" in err and "SLB_URL" in err


def test_not_an_slb_controller_exits_3(capsys):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<html>hello</html>"]

    httpd = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        code, _ = ctl(f"http://127.0.0.1:{httpd.server_port}", "uplinks")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 3 and "did not answer with JSON" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert cli.main([]) == 2
    assert cli.main(["move", MAC_A]) == 2
    assert cli.main(["placement", "--vlan", "x"]) == 2
    assert cli.main(["--help"]) == 0
    assert "slb-ctl" in capsys.readouterr().out


def test_formatters():
    assert cli.human_rate(125_000) == "1.0 Mb/s"
    assert cli.human_rate(0) == "0 b/s"
    assert cli.human_speed(10_000_000_000) == "10 Gb/s" and cli.human_speed(0) == "?"
    assert cli.human_bytes(512) == "512 B" and cli.human_bytes(1536) == "1.5 KiB"
    assert cli.human_age(100, now=190) == "90s" and cli.human_age(0, now=7200) == "2h"


def test_drain_and_undrain(server, capsys):
    app, url = server()
    code, out = ctl(url, "drain", "hv1-eth1", "--bridge", "hv1")
    assert code == 0, out
    assert out.startswith("hv1-eth1 on hv1: drained,") and "drain" in out
    code, out = ctl(url, "uplinks", "--bridge", "hv1")
    eth1 = next(ln for ln in out.splitlines() if ln.startswith("hv1-eth1"))
    assert "drained" in eth1 and "NO" in eth1
    assert "next rebalance: in 8 s" in out
    code, out = ctl(url, "drain", "hv1-eth2", "--bridge", "hv1")
    assert code == 1 and "no usable uplink" in capsys.readouterr().err
    code, out = ctl(url, "undrain", "hv1-eth1", "--bridge", "hv1")
    assert code == 0 and "in service" in out and "next rebalance" in out

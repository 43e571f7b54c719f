"""Safe to run (issue 10): rogue OpenFlow clients, configuration that does not match the
bridge, and REST abuse, on a real network (prefix ``sc``, OpenFlow 6691-6695, REST
8101-8105). Figures are printed on lines starting with ``FIGURE:`` (run with ``-s``).
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from lab import testbed as h

pytestmark = pytest.mark.integration

PREFIX = "sc"
CHASSIS = h.load_chassis()
HV = PREFIX + "hv1"
UPLINKS = (f"{HV}-eth1", f"{HV}-eth2")
DPID = int(CHASSIS.chassis_dpid("hv1", PREFIX), 16)
PROBE_MAC = "02:5c:00:00:00:01"  # source of the broadcast we count in the loop test


def figure(case: str, text: str) -> None:
    print(f"\nFIGURE: {case}: {text}", flush=True)


def config(uplinks: str, **options: object) -> str:
    lines = ["[slb]", f"uplinks = {uplinks}", "rebalance_interval = 0"]
    return "\n".join(lines + [f"{k} = {v}" for k, v in options.items()]) + "\n"


def topo() -> dict:
    return dict(prefix=PREFIX, hvs=1, uplinks=2, vms_per_hv=2, remotes=2)


def learn_vms(net) -> None:
    r1 = net.get(PREFIX + "r1")
    for vm in (PREFIX + "v11", PREFIX + "v12"):
        h.wait_until(lambda v=vm: h.ping(net.get(v), r1, count=2), timeout=15, desc=f"{vm} -> r1")


def rows(ctl: h.Controller) -> dict:
    """Placement without the load figures (they move with traffic)."""
    keep = ("mac", "vlan", "port", "uplink", "pinned", "since", "ips")
    return {r["mac"]: {k: r[k] for k in keep} for r in ctl.get_json("/slb/v1/placement")}


def _dump() -> list[str]:
    out = h.sh(["ovs-ofctl", "-O", "OpenFlow13", "--timeout=5", "dump-flows", HV], timeout=8)
    return [ln for ln in out.splitlines() if "cookie=" in ln]


def events(ctl: h.Controller, kind: str) -> list[dict]:
    return [e for e in ctl.get_json("/slb/v1/events") if e["type"] == kind]


# ---------------------------------------------------------------------------
# a raw OpenFlow 1.3 client (what a rogue process on the management network can do)

OFP_HELLO, OFP_ECHO_REQ, OFP_ECHO_REP, OFP_FEATURES_REQ, OFP_FEATURES_REP = 0, 2, 3, 5, 6
OFP_PACKET_IN, OFP_PORT_STATUS, OFP_MP_REQ, OFP_MP_REP = 10, 12, 18, 19
OFPMP_PORT_DESC, OFPMP_FLOW = 13, 1


def _msg(kind: int, xid: int, body: bytes = b"") -> bytes:
    return struct.pack("!BBHI", 4, kind, 8 + len(body), xid) + body


def _port(no: int, name: str, link_down: bool = False) -> bytes:
    mac = bytes([2, 0x5C, 0, 0, 0, no & 0xFF])
    return struct.pack(
        "!I4x6s2x16sIIIIIIII", no, mac, name.encode(), 0, int(link_down), 0, 0, 0, 0, 10**7, 0
    )


def _packet_in(in_port: int, frame: bytes, cookie: int) -> bytes:
    oxm = struct.pack("!II", 0x80000004, in_port)  # OXM in_port
    match = struct.pack("!HH", 1, 4 + len(oxm)) + oxm
    match += b"\x00" * (-len(match) % 8)
    body = struct.pack("!IHBBQ", 0xFFFFFFFF, len(frame), 0, 1, cookie) + match + b"\x00\x00"
    return body + frame


class RogueClient(threading.Thread):
    """Connects to the controller, says it is datapath `dpid` with `ports`, then
    (mode 'stall') goes silent after one PORT_DESC reply, or (mode 'lie') also sends a
    fake 'uplink down' port status and a fake packet-in, or (mode 'mute') never answers
    the PORT_DESC request, or (mode 'full') answers our whole handshake, lies, then
    goes silent. `closed_after` is the time
    from connect to the controller closing the connection (None while open)."""

    def __init__(self, port: int, dpid: int, ports: list[tuple[int, str]], mode: str) -> None:
        super().__init__(daemon=True)
        self.addr = ("127.0.0.1", port)
        self.dpid, self.ports, self.mode = dpid, ports, mode
        self.closed_after: float | None = None
        self.port_desc_sent = self.lied = False
        self.stop = threading.Event()

    def run(self) -> None:
        sock = socket.create_connection(self.addr, timeout=5)
        t0 = time.monotonic()
        sock.settimeout(0.5)
        sock.sendall(_msg(OFP_HELLO, 1))
        buf = b""
        while not self.stop.is_set() and time.monotonic() - t0 < 40:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed_after = time.monotonic() - t0
                break
            buf += data
            try:
                while len(buf) >= 8:
                    _, kind, length, xid = struct.unpack("!BBHI", buf[:8])
                    if len(buf) < length:
                        break
                    body, buf = buf[8:length], buf[length:]
                    self._answer(sock, kind, xid, body)
            except OSError:  # closed by the controller while we answered (broken pipe)
                self.closed_after = time.monotonic() - t0
                break
        sock.close()

    def _answer(self, sock: socket.socket, kind: int, xid: int, body: bytes) -> None:
        if kind == OFP_FEATURES_REQ:
            sock.sendall(
                _msg(OFP_FEATURES_REP, xid, struct.pack("!QIBB2xII", self.dpid, 0, 4, 0, 0, 0))
            )
        elif kind == OFP_MP_REQ and self.mode == "full":  # answer our whole handshake
            mp = struct.unpack("!H", body[:2])[0]
            ports = b"".join(_port(no, name) for no, name in self.ports)
            reply = struct.pack("!HH4x", mp, 0) + (ports if mp == OFPMP_PORT_DESC else b"")
            sock.sendall(_msg(OFP_MP_REP, xid, reply))
            if mp == OFPMP_FLOW:  # the last step: we are "synced", now lie
                time.sleep(0.5)
                self._lie(sock)
        elif kind == OFP_MP_REQ and struct.unpack("!H", body[:2])[0] == OFPMP_PORT_DESC:
            if self.port_desc_sent or self.mode == "mute":
                return  # silence from now on
            self.port_desc_sent = True
            ports = b"".join(_port(no, name) for no, name in self.ports)
            sock.sendall(_msg(OFP_MP_REP, xid, struct.pack("!HH4x", OFPMP_PORT_DESC, 0) + ports))
            if self.mode == "lie":
                self._lie(sock)
        # ECHO requests and everything else: no answer (a stalled client)

    def _lie(self, sock: socket.socket) -> None:
        """A fake 'first uplink down' and a fake packet-in of a new MAC on port 3."""
        no, name = self.ports[0]
        down = struct.pack("!B7x", 2) + _port(no, name, link_down=True)
        frame = bytes.fromhex("ffffffffffff02666666666608060001")
        cookie = (0x51B0 << 48) | (0x02 << 40)  # our table-1 miss (learning)
        sock.sendall(_msg(OFP_PORT_STATUS, 0, down))
        sock.sendall(_msg(OFP_PACKET_IN, 0, _packet_in(3, frame + b"\0" * 40, cookie)))
        self.lied = True


# ---------------------------------------------------------------------------
# 1. control channel


def test_rogue_clients_claiming_the_dpid_take_nothing(network_factory, controller_factory):
    """A second OVS bridge with the same datapath-id and raw clients that stall or lie:
    the real bridge keeps its placement, its flows and its failover."""
    of_port, ws_port = 6691, 8101
    ctl = controller_factory(config=config(", ".join(UPLINKS)), of_port=of_port, ws_port=ws_port)
    listening = h.sh(["ss", "-ltnH", f"sport = :{of_port}"])
    assert f"127.0.0.1:{of_port} " in listening and f"0.0.0.0:{of_port}" not in listening
    net = network_factory(controller_port=of_port, **topo())
    h.wait_synced(ctl, 1, interval=0.1)
    learn_vms(net)
    before_rows, before_flows = rows(ctl), h.normalise_flows(_dump())
    assert len(before_rows) >= 2, before_rows
    ports = [(1, UPLINKS[0]), (2, UPLINKS[1]), (3, f"{HV}-eth3"), (4, f"{HV}-eth4")]
    ports.append((0xFFFFFFFE, HV))

    # raw clients with the real dpid (stall, lie) and one with an unknown dpid (stall)
    rogues = [
        RogueClient(of_port, DPID, ports, "stall"),
        RogueClient(of_port, DPID, ports, "lie"),
        RogueClient(of_port, 0x5C00DEAD, ports, "stall"),
        RogueClient(of_port, DPID, ports, "mute"),  # HELLO + FEATURES, then silence
    ]
    for rogue in rogues:
        rogue.start()
    # a second OVS bridge claiming the same datapath id
    imp = PREFIX + "imp"
    h.sh(["ovs-vsctl", "--if-exists", "del-br", imp])
    h.sh(
        ["ovs-vsctl", "add-br", imp, "--", "set", "bridge", imp, "datapath_type=netdev",
         "fail_mode=secure", "protocols=OpenFlow13", f"other-config:datapath-id={DPID:016x}",
         "--", "set-controller", imp, f"tcp:127.0.0.1:{of_port}"]
    )  # fmt: skip
    try:
        lost, t0 = [], time.monotonic()
        while time.monotonic() - t0 < 8:  # the real bridge stays connected and synced
            b = ctl.get_json("/slb/v1/health")["bridges"].get(f"{DPID:016x}", {})
            if not (b.get("connected") and b.get("synced")):
                lost.append(round(time.monotonic() - t0, 1))
            time.sleep(0.2)
        health = ctl.get_json("/slb/v1/health")
        after_rows, after_flows = rows(ctl), h.normalise_flows(_dump())
        impostors = events(ctl, "switch-impostor")
    finally:
        h.sh(["ovs-vsctl", "--if-exists", "del-br", imp])
    for rogue in rogues:
        rogue.join(timeout=25)
    closed = [r.closed_after and round(r.closed_after, 1) for r in rogues]
    figure(
        "rogue dpid",
        f"real bridge unsynced samples: {len(lost)}, placement rows changed: "
        f"{sum(1 for m in before_rows if before_rows[m] != after_rows.get(m))}, "
        f"new rows: {len(set(after_rows) - set(before_rows))}, flows changed: "
        f"{len(set(before_flows) ^ set(after_flows))}, impostors refused: {len(impostors)}, "
        f"raw clients closed after (s): {closed}",
    )
    assert not lost, f"real bridge lost its connection/sync at {lost}"
    assert after_rows == before_rows
    assert after_flows == before_flows
    assert not events(ctl, "uplink-down")
    assert len(impostors) >= 3, impostors  # two raw clients + the OVS bridge (at least once)
    assert health["status"] == "degraded"
    assert any("claimed the datapath id" in p for p in health["problems"]), health
    assert "refused OpenFlow connection" in ctl.log_text()
    # clients with the real dpid are refused at once; the unknown one by the handshake timeout
    assert all(r.closed_after is not None for r in rogues), [r.closed_after for r in rogues]
    assert rogues[0].closed_after < 8 and rogues[1].closed_after < 8
    assert 9 <= rogues[2].closed_after < 25 and 9 <= rogues[3].closed_after < 25
    assert len(events(ctl, "handshake-timeout")) >= 2

    # The real bridge away, a rogue takes its dpid, completes the handshake, lies and goes
    # silent; the real bridge comes back: the rogue is closed (no ECHO answer) and what
    # it taught us is not written into the real bridge.
    h.sh(["ovs-vsctl", "set-controller", HV, "tcp:127.0.0.1:9"])  # away, flows kept
    h.wait_until(lambda: not _health_synced(ctl), timeout=10, desc="real bridge away")
    full = RogueClient(of_port, DPID, ports, "full")
    full.start()
    h.wait_until(lambda: full.lied, timeout=10, desc="rogue synced and lying")
    time.sleep(1.0)
    poisoned = rows(ctl)
    h.sh(["ovs-vsctl", "set-controller", HV, f"tcp:127.0.0.1:{of_port}"])
    h.wait_until(lambda: full.closed_after is not None, timeout=15, desc="rogue closed")
    h.wait_until(lambda: _health_synced(ctl), timeout=15, desc="real bridge synced")
    back_rows, back_flows = rows(ctl), h.normalise_flows(_dump())
    # adopted from the bridge's flows: same ports, uplinks and pins; snooped IPs and the
    # exact 'since' are not in the flows (they come back with the next ARP)
    keep = ("vlan", "port", "uplink", "pinned")
    before_rows = {m: {k: r[k] for k in keep} for m, r in before_rows.items()}
    back_rows = {m: {k: r[k] for k in keep} for m, r in back_rows.items()}
    figure(
        "rogue first, real bridge back",
        f"rows while the rogue held the dpid: {len(poisoned)} (fake MAC: "
        f"{'02:66:66:66:66:66' in poisoned}); after the real bridge came back: rows changed "
        f"{sum(1 for m in before_rows if before_rows[m] != back_rows.get(m))}, flows changed "
        f"{len(set(before_flows) ^ set(back_flows))}, rogue closed after {full.closed_after:.1f} s",
    )
    assert back_rows == before_rows
    assert back_flows == before_flows

    # failover still works: uplink 1's MACs move to uplink 2
    on_first = [m for m, r in after_rows.items() if r["uplink"] == UPLINKS[0]]
    net.configLinkStatus(HV, PREFIX + "tor1", "down")
    h.wait_until(
        lambda: all(rows(ctl)[m]["uplink"] == UPLINKS[1] for m in on_first),
        timeout=10,
        desc="MACs of the downed uplink re-pinned",
    )
    assert h.ping(net.get(PREFIX + "v11"), net.get(PREFIX + "r1"), count=2)


# ---------------------------------------------------------------------------
# 2. configuration that does not match the bridge


def _probe_loop(net) -> tuple[int, float]:
    """Send ONE broadcast from r1 into the fabric; count its copies arriving on the
    bridge's uplinks over 5 s. Without a loop it arrives once per uplink."""
    hv = net.get(HV)
    caps = [h.capture(hv, i, f"ether src {PROBE_MAC}", 6, direction="in") for i in UPLINKS]
    time.sleep(1.0)
    r1 = net.get(PREFIX + "r1")
    h.send_frames_in(r1, f"{PREFIX}r1-eth0", [h.garp_frame(PROBE_MAC, "10.0.0.250")])
    seen = sum(len(h.captured(c)) for c in caps)
    return seen, max(0, seen - len(UPLINKS)) / 5.0


def _health_synced(ctl: h.Controller) -> bool:
    b = ctl.get_json("/slb/v1/health")["bridges"].get(f"{DPID:016x}", {})
    return bool(b.get("connected") and b.get("synced"))


def _handled(ctl: h.Controller) -> bool:
    """The controller has either refused the bridge or synced it."""
    health = ctl.get_json("/slb/v1/health")
    synced = health["bridges"].get(f"{DPID:016x}", {}).get("synced")
    return bool(synced or any("is not managed" in p for p in health["problems"]))


def _unmanaged(ctl: h.Controller) -> list[str]:
    return [p for p in ctl.get_json("/slb/v1/health")["problems"] if "is not managed" in p]


@pytest.fixture
def mismatch_net(ovs):
    """A network for one misconfiguration case (OpenFlow 6692; per test, so it never
    overlaps another test's ``sc`` network); VMs learned first by a correctly
    configured controller, whose flows stay in the bridge."""
    of_port = 6692
    net = h.start_network(controller_port=of_port, **topo())
    try:
        with h.Controller(config=config(", ".join(UPLINKS)), of_port=of_port, ws_port=8102) as ctl:
            h.wait_synced(ctl, 1, interval=0.1)
            learn_vms(net)
        yield net
    finally:
        h.stop_network(net)


@pytest.mark.parametrize(
    ("case", "uplinks", "odd"),
    [
        ("VM port listed as uplink", f"{UPLINKS[0]}, {UPLINKS[1]}, {HV}-eth3", f"{HV}-eth3"),
        ("typo", f"{UPLINKS[0]}, {HV}-eth9", f"{HV}-eth9"),
        ("glob matching every port", f"{HV}-eth*", "match every port"),
    ],
)
def test_misconfigured_uplinks_leave_the_bridge_unmanaged_and_never_loop(
    mismatch_net, case, uplinks, odd
):
    net = mismatch_net
    with h.Controller(config=config(uplinks), of_port=6692, ws_port=8102) as ctl:
        h.wait_until(lambda: _handled(ctl), timeout=20, interval=0.2, desc="bridge handled")
        seen, loop_fps = _probe_loop(net)
        problems = _unmanaged(ctl)
        table = _dump()
        health = ctl.get_json("/slb/v1/health")
        log = ctl.log_text()
        unmanaged = events(ctl, "bridge-unmanaged")
    figure(f"misconfig {case}", f"looping frames/s: {loop_fps:.1f} ({seen} copies in 5 s)")
    assert loop_fps == 0, f"{seen} copies of one broadcast in 5 s"
    assert health["status"] == "degraded" and HV in problems[0] and odd in problems[0], problems
    assert unmanaged and "NOT managed" in log
    assert len(table) == 1 and "priority=0" in table[0] and "actions=drop" in table[0], table


def test_unmanaged_bridge_is_managed_once_its_ports_match(mismatch_net):
    net = mismatch_net
    extra = PREFIX + "x1"
    h.sh(["ovs-vsctl", "--if-exists", "del-port", HV, extra])
    cfg = config(f"{UPLINKS[0]}, {UPLINKS[1]}, {extra}")
    try:
        with h.Controller(config=cfg, of_port=6692, ws_port=8102) as ctl:
            h.wait_until(lambda: _unmanaged(ctl), timeout=20, interval=0.2, desc="unmanaged")
            assert extra in _unmanaged(ctl)[0]
            h.sh(["ovs-vsctl", "add-port", HV, extra, "--", "set", "interface", extra,
                  "type=internal"])  # fmt: skip
            h.wait_synced(ctl, 1, timeout=10)
            assert not _unmanaged(ctl)
            assert events(ctl, "bridge-managed")
            learn_vms(net)
            assert len(rows(ctl)) >= 2
    finally:
        h.sh(["ovs-vsctl", "--if-exists", "del-port", HV, extra])


# ---------------------------------------------------------------------------
# 3. REST


def _get_health(port: int, timeout: float = 5.0) -> float | None:
    """Seconds GET /slb/v1/health took, None when it failed."""
    t0 = time.monotonic()
    try:
        status, _ = h.http_request_json(
            "GET", f"http://127.0.0.1:{port}/slb/v1/health", timeout=timeout
        )
    except OSError:
        return None
    return time.monotonic() - t0 if status == 200 else None


def _server_conns(port: int) -> int:
    """TCP connections the REST server holds (server side of port)."""
    out = h.sh(["ss", "-tnH", "state", "established", f"sport = :{port}"])
    return len(out.splitlines())


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        s.setblocking(True)
        s.settimeout(0.01)
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except OSError:
        return False


def test_rest_refuses_cross_site_and_rebinding_and_survives_1100_slow_connections(
    controller_factory,
):
    ws_port = 8103
    ctl = controller_factory(config=config(", ".join(UPLINKS)), of_port=6693, ws_port=ws_port)
    base = f"http://127.0.0.1:{ws_port}/slb/v1"

    def curl(*args: str) -> int:
        out = h.sh(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", *args])
        return int(out)

    # a cross-site form POST (text/plain, foreign Origin) and DNS rebinding
    assert curl("-X", "POST", "-H", "Content-Type: text/plain", "-H", "Origin: http://evil.test",
                "-d", '{"uplink": "x"}', f"{base}/rebalance") in (403, 415)  # fmt: skip
    assert curl("-X", "POST", "-H", "Content-Type: text/plain", "-d", "{}",
                f"{base}/rebalance") == 415  # fmt: skip
    assert curl("-X", "POST", f"{base}/rebalance") == 415
    assert curl("-H", "Host: evil.test", f"{base}/health") == 421
    assert curl("-H", "Host: evil.test:8103", f"{base}/health") == 421
    assert curl("-H", f"Host: localhost:{ws_port}", f"{base}/health") == 200
    assert curl("-H", f"Host: [::1]:{ws_port}", f"{base}/health") == 200
    assert curl("-X", "POST", "-H", "Content-Type: application/json", "-d", "{}",
                f"{base}/rebalance") == 200  # fmt: skip
    counters = ctl.get_json("/slb/v1/health")["counters"]
    assert counters["rest_refused_421"] == 2 and counters["rest_refused_415"] >= 2, counters

    # 1,100 connections: half idle, half sending a request line byte by byte
    conns, t_open = [], time.monotonic()
    for i in range(1100):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", ws_port))
        except BlockingIOError:
            pass
        conns.append(s)
        if i % 2:
            try:
                s.send(b"GET /slb/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                pass
    during = []
    for _ in range(5):  # while all of them are open (and the slow ones trickle)
        during.append(_get_health(ws_port))
        for s in conns[1::2]:
            try:
                s.send(b"X")
            except OSError:
                pass
        time.sleep(0.5)
    held_during = _server_conns(ws_port)
    # past the socket timeout (10 s) the server has dropped every one of them
    h.wait_until(lambda: _server_conns(ws_port) == 0, timeout=30, interval=1, desc="dropped")
    t_dropped = time.monotonic() - t_open
    closed = sum(_closed_by_peer(s) for s in conns)
    for s in conns:
        s.close()
    after = [_get_health(ws_port) for _ in range(3)]
    ok = [t for t in during if t is not None]
    figure(
        "REST under 1,100 slow connections",
        f"{len(ok)}/{len(during)} health requests answered while held "
        f"(max {max(ok, default=0) * 1000:.0f} ms); server held {held_during} connections "
        f"(cap 256), all dropped {t_dropped:.0f} s after the flood began ({closed}/1100 seen "
        f"closed by the client); {sum(t is not None for t in after)}/3 answered after",
    )
    assert len(ok) == len(during) and max(ok) < 3.0, during
    assert all(t is not None for t in after), after
    assert held_during <= 300, held_during
    assert ctl.running


# ---------------------------------------------------------------------------
# TLS on the control channel


def test_bridge_connects_and_syncs_over_tls(network_factory, controller_factory, tmp_path):
    """OVS `ssl:` to ryu-manager with --ctl-privkey/--ctl-cert/--ca-certs (one CA, two certs)."""
    of_port, ws_port = 6694, 8104

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    ca_key, ca = tmp_path / "ca.key", tmp_path / "ca.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=slb-ca",
            "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    for who in ("ctl", "sw"):
        key, csr, cert = (tmp_path / f"{who}.{e}" for e in ("key", "csr", "pem"))
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=slb-{who}",
                "-keyout", str(key), "-out", str(csr))  # fmt: skip
        openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                "-CAcreateserial", "-days", "1", "-out", str(cert))  # fmt: skip
    tls = [
        "--ofp-ssl-listen-port", str(of_port), "--ctl-privkey", str(tmp_path / "ctl.key"),
        "--ctl-cert", str(tmp_path / "ctl.pem"), "--ca-certs", str(ca),
    ]  # fmt: skip
    ctl = controller_factory(
        config=config(", ".join(UPLINKS)), of_port=of_port, ws_port=ws_port, extra_args=tls
    )  # only the TLS listener: with --ctl-privkey Ryu serves no plain TCP
    h.sh(["ovs-vsctl", "set-ssl", str(tmp_path / "sw.key"), str(tmp_path / "sw.pem"), str(ca)])
    try:
        net = network_factory(controller_port=of_port, wait_converged=False, **topo())
        h.sh(["ovs-vsctl", "set-controller", HV, f"ssl:127.0.0.1:{of_port}"])
        h.wait_synced(ctl, 1, timeout=30)
        assert h.ping(net.get(PREFIX + "v11"), net.get(PREFIX + "v12"), count=2)
        # a reconnect works too (Ryu 4.34 alone fails every TLS connection after the first)
        h.sh(["ovs-vsctl", "del-controller", HV])
        h.wait_until(lambda: not _health_synced(ctl), timeout=10, desc="bridge disconnected")
        h.sh(["ovs-vsctl", "set-controller", HV, f"ssl:127.0.0.1:{of_port}"])
        h.wait_synced(ctl, 1, timeout=30)
        # a client without a certificate signed by the CA gets nothing
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with pytest.raises(OSError):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", of_port), 5)) as tls:
                tls.settimeout(5)
                tls.sendall(_msg(OFP_HELLO, 1))
                if not tls.recv(8):
                    raise ConnectionResetError("closed")
        assert _health_synced(ctl)
    finally:
        h.sh(["ovs-vsctl", "del-ssl"], check=False)

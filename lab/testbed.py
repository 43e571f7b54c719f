"""Test bed for the demo and the integration tests: OVS, a ryu-manager process, Mininet.

Everything here is bounded in time. Nothing here runs ``mn -c`` or kills
processes by name: networks are torn down with ``net.stop()`` and then by name
(``cleanup_chassis(prefix)``), controllers by the pid we started.

Must run as root with the project venv (``.venv``, built with
``--system-site-packages`` so ``mininet`` imports).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, Self, TypeVar

from slb_ryu import cli
from slb_ryu.openflow import learning_packets

if TYPE_CHECKING:
    from mininet.net import Mininet
    from mininet.node import Node

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
RYU_MANAGER = VENV_BIN / "ryu-manager"
CHASSIS_PY = REPO / "mininet" / "chassis.py"
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
OFPP_LOCAL = 65534  # ofport of a bridge's LOCAL interface as OVS reports it

_T = TypeVar("_T")


class TestbedError(RuntimeError):
    pass


class Abort(TestbedError):
    """Raised by a wait_until() predicate to stop waiting at once."""


# ---------------------------------------------------------------------------
# small utilities


def sh(
    cmd: str | Sequence[str],
    timeout: float = 15,
    check: bool = True,
    input: str | None = None,  # noqa: A002 (mirrors subprocess)
) -> str:
    """Run a command (list, or str through the shell); return stdout (str)."""
    r = subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and r.returncode != 0:
        raise TestbedError(
            "command failed (%d): %s\n%s%s" % (r.returncode, cmd, r.stdout, r.stderr)
        )
    return r.stdout


def wait_until(
    predicate: Callable[[], _T],
    timeout: float = 10.0,
    interval: float = 0.2,
    desc: str = "condition",
) -> _T:
    """Poll predicate() until truthy; return its value or raise TestbedError.

    Exceptions from predicate() count as "not yet" (the last one is reported on
    timeout), except Abort, which propagates at once."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Abort:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            raise TestbedError("timed out after %.1fs waiting for %s%s" % (timeout, desc, extra))
        time.sleep(interval)


def tcp_listening(port: int, host: str = "127.0.0.1") -> bool:
    """True if something LISTENs on TCP port (read from /proc, no connection made)."""
    want_port = "%04X" % port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if state == "0A" and local.rsplit(":", 1)[1] == want_port:
                        return True
        except OSError:
            continue
    return False


# ---------------------------------------------------------------------------
# Open vSwitch


def ovs_running() -> bool:
    try:
        sh(["ovs-vsctl", "-t", "2", "show"], timeout=5)
        return True
    except (TestbedError, subprocess.TimeoutExpired, OSError):
        return False


def ensure_ovs(timeout: float = 30.0) -> None:
    """Start ovsdb-server + ovs-vswitchd (userspace datapath) if not running."""
    if ovs_running():
        return
    sh([OVS_CTL, "start", "--system-id=random"], timeout=timeout, check=False)
    wait_until(ovs_running, timeout=timeout, desc="ovs-vsctl show to work")


def ovs_get(table: str, record: str, column: str, timeout: int = 5) -> str:
    """``ovs-vsctl get TABLE RECORD COLUMN`` (stripped, JSON-ish quotes removed)."""
    out = sh(["ovs-vsctl", "-t", str(timeout), "get", table, record, column], timeout=timeout + 2)
    return out.strip().strip('"')


def port_no(bridge: str, ifname: str) -> int:
    """OpenFlow port number of interface ifname (on bridge); -1 if none yet."""
    del bridge  # interface names are unique across bridges
    value = ovs_get("Interface", ifname, "ofport")
    return int(value) if value.lstrip("-").isdigit() else -1


def list_bridges() -> list[str]:
    return sh(["ovs-vsctl", "-t", "5", "list-br"], timeout=7).split()


def controller_connected(bridge: str) -> bool:
    """True if any controller of bridge has is_connected=true."""
    uuids = ovs_get("Bridge", bridge, "controller").strip("[]").replace(" ", "")
    for uuid in filter(None, uuids.split(",")):
        if ovs_get("Controller", uuid, "is_connected") == "true":
            return True
    return False


_FDB_RE = re.compile(r"^\s*(\S+)\s+(\d+)\s+([0-9a-fA-F:]{17})\s+(\S+)\s*$")


def fdb(bridge: str) -> dict[str, tuple[int, int]]:
    """Parse ``ovs-appctl fdb/show BRIDGE`` -> {mac: (port_no, vlan)}.

    The LOCAL port is reported as OFPP_LOCAL (65534)."""
    out = sh(["ovs-appctl", "--timeout=5", "fdb/show", bridge], timeout=7)
    table = {}
    for line in out.splitlines():
        m = _FDB_RE.match(line)
        if not m:
            continue
        port = OFPP_LOCAL if m.group(1) == "LOCAL" else int(m.group(1))
        table[m.group(3).lower()] = (port, int(m.group(2)))
    return table


def fdb_flush(bridge: str) -> None:
    sh(["ovs-appctl", "--timeout=5", "fdb/flush", bridge], timeout=7)


_FLOW_KV = re.compile(r"(\w+)=([^,\s]+)")


def dump_flows(
    bridge: str, table: int | None = None, raw: bool = False
) -> list[dict[str, Any]] | list[str]:
    """``ovs-ofctl -O OpenFlow13 dump-flows BRIDGE [table=N]``.

    Returns a list of dicts {cookie:int, table:int, priority:int, n_packets:int,
    n_bytes:int, match:str, actions:str, raw:str} (or the raw lines if raw=True)."""
    cmd = ["ovs-ofctl", "-O", "OpenFlow13", "--timeout=5", "dump-flows", bridge]
    if table is not None:
        cmd.append("table=%d" % table)
    lines = [
        ln.strip()
        for ln in sh(cmd, timeout=8).splitlines()
        if ln.strip() and not ln.startswith("OFPST_FLOW")
    ]
    if raw:
        return lines
    flows = []
    for ln in lines:
        head, _, actions = ln.partition(" actions=")
        fields = [f.strip() for f in head.split(",")]
        info, match = {}, []
        for f in fields:
            k, eq, v = f.partition("=")
            if eq and k in (
                "cookie",
                "duration",
                "table",
                "n_packets",
                "n_bytes",
                "idle_age",
                "hard_age",
                "idle_timeout",
                "hard_timeout",
                "reset_counts",
            ):
                info[k] = v
            elif " " in f and "priority=" in f:
                # "priority=10 in_port=1" style when no comma separates them
                for part in f.split():
                    pk, _, pv = part.partition("=")
                    if pk == "priority":
                        info["priority"] = pv
                    else:
                        match.append(part)
            elif k == "priority":
                info["priority"] = v
            else:
                match.append(f)
        flows.append(
            {
                "cookie": int(info.get("cookie", "0"), 16),
                "table": int(info.get("table", "0")),
                "priority": int(info.get("priority", "32768")),
                "n_packets": int(info.get("n_packets", "0")),
                "n_bytes": int(info.get("n_bytes", "0")),
                "match": ",".join(match),
                "actions": actions,
                "raw": ln,
            }
        )
    return flows


def dump_groups(bridge: str) -> list[str]:
    """Raw lines of ``ovs-ofctl -O OpenFlow13 dump-groups BRIDGE``."""
    out = sh(["ovs-ofctl", "-O", "OpenFlow13", "--timeout=5", "dump-groups", bridge], timeout=8)
    return [ln.strip() for ln in out.splitlines() if ln.strip().startswith("group_id=")]


# ---------------------------------------------------------------------------
# raw frames (root namespace interfaces, e.g. a hv uplink's veth)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def garp_frame(mac: str, ip: str, vlan: int | None = None) -> bytes:
    """Broadcast gratuitous ARP request from mac/ip (802.1Q tagged when vlan is given):
    the same frame the controller announces a moved MAC with."""
    return learning_packets.gratuitous_arp(mac, ip, vlan or 0)


def send_raw(ifname: str, frame: bytes, count: int = 1) -> None:
    """Send an Ethernet frame out of interface ifname (AF_PACKET, root namespace).

    On a veth end that is an OVS port (say hv1-eth1), the frame comes out of the
    peer (tor1-eth3) into the other bridge, as if hv1 had sent it."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        for _ in range(count):
            s.send(frame)


def veth_peer(ifname: str) -> str | None:
    """Name of the veth peer of ifname (root namespace), from ``ip -o link``."""
    out = sh(["ip", "-o", "link", "show", "dev", ifname], timeout=5)
    m = re.match(r"\d+:\s+[^@:]+@([^:]+):", out)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------
# HTTP


def http_request_json(
    method: str, url: str, body: Any = None, timeout: float = 5.0
) -> tuple[int, Any]:
    """(status, parsed JSON or text) for any method; 4xx/5xx are returned, not raised."""
    return cli.http_json(method, url, body, timeout=timeout)


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    """GET url and return parsed JSON; raise TestbedError on a non-2xx status."""
    status, payload = http_request_json("GET", url, timeout=timeout)
    if not 200 <= status < 300:
        raise TestbedError("GET %s -> %d: %s" % (url, status, payload))
    return payload


# ---------------------------------------------------------------------------
# ryu-manager


def _die_with_parent() -> None:
    """In the child: SIGKILL me if the test process dies (no orphaned controller
    holding the ports after a killed pytest run)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


class Controller:
    """A ``ryu-manager`` subprocess.

    Controller(apps=("slb_ryu.app",), config="...ini text...", of_port=6653,
    ws_port=8080).start() runs::

        .venv/bin/ryu-manager [--config-file TMP] --ofp-tcp-listen-port OF \\
            --wsapi-host 127.0.0.1 --wsapi-port WS [extra_args...] APPS...

    ``config`` is the text of the config file (or None for no file);
    ``wait_ws=False`` when the apps have no WSGI context (nothing listens on WS).
    Output goes to ``log_path`` (a temp file by default, kept after stop).
    """

    def __init__(
        self,
        apps: str | Iterable[str] = ("slb_ryu.app",),
        config: str | None = None,
        of_port: int = 6653,
        ws_port: int = 8080,
        ws_host: str | None = "127.0.0.1",
        extra_args: Iterable[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        wait_ws: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.apps = [apps] if isinstance(apps, str) else list(apps)
        self.config = config
        self.of_port = of_port
        self.ws_port = ws_port
        self.ws_host = ws_host
        self.extra_args = list(extra_args)
        self.wait_ws = wait_ws
        self.env = env
        self._tmpdir = tempfile.mkdtemp(prefix="slb-ryu-ctl-")
        self.log_path = Path(log_path) if log_path else Path(self._tmpdir) / "ryu-manager.log"
        self.config_path: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return "http://%s:%d" % (self.ws_host or "127.0.0.1", self.ws_port)

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def argv(self) -> list[str]:
        args = [str(RYU_MANAGER)]
        if self.config is not None:
            self.config_path = Path(self._tmpdir) / "slb-ryu.conf"
            self.config_path.write_text(self.config)
            args += ["--config-file", str(self.config_path)]
        args += ["--ofp-tcp-listen-port", str(self.of_port), "--wsapi-port", str(self.ws_port)]
        if self.ws_host is not None:  # None: leave the app's default (127.0.0.1)
            args += ["--wsapi-host", self.ws_host]
        return args + self.extra_args + self.apps

    def start(self, timeout: float = 30.0) -> Self:
        if self.running:
            raise TestbedError("controller already running (pid %d)" % self.proc.pid)
        for port in (self.of_port, self.ws_port):
            if tcp_listening(port):
                raise TestbedError("TCP port %d is already in use" % port)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        ports = [self.of_port] + ([self.ws_port] if self.wait_ws else [])

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise Abort("ryu-manager exited with %s" % self.proc.returncode)
            return all(tcp_listening(p) for p in ports)

        try:
            wait_until(ready, timeout=timeout, desc="ryu-manager to listen on %s" % ports)
        except TestbedError as exc:
            self.kill9()
            raise TestbedError("%s\n--- log ---\n%s" % (exc, self.log_tail())) from None
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit code (or None)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_log()
        return self.proc.returncode

    def kill9(self) -> None:
        """SIGKILL (a crash): no cleanup in the controller."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def get_json(self, path: str, timeout: float = 5.0) -> Any:
        return http_get_json(self.url(path), timeout=timeout)

    def placement(self) -> dict[str, dict]:
        """``GET /slb/v1/placement`` keyed by MAC (one bridge, one VLAN per MAC)."""
        return {row["mac"]: row for row in self.get_json("/slb/v1/placement")}

    def uplinks(self) -> dict[str, dict]:
        """``GET /slb/v1/uplinks`` keyed by uplink name."""
        return {row["name"]: row for row in self.get_json("/slb/v1/uplinks")}

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 5.0
    ) -> tuple[int, Any]:
        return http_request_json(method, self.url(path), body=body, timeout=timeout)

    def __enter__(self) -> Self:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# Mininet chassis


def load_chassis() -> ModuleType:
    """Import mininet/chassis.py by path (the directory is not a package)."""
    name = "slb_chassis_topo"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CHASSIS_PY)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def ping(src: Node, dst: Node, count: int = 1, wait: int = 1) -> bool:
    """True if host src pings host dst (Mininet node objects)."""
    out = src.cmd("ping -n -q -c %d -W %d %s" % (count, wait, dst.IP()))
    m = re.search(r"(\d+) received", out)
    return bool(m and int(m.group(1)) > 0)


_RSTP_PORT_RE = re.compile(
    r"^\s+(\S+)\s+(Root|Designated|Alternate|Backup|Disabled)\s+(\S+)\s+\d+\s+\d+\.(\d+)\s*$"
)


def rstp_ports(bridge: str) -> dict[str, tuple[str, str]]:
    """{ifname: (role, state)} from ``ovs-appctl rstp/show BRIDGE``.

    rstp/show cuts interface names to 10 characters ("tor2-eth1" and "tor2-eth2" of a
    prefixed bridge both print as "zztor2-eth"), so rows are keyed by the port number
    of their Pri.Nbr column, mapped back to the interface name by its ofport."""
    out = sh(["ovs-appctl", "--timeout=5", "rstp/show", bridge], timeout=7)
    ours = set(sh(["ovs-vsctl", "--timeout=5", "list-ports", bridge], timeout=7).split())
    cmd = ["ovs-vsctl", "--timeout=5", "-f", "csv", "--no-headings"]
    rows = sh(cmd + ["--columns=name,ofport", "list", "Interface"], timeout=7).splitlines()
    names = {}
    for row in rows:
        name, _, ofport = row.partition(",")
        if name.strip('"') in ours:
            names[ofport.strip()] = name.strip('"')
    ports = {}
    for line in out.splitlines():
        m = _RSTP_PORT_RE.match(line)
        if m:
            ports[names.get(m.group(4), m.group(1))] = (m.group(2), m.group(3))
    return ports


def rstp_stable(bridges: Iterable[str]) -> bool:
    """True when every port of bridges is in RSTP and is Root/Designated+Forwarding or
    Alternate/Backup+Discarding (no port still Learning or Discarding on its way).

    A ``Disabled`` port is not stable: right after the bridges are created, OVS shows
    ports whose link it has not seen come up yet as Disabled, and a fabric that looks
    converged then reconverges under the first test frames. Every fabric port is up at
    start."""
    for br in bridges:
        ports = rstp_ports(br)
        names = set(sh(["ovs-vsctl", "--timeout=5", "list-ports", br], timeout=7).split())
        if not ports or set(ports) != names:
            return False
        for role, state in ports.values():
            if role == "Disabled":
                return False
            if role in ("Root", "Designated") and state != "Forwarding":
                return False
            if role in ("Alternate", "Backup") and state != "Discarding":
                return False
    return True


def loss_window_ms(ping_output: str, interval_ms: float) -> tuple[int, int, float]:
    """(sent, received, longest run of missing sequence numbers x interval)."""
    seqs = sorted({int(s) for s in re.findall(r"icmp_seq=(\d+)", ping_output)})
    m = re.search(r"(\d+) packets transmitted, (\d+) received", ping_output)
    sent, received = (int(m.group(1)), int(m.group(2))) if m else (0, len(seqs))
    longest = 0
    previous = 0
    for seq in seqs + [sent + 1]:
        longest = max(longest, seq - previous - 1)
        previous = seq
    return sent, received, longest * interval_ms


def wait_fabric_converged(net: Mininet, prefix: str = "", timeout: float = 60.0) -> float:
    """Poll until the fabric's RSTP port states are stable and r1 pings r2.

    Returns the seconds it took."""
    t0 = time.monotonic()
    fabric = [prefix + n for n in ("tor1", "tor2", "agg1", "agg2")]

    # Stable in two polls 0.5 s apart: a bridge that has just heard a better root
    # re-syncs its ports, and a single poll can fall between two such steps.
    def settled() -> bool:
        if not rstp_stable(fabric):
            return False
        time.sleep(0.5)
        return rstp_stable(fabric)

    wait_until(settled, timeout=timeout, interval=0.25, desc="RSTP stable")
    r1, r2 = net.get(prefix + "r1"), net.get(prefix + "r2")
    left = max(1.0, timeout - (time.monotonic() - t0))
    wait_until(lambda: ping(r1, r2), timeout=left, interval=0.5, desc="r1 to ping r2 (RSTP)")
    return time.monotonic() - t0


def start_network(
    controller_port: int = 6653,
    converge_timeout: float = 60.0,
    wait_converged: bool = True,
    **topo_params: Any,
) -> Mininet:
    """Build and start the chassis (``load_chassis().ChassisTopo(**topo_params)``).

    The hv bridges point at tcp:127.0.0.1:controller_port. Leftovers of a crashed
    run with the same prefix are removed first (by name). With wait_converged,
    returns only once r1 pings r2 (needs remotes >= 2). Stop with stop_network().
    """
    ensure_ovs()
    chassis = load_chassis()
    prefix = topo_params.get("prefix", "")
    chassis.cleanup_chassis(prefix)
    net = chassis.build_chassis_net(controller_port=controller_port, **topo_params)
    net.slb_prefix = prefix
    try:
        net.start()
        chassis.chassis_post_start(net)
        if wait_converged:
            net.slb_converge_seconds = wait_fabric_converged(net, prefix, converge_timeout)
    except BaseException:
        stop_network(net)
        raise
    return net


def stop_network(net: Mininet) -> dict[str, list[Any]]:
    """net.stop(), then remove by name whatever of this topology is left.

    Returns the leftovers found after net.stop() (empty lists when clean)."""
    chassis = load_chassis()
    prefix = getattr(net, "slb_prefix", "")
    try:
        net.stop()
    except Exception as exc:  # noqa: BLE001 - fall back to by-name cleanup
        print("net.stop() failed: %r; cleaning up by name" % (exc,), file=sys.stderr)
    leftovers = chassis.chassis_leftovers(prefix)
    if any(leftovers.values()):
        chassis.cleanup_chassis(prefix)
    return leftovers


# ---------------------------------------------------------------------------
# fault injection helpers (tests/integration/test_reliability.py)

_SEND_SCRIPT = r"""
import socket, sys, time
ifname, path, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
frames = [bytes.fromhex(ln) for ln in open(path) if ln.strip()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
start = time.time()
print("first=%.6f" % start, flush=True)
for i, frame in enumerate(frames):
    if duration:
        due = start + duration * i / len(frames)
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
    try:
        s.send(frame)
    except OSError as exc:
        print("error=%r" % (exc,), flush=True)
print("sent=%d last=%.6f" % (len(frames), time.time()), flush=True)
"""


def send_frames_in(
    node: Node, ifname: str, frames: Iterable[bytes], duration: float = 0.0, timeout: float = 60
) -> dict[str, Any]:
    """Send raw Ethernet frames out of ifname inside a Mininet node's namespace.

    Frames go out back to back, or spread evenly over ``duration`` seconds. Returns
    {'first': epoch of the first send, 'last': epoch after the last, 'sent': n, 'errors': [..]}.
    """
    tmp = Path(tempfile.mkdtemp(prefix="slb-frames-"))
    try:
        (tmp / "send.py").write_text(_SEND_SCRIPT)
        (tmp / "frames.hex").write_text("\n".join(f.hex() for f in frames) + "\n")
        out = node.cmd(
            "timeout %d %s %s %s %s %s"
            % (timeout, VENV_BIN / "python", tmp / "send.py", ifname, tmp / "frames.hex", duration)
        )
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    first = re.search(r"first=([\d.]+)", out)
    done = re.search(r"sent=(\d+) last=([\d.]+)", out)
    if not first or not done:
        raise TestbedError("sending frames in %s failed:\n%s" % (node.name, out))
    return {
        "first": float(first.group(1)),
        "last": float(done.group(2)),
        "sent": int(done.group(1)),
        "errors": re.findall(r"error=(.*)", out),
    }


def rss_kb(pid: int) -> int:
    """Resident set size (VmRSS, kB) of a process."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestbedError("no VmRSS for pid %d" % pid)


def normalise_flows(lines: Iterable[str]) -> list[str]:
    """Sorted dump-flows lines without counters and ages (to compare tables), and without
    the flows the datapath learns by itself (cookie 0x51b1..., fabric-seen and echo
    drops: they come and go with traffic, see flows/PIPELINE.md)."""
    out = []
    for line in lines:
        if line.lstrip().startswith("cookie=0x51b1"):
            continue
        line = re.sub(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*", "", line)
        out.append(line.strip())
    return sorted(out)


def port_counters(bridge: str) -> dict[int, dict[str, int]]:
    """{port_no: {'rx_pkts', 'tx_pkts', 'tx_drop'}} from ``ovs-ofctl dump-ports``."""
    out = sh(["ovs-ofctl", "-O", "OpenFlow13", "--timeout=5", "dump-ports", bridge], timeout=8)
    ports = {}
    for m in re.finditer(
        r"port\s+(\w+):\s*rx pkts=(\d+).*?tx pkts=(\d+), bytes=\S+, drop=(\d+)", out, re.S
    ):
        if m.group(1).isdigit():
            ports[int(m.group(1))] = {
                "rx_pkts": int(m.group(2)),
                "tx_pkts": int(m.group(3)),
                "tx_drop": int(m.group(4)),
            }
    return ports


def group_bucket_packets(bridge: str) -> dict[int, list[int]]:
    """{group_id: [packet_count per bucket]} from ``ovs-ofctl dump-group-stats``."""
    out = sh(
        ["ovs-ofctl", "-O", "OpenFlow13", "--timeout=5", "dump-group-stats", bridge], timeout=8
    )
    groups = {}
    for line in out.splitlines():
        m = re.search(r"group_id=(\d+)", line)
        if m:
            buckets = re.findall(r"bucket\d+:packet_count=(\d+)", line)
            groups[int(m.group(1))] = [int(b) for b in buckets]
    return groups


def reply_times(ping_output: str) -> list[tuple[float, int]]:
    """[(epoch, icmp_seq)] of the replies in ``ping -D`` output."""
    return [
        (float(t), int(s))
        for t, s in re.findall(r"^\[([\d.]+)\].*icmp_seq=(\d+)", ping_output, re.M)
    ]


# ---------------------------------------------------------------------------
# shared by the integration tests and the demo


def capture(
    node: Node, intf: str, bpf: str, seconds: float, direction: str = "inout"
) -> subprocess.Popen[bytes]:
    """Start a bounded tcpdump on `node` (a Mininet node; switches are in the root
    namespace) writing to a temp pcap; read it with ``captured(proc)``."""
    path = "/tmp/slb-cap-%s-%d.pcap" % (intf, time.monotonic_ns())
    cmd = ["timeout", str(seconds), "tcpdump", "-i", intf, "-Q", direction, "-n", "-U", "-w", path]
    proc = node.popen(cmd + ([bpf] if bpf else []))
    proc.slb_path = path
    return proc


def captured(proc: subprocess.Popen[bytes], bpf: str = "") -> list[str]:
    """Wait for a ``capture`` to end; its frames as ``tcpdump -n -e`` lines (pcap removed)."""
    proc.wait(timeout=30)
    out = sh(["tcpdump", "-n", "-e", "-r", proc.slb_path] + ([bpf] if bpf else []), check=False)
    Path(proc.slb_path).unlink(missing_ok=True)
    return [ln for ln in out.splitlines() if ln.strip()]


def ping_learned(ctl: Controller, node: Node, peer: Node, count: int = 1) -> bool:
    """`node` pings `peer` and the controller has learned node's MAC. A ping alone no
    longer proves learning: the datapath forwards a new source itself and the learning
    copy reaches the controller a moment later (flows/PIPELINE.md, table 2)."""
    if not ping(node, peer, count=count):
        return False
    return node.MAC() in {r["mac"] for r in ctl.get_json("/slb/v1/placement")}


def wait_synced(
    ctl: Controller, bridges: int = 1, timeout: float = 20.0, interval: float = 0.2
) -> None:
    """Until `bridges` bridges are connected to `ctl` and synced (its /health says so)."""

    def synced() -> bool:
        health = ctl.get_json("/slb/v1/health")["bridges"].values()
        return sum(1 for b in health if b.get("connected") and b.get("synced")) >= bridges

    wait_until(synced, timeout=timeout, interval=interval, desc="%d bridge(s) synced" % bridges)


@contextlib.contextmanager
def lab(
    config: str | None, of_port: int, ws_port: int, log_lines: int = 30, **topo: Any
) -> Iterator[tuple[Mininet, Controller]]:
    """A controller with `config` and a started chassis network pointing at it, both
    torn down on exit (the controller log tail is printed). Yields (net, ctl)."""
    ensure_ovs()
    ctl = Controller(config=config, of_port=of_port, ws_port=ws_port).start()
    net = None
    try:
        net = start_network(controller_port=of_port, **topo)
        wait_synced(ctl, bridges=int(topo.get("hvs", 1)))
        yield net, ctl
    finally:
        if net is not None:
            stop_network(net)
        ctl.stop()
        print("\n--- controller log (tail) ---\n" + ctl.log_tail(log_lines))

"""The alert rules and the Grafana dashboard against a real Prometheus (Debian's
`prometheus` package) scraping a live controller on a Mininet chassis.

Prefix 'pm' (pmhv1, uplinks pmhv1-eth1 -> pmtor1 and pmhv1-eth2 -> pmtor2, VMs pmv11 and
pmv12, remotes pmr1/pmr2), OpenFlow port 6697, REST/metrics port 8107, Prometheus on
127.0.0.1:9391 (scrape and rule evaluation every 1 s, a temporary TSDB). The module
shares one stack; tests run in file order:

1. `promtool check rules` and the rules' own unit tests (`promtool test rules`);
2. pmhv1-eth1 fails (Mininet configLinkStatus down): SlbUplinkDown fires in
   /api/v1/alerts; the controller's log tells the failover;
3. it flaps (up, down, up: [slb] flap_limit = 2): held although up, SlbUplinkHeld fires,
   `slb-ctl uplinks` says so;
4. every metric every rule reads has data in Prometheus, and every expression evaluates;
5. every dashboard panel's query returns data (template variables filled in);
6. table 1 of pmhv1 is made full (OVSDB Flow_Table flow_limit, overflow_policy=refuse):
   a new MAC's flow add is refused and the log names the error and the mod (by xid).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from lab import testbed as h

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "etc" / "prometheus" / "slb-ryu.rules.yml"
RULE_TESTS = REPO / "etc" / "prometheus" / "slb-ryu.rules.test.yml"
DASHBOARD = REPO / "etc" / "grafana" / "slb-ryu.json"
OF_PORT = 6697
WS_PORT = 8107
PROM_PORT = 9391
PROM = f"http://127.0.0.1:{PROM_PORT}"
TOPO = dict(hvs=1, uplinks=2, vms_per_hv=2, remotes=2, prefix="pm")
UPLINKS = ("pmhv1-eth1", "pmhv1-eth2")
CONFIG = f"""
[slb]
uplinks = {", ".join(UPLINKS)}
stats_interval = 1
load_half_life = 2
flap_limit = 2
flap_window = 60
flap_hold = 600
"""
PROM_CONFIG = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{RULES}]
scrape_configs:
  - job_name: slb-ryu
    static_configs: [{{targets: ["127.0.0.1:{WS_PORT}"]}}]
"""


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every target, with Grafana's variables filled in."""
    out = []

    def walk(panels: list[dict]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "15s")
                out.append((panel["title"], expr.replace('=~"$bridge"', '=~".*"')))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return out


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(slb_[a-z0-9_]+)\b", expr))
    return names | ({"up"} if re.search(r"\bup\{", expr) else set())


def api(path: str, **params: str) -> dict:
    url = f"{PROM}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


def query(expr: str) -> list[dict]:
    return api("query", query=expr)["result"]


def alerts(name: str, state: str = "firing") -> list[dict]:
    return [
        a
        for a in api("alerts")["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == state
    ]


class Prometheus:
    """A Prometheus server in a temporary directory; stop() ends it."""

    def __init__(self, workdir: Path) -> None:
        (workdir / "prometheus.yml").write_text(PROM_CONFIG)
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{PROM_PORT}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise h.Abort(f"prometheus exited {self.proc.returncode}: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{PROM}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if h.tcp_listening(PROM_PORT):
        pytest.fail(f"port {PROM_PORT} (Prometheus) is in use")
    prom = None
    with h.lab(CONFIG, OF_PORT, WS_PORT, **TOPO) as (net, ctl):
        try:
            r1 = net.get("pmr1")
            for vm in ("pmv11", "pmv12"):
                h.wait_until(
                    lambda v=vm: h.ping_learned(ctl, net.get(v), r1), timeout=10, desc=f"{vm} ping"
                )
            prom = Prometheus(tmp_path_factory.mktemp("prometheus"))
            h.wait_until(prom.ready, timeout=30, desc="prometheus ready")
            h.wait_until(
                lambda: query('up{job="slb-ryu"} == 1') and query("slb_uplink_up"),
                timeout=30,
                desc="prometheus scraping the controller",
            )
            yield net, ctl
        finally:
            if prom is not None:
                prom.stop()
                print("\n--- prometheus log (tail) ---\n" + prom.log_tail())


def set_link(net, status: str) -> None:
    net.configLinkStatus("pmhv1", "pmtor1", status)


def uplink(ctl, name: str) -> dict:
    return ctl.uplinks()[name]


def test_promtool_checks_the_rules_and_their_unit_tests():
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    done = subprocess.run(
        ["promtool", "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_failed_uplink_fires_an_alert_and_is_logged(stack):
    net, ctl = stack
    set_link(net, "down")
    h.wait_until(lambda: not uplink(ctl, "pmhv1-eth1")["live"], timeout=10, desc="eth1 down")
    h.wait_until(
        lambda: alerts("SlbUplinkDown"), timeout=45, interval=1, desc="SlbUplinkDown firing"
    )
    (alert,) = alerts("SlbUplinkDown")
    print("\nalert:", json.dumps(alert, indent=1))
    assert alert["labels"]["uplink"] == "pmhv1-eth1" and alert["labels"]["dp_name"] == "pmhv1"
    assert alert["annotations"]["summary"] == "uplink pmhv1-eth1 of pmhv1 is down"
    assert {a["labels"]["dp_name"] for a in alerts("SlbBondOnOneLeg", "pending")} | {
        a["labels"]["dp_name"] for a in alerts("SlbBondOnOneLeg")
    } == {"pmhv1"}
    # The same failover, in the controller's log: WARNING for the uplink, INFO per move.
    log = ctl.log_text()
    down = re.search(r"bridge pmhv1: uplink-down uplink=pmhv1-eth1 held=False moved=(\d+)", log)
    assert down, ctl.log_tail(60)
    moves = [ln for ln in log.splitlines() if "bridge pmhv1: move " in ln]
    assert moves and all("reason=failover from=pmhv1-eth1 to=pmhv1-eth2" in m for m in moves)
    assert len(moves) == int(down.group(1))
    print("\n".join(ln for ln in log.splitlines() if "bridge pmhv1: " in ln))


def test_flapping_uplink_is_held_though_up(stack):
    net, ctl = stack
    set_link(net, "up")
    h.wait_until(lambda: uplink(ctl, "pmhv1-eth1")["live"], timeout=10, desc="eth1 up")
    set_link(net, "down")  # second down within flap_window: held
    h.wait_until(lambda: uplink(ctl, "pmhv1-eth1")["held"], timeout=10, desc="eth1 held")
    set_link(net, "up")
    h.wait_until(lambda: uplink(ctl, "pmhv1-eth1")["live"], timeout=10, desc="eth1 up again")
    row = uplink(ctl, "pmhv1-eth1")
    assert row["held"] and not row["usable"]
    h.wait_until(lambda: alerts("SlbUplinkHeld"), timeout=20, desc="SlbUplinkHeld firing")
    assert query('slb_uplink_up{uplink="pmhv1-eth1"} == 1')  # up, and yet:
    assert query('slb_uplink_usable{uplink="pmhv1-eth1"} == 0')
    env = {**os.environ, "SLB_URL": f"http://127.0.0.1:{WS_PORT}"}
    table = subprocess.run(
        [str(h.VENV_BIN / "slb-ctl"), "uplinks"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
        check=True,
    ).stdout
    print("\n" + table)
    eth1 = next(ln for ln in table.splitlines() if ln.startswith("pmhv1-eth1"))
    assert eth1.split()[2:6] == ["up", "off", "held", "NO"], table  # PATH off: no probing


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_rule_reads_metrics_that_exist(stack, rule):
    api("query", query=rule["expr"])  # evaluates (status success)
    for name in sorted(metric_names(rule["expr"])):
        assert query(f'{{__name__="{name}"}}'), f"{rule['alert']}: no data for {name}"


@pytest.mark.parametrize(
    ("title", "expr"), panel_queries(), ids=[f"{t}:{e[:40]}" for t, e in panel_queries()]
)
def test_every_dashboard_query_returns_data(stack, title, expr):
    h.wait_until(lambda: query(expr), timeout=20, interval=1, desc=f"data for {expr!r}")


def test_openflow_error_is_named_and_tied_to_its_mod(stack):
    net, ctl = stack
    table1 = len(h.dump_flows("pmhv1", table=1, raw=True))
    h.sh(
        [
            "ovs-vsctl",
            "--",
            "--id=@ft",
            "create",
            "Flow_Table",
            f"flow_limit={table1}",
            "overflow_policy=refuse",
            "--",
            "set",
            "Bridge",
            "pmhv1",
            "flow_tables:1=@ft",
        ]
    )
    try:
        new_mac = "02:00:00:00:0e:01"
        h.send_frames_in(net.get("pmv11"), "pmv11-eth0", [h.garp_frame(new_mac, "10.0.0.99")])
        h.wait_until(lambda: "openflow-error" in ctl.log_text(), timeout=10, desc="error logged")
    finally:
        h.sh(["ovs-vsctl", "clear", "Bridge", "pmhv1", "flow_tables"])
    (line,) = [ln for ln in ctl.log_text().splitlines() if "openflow-error" in ln][:1]
    print("\n" + line)
    assert line.startswith('bridge pmhv1: openflow-error cause="flow add table=1 '), line
    assert f"eth_src={new_mac}" in line and "error=FLOW_MOD_FAILED/TABLE_FULL xid=" in line

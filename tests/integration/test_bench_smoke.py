"""Smoke runs of the benchmarks (bench/): they run to the end and print their tables.

Figures, not targets: nothing here checks that slb-ryu beats OVS. What is checked is
that each benchmark still works: exit status 0, its table printed with a row per
system, and numbers that only a working run can produce (positive throughput for both
systems, pings answered, the scenario's precondition met).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from lab import testbed as h

PYTHON = h.REPO / ".venv" / "bin" / "python"


def run(args: list[str], timeout: float) -> str:
    proc = subprocess.run(
        [str(PYTHON), *args],
        cwd=h.REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    print(proc.stdout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.timeout(90)
def test_algorithm_benchmark_quick():
    out = run(["bench/algorithm.py", "--quick"], timeout=80)
    rows = re.findall(r"\s(ovs|ours)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)", out)
    algos = [r[0] for r in rows]
    assert algos.count("ovs") >= 2 and algos.count("ovs") == algos.count("ours"), out
    # imbalance = busiest uplink's share / mean share: at least 1.0 by definition
    assert all(float(r[1]) >= 0.999 for r in rows), rows
    assert re.search(r"^# \d+ cases in [\d.]+ s", out, re.M), out


@pytest.mark.timeout(200)
def test_live_benchmark_quick(ovs, tmp_path):
    out_json = tmp_path / "live.json"
    out = run(["bench/live.py", "--quick", "--json", str(out_json)], timeout=190)
    assert "ERROR" not in out, out
    equal, sep, mixed = out.partition("\n# mixed speeds:")
    assert sep, f"no mixed-speeds table\n{out}"
    row = re.search(r"^aggregate throughput \(Mbit/s\) \*\s+([\d.]+)\s+([\d.]+)\s*$", equal, re.M)
    assert row, out
    assert float(row.group(1)) > 0 and float(row.group(2)) > 0, row.group(0)
    for label in ("time until both uplinks used", "failover loss window"):
        assert re.search(rf"^{label} \(\w+\)\s+(\S+)\s+(\S+)\s*$", equal, re.M), (label, out)

    # second table: mixed speeds (10 + 2 Mbit/s); positive figures, no targets
    for label in (
        r"aggregate throughput \(Mbit/s\) \*",
        r"carried by uplink 1, 10 Mbit/s \(Mbit/s\) \*\*",
        r"carried by uplink 2, 2 Mbit/s \(Mbit/s\) \*\*",
        r"Jain's fairness index, 4 flows \*\*\*",
        r"slowest flow \(Mbit/s\)",
    ):
        row = re.search(rf"^{label}\s+([\d.]+)\s+([\d.]+)\s*$", mixed, re.M)
        assert row, (label, out)
        # ours > 0; the OVS bond may starve a flow on the slow link (0.00 seen): >= 0
        assert float(row.group(1)) > 0 and float(row.group(2)) >= 0, row.group(0)
    for label in (r"VMs on the 2 Mbit/s uplink at end \(of 4\)", "MAC moves while iperf3 ran"):
        assert re.search(rf"^{label}\s+(\d+)\s+(\d+)\s*$", mixed, re.M), (label, out)

    doc = json.loads(out_json.read_text())
    assert set(doc["runs"]) == {"ours", "ovs"}
    for system, runs in doc["runs"].items():
        assert len(runs) == 1 and "error" not in runs[0], (system, runs)
        res = runs[0]
        assert res["started_on_one_uplink"], (system, res["start_placement"])
        assert res["aggregate_mbps"] > 0 and all(f > 0 for f in res["flow_mbps"]), res
        assert res["series"], system
        failover = res["failover"]
        assert failover["sent"] > 0 and failover["received"] > 0, failover

    assert set(doc["mixed"]["runs"]) == {"ours", "ovs"}
    for system, runs in doc["mixed"]["runs"].items():
        assert len(runs) == 1 and "error" not in runs[0], (system, runs)
        res = runs[0]
        assert res["htb_mbps"] == {"bhv1-eth1": 10.0, "bhv1-eth2": 2.0}, res["htb_mbps"]
        flows_ok = all(f > 0 for f in res["flow_mbps"]) or system == "ovs"  # OVS may starve one
        assert res["aggregate_mbps"] > 0 and flows_ok, res
        assert all(m > 0 for m in res["carried_mbps"]), res["carried_mbps"]
        assert 0.25 <= res["jain"] <= 1.0, res["jain"]
        assert res["series"] and res["timeline"], system
    ours = doc["mixed"]["runs"]["ours"][0]
    assert ours["controller_speeds_mbps"] == ours["htb_mbps"], ours["controller_speeds_mbps"]


@pytest.mark.timeout(150)
def test_scale_benchmark_smoke(ovs, tmp_path):
    """bench/scale.py --smoke: N=100 for both systems plus the microbenchmarks against
    the baseline revision; every figure a working run produces is there and plausible."""
    out_json = tmp_path / "scale.json"
    out = run(["bench/scale.py", "--smoke", "--json", str(out_json)], timeout=140)
    assert "ERROR" not in out, out
    assert re.search(r"^choose_uplink \(us\)\s+[\d.]+ / [\d.]+\s*$", out, re.M), out
    assert re.search(r"^learn all N \(s\): ours / OVS \*\*\s+[\d.]+ / [\d.]+\s*$", out, re.M), out
    doc = json.loads(out_json.read_text())
    ours, ovs_ = doc["live"]["100"]["ours"], doc["live"]["100"]["ovs"]
    for res in (ours, ovs_):
        assert res["sent"] == 100 and res["learn_s"] > 0, res
        assert res["first_lost"] == 0 and res["first_median_ms"] > 0, res
        assert res["failover_s"] is not None and res["learning_seen"] > 0, res
    assert ours["moved"] > 0 and ours["learning_seen"] >= ours["moved"], ours
    # learned MACs are counted from table stats; the source flows themselves agree
    assert ours["source_flows_added"] == 100, ours
    assert ours["disconnects"] == 0 and ours["placement_rows"] >= 100, ours
    assert 0 < ours["rss_mib"] < 1024 and ours["idle_cpu_pct"] >= 0, ours
    now, base = doc["micro"]["now"][0], doc["micro"]["baseline"][0]
    assert now["n"] == base["n"] == 100 and now["failover_learning"] == now["failover_macs"]

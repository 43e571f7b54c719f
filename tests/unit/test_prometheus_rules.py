"""The alert rules' own unit tests (etc/prometheus/slb-ryu.rules.test.yml), run by
promtool: no server needed. tests/integration/test_prometheus.py runs them live."""

import shutil
import subprocess
from pathlib import Path

import pytest

PROM_DIR = Path(__file__).resolve().parents[2] / "etc" / "prometheus"


@pytest.mark.parametrize(
    "args",
    [["check", "rules", "slb-ryu.rules.yml"], ["test", "rules", "slb-ryu.rules.test.yml"]],
    ids=["check", "test"],
)
def test_promtool(args):
    if shutil.which("promtool") is None:
        pytest.skip("promtool missing: apt-get install prometheus (scripts/setup.sh does)")
    done = subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=60, cwd=PROM_DIR
    )
    assert done.returncode == 0, done.stdout + done.stderr

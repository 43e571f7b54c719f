"""The house rules hold on the whole tree: ruff lint and format, and the pure core.

`slb_ryu/core` may not import Ryu, webob, oslo.config, eventlet, subprocess or
prometheus_client (ruff TID251, configured in ruff.toml); the second test proves the
rule fires there and only there, so the boundary cannot silently lapse."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")

pytestmark = pytest.mark.skipif(RUFF is None, reason="ruff is in requirements-dev.txt")


def ruff(*args, stdin=None):
    return subprocess.run(
        [RUFF, *args], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_ruff_check_and_format_clean():
    check = ruff("check", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = ruff("format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.parametrize(
    "line", ["from ryu.lib import hub", "import webob", "import subprocess", "import eventlet"]
)
def test_core_is_pure(line):
    probe = f"{line}\n\nprint({line.split()[-1]})\n"
    inside = ruff(
        "check", "--select", "TID251", "--stdin-filename", "slb_ryu/core/x.py", "-", stdin=probe
    )
    assert inside.returncode == 1 and "TID251" in inside.stdout, inside.stdout
    outside = ruff(
        "check", "--select", "TID251", "--stdin-filename", "slb_ryu/openflow/x.py", "-", stdin=probe
    )
    assert outside.returncode == 0, outside.stdout

"""The wheel carries the runtime package (with its OpenAPI document) and nothing of the
lab: the test bed and the demo only work from a clone, next to mininet/."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_contents(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("slb_ryu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "slb_ryu/api/openapi.yaml" in names
    assert "slb_ryu/core/placement.py" in names
    assert not [n for n in names if n.startswith(("lab/", "tests/", "bench/", "mininet/"))]
    assert not [n for n in names if n.endswith(("testbed.py", "demo.py"))]

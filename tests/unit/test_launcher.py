"""`slb-ryu`: argument handling, check-config, --version, and the import-time Ryu fix
proven on an unpatched copy of Ryu."""

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import slb_ryu
from slb_ryu import launcher

REPO = Path(__file__).resolve().parents[2]
SETUP_VERSION = configparser.ConfigParser()
SETUP_VERSION.read(REPO / "setup.cfg")
VERSION = SETUP_VERSION["metadata"]["version"]


@pytest.fixture
def no_default_config(tmp_path, monkeypatch):
    path = tmp_path / "absent" / "slb-ryu.conf"
    monkeypatch.setattr(launcher, "DEFAULT_CONFIG", str(path))
    return path


@pytest.fixture
def default_config(tmp_path, monkeypatch):
    path = tmp_path / "slb-ryu.conf"
    path.write_text("[slb]\nuplinks = eth1, eth2\n")
    monkeypatch.setattr(launcher, "DEFAULT_CONFIG", str(path))
    return str(path)


# ---- arguments -------------------------------------------------------------------------


def test_default_config_file_is_read_when_none_is_given(default_config):
    assert launcher.ryu_argv(["--verbose"]) == [
        "--config-file",
        default_config,
        "--verbose",
        "slb_ryu.app",
    ]


@pytest.mark.parametrize(
    "given",
    [
        ["--config-file", "/x.conf"],
        ["--config-file=/x.conf"],
        ["--config-dir", "/etc/x"],
        ["--wsapi-port", "8110", "--config-dir=/etc/x"],
    ],
)
def test_a_given_config_replaces_the_default(given, default_config):
    assert launcher.ryu_argv(given) == [*given, "slb_ryu.app"]


def test_the_app_is_loaded_once_next_to_other_apps(default_config):
    argv = launcher.ryu_argv(["--config-file", "f", "ryu.app.ofctl_rest", "slb_ryu.app"])
    assert argv == ["--config-file", "f", "ryu.app.ofctl_rest", "slb_ryu.app"]


def test_no_config_at_all_is_a_usage_error(no_default_config, capsys):
    with pytest.raises(launcher.UsageError, match="no --config-file given"):
        launcher.ryu_argv([])
    assert launcher.main([]) == 2
    err = capsys.readouterr().err
    assert f"{no_default_config} does not exist" in err and "usage: slb-ryu" in err


def test_run_hands_the_arguments_to_ryu_manager(default_config, monkeypatch):
    calls = []
    fake = types.ModuleType("ryu.cmd.manager")
    fake.main = lambda args=None, prog=None: calls.append((args, prog))
    import ryu.cmd

    monkeypatch.setitem(sys.modules, "ryu.cmd.manager", fake)
    monkeypatch.setattr(ryu.cmd, "manager", fake, raising=False)
    assert launcher.main(["--ofp-tcp-listen-port", "6700"]) == 0
    argv = ["--config-file", default_config, "--ofp-tcp-listen-port", "6700", "slb_ryu.app"]
    assert calls == [(argv, "slb-ryu")]


def test_help_prints_usage(capsys):
    assert launcher.main(["--help"]) == 0
    assert "slb-ryu check-config [FILE ...]" in capsys.readouterr().out
    assert launcher.main(["check-config", "--help"]) == 2
    assert "file names only" in capsys.readouterr().err


# ---- version ---------------------------------------------------------------------------


def test_one_version_string_from_setup_cfg(capsys):
    assert slb_ryu.__version__ == VERSION
    assert launcher.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"slb-ryu {VERSION} (ryu 4.34, eventlet ")


# ---- check-config ----------------------------------------------------------------------


def test_check_config_ok_prints_a_summary(tmp_path, capsys):
    path = tmp_path / "ok.conf"
    path.write_text("[slb]\nuplinks = eth1, eth2\nbridge_uplinks = br0=eth3\nmax_moves = 3\n")
    assert launcher.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"ok: {path}: uplinks eth1, eth2; bridge_uplinks br0=eth3; REST on 127.0.0.1 "
        "(writes: open); changed from defaults: max_moves"
    ]


def test_check_config_prints_warnings_after_ok(tmp_path, capsys):
    path = tmp_path / "warn.conf"
    path.write_text("[slb]\nuplinks = eth1\nmin_dwell = 5\n")
    assert launcher.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"ok: {path}: ") and out[1].startswith("warning: [slb] min_dwell")
    assert len(out) == 2


def test_check_config_lists_every_problem_one_per_line(tmp_path, capsys):
    path = tmp_path / "bad.conf"
    path.write_text(
        "[DEFAULT]\nwsapi_host = 0.0.0.0\n"
        "[slb]\nuplinks = eth1,,eth2\napi_readonly = true\npacket_in_rate = 4294967296\n"
        "learning_repeat = 1000000\nlearning_repeat_interval = nan\ngrat_arp_lock = 0\n"
        "bridge_uplinks = br0=a\nbridge_uplinks = br0=b\nmax_moves = 3  # a few\n"
    )
    assert launcher.main(["check-config", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    expected = [
        "[slb] api_readonly: unknown option; did you mean api_read_only?",
        "[slb] packet_in_rate = 4294967296 is not allowed: an integer in 1..100000",
        "[slb] learning_repeat = 1000000 is not allowed: an integer in 1..10",
        "[slb] learning_repeat_interval = nan is not allowed: a number in 0.1..10",
        "[slb] grat_arp_lock = 0 is not allowed: a number in 1..60",
        "[slb] max_moves = 3  # a few is not allowed: an integer in 1..1000",
        "[slb] uplinks: empty port name",
        "[slb] bridge_uplinks: bridge 'br0' given twice",
    ]
    for line in expected:
        assert sum(o.startswith(line) for o in out) == 1, (line, out)
    assert len(out) == len(expected), out  # no REST exposure line: nothing valid to check


def test_check_config_refuses_open_rest_on_a_public_address(tmp_path, capsys):
    path = tmp_path / "open.conf"
    path.write_text("[DEFAULT]\nwsapi_host = 0.0.0.0\n[slb]\nuplinks = eth1\n")
    assert launcher.main(["check-config", str(path)]) == 1
    assert "[slb] api_token: REST API on non-loopback address" in capsys.readouterr().out


def test_check_config_missing_or_unparsable_file(tmp_path, no_default_config, capsys):
    assert launcher.main(["check-config"]) == 1
    assert capsys.readouterr().out == f"{no_default_config}: no such file\n"
    path = tmp_path / "garbled.conf"
    path.write_text("[slb]\nuplinks eth1\n")
    assert launcher.main(["check-config", str(path)]) == 1
    assert "No ':' or '=' found" in capsys.readouterr().out


def test_check_config_defaults_to_the_installed_file(default_config, capsys):
    assert launcher.main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {default_config}: uplinks eth1, eth2")


def test_the_sample_config_passes_once_uplinks_are_set(tmp_path, capsys):
    text = (REPO / "etc/slb-ryu.conf.sample").read_text().replace("#uplinks =", "uplinks = e1")
    path = tmp_path / "sample.conf"
    path.write_text(text)
    assert launcher.main(["check-config", str(path)]) == 0, capsys.readouterr().out


# ---- the Ryu / eventlet fix, at import time --------------------------------------------


def test_fix_eventlet_provides_already_handled(monkeypatch):
    import eventlet.wsgi

    monkeypatch.delattr(eventlet.wsgi, "ALREADY_HANDLED", raising=False)
    assert launcher.fix_eventlet() is True
    assert eventlet.wsgi.ALREADY_HANDLED is None
    assert launcher.fix_eventlet() is False


def unpatched_ryu(dest: Path) -> Path:
    """A copy of the installed Ryu with ryu/app/wsgi.py as Ryu 4.34 ships it (what
    scripts/patch_ryu.py changes, changed back). Put `dest` first on PYTHONPATH."""
    spec = importlib.util.spec_from_file_location("patch_ryu", REPO / "scripts" / "patch_ryu.py")
    patch_ryu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(patch_ryu)
    installed = patch_ryu.locate().parent.parent  # .../site-packages/ryu
    shutil.copytree(installed, dest / "ryu", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    wsgi = dest / "ryu" / "app" / "wsgi.py"
    wsgi.write_text(wsgi.read_text().replace(patch_ryu.NEW, patch_ryu.OLD))
    assert patch_ryu.OLD in wsgi.read_text()
    return dest


def python(code: str, overlay: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(overlay)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_launcher_makes_an_unpatched_ryu_import(tmp_path):
    overlay = unpatched_ryu(tmp_path)
    plain = python("import ryu.app.wsgi", overlay)
    assert plain.returncode != 0 and "ALREADY_HANDLED" in plain.stderr, plain.stderr
    fixed = python(
        "import slb_ryu.launcher, ryu.cmd.manager, ryu.app.wsgi as w; print(w.__file__)", overlay
    )
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == str(overlay / "ryu" / "app" / "wsgi.py")

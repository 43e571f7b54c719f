"""etc/bash_completion.d/slb-ctl: sourced in a real bash, asked like bash asks it, and
kept in step with slb_ryu/cli.py's parser (a new command or option fails here)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from api_fake import FakeApp, wsgi_app

from slb_ryu import cli

REPO = Path(__file__).resolve().parents[2]
COMPLETION = REPO / "etc" / "bash_completion.d" / "slb-ctl"


def complete(line: str, env: dict | None = None) -> list[str]:
    """COMPREPLY for the command line `line` (the cursor at its end)."""
    words = line.split(" ")
    script = (
        f"source {COMPLETION}\n"
        'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"\n'
        "_slb_ctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", script, "bash", *words],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=True,
    )
    assert not done.stderr, done.stderr
    return [w for w in done.stdout.split("\n") if w]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    actions = cli.parser()._subparsers._group_actions  # noqa: SLF001 - introspection
    return dict(actions[0].choices)


def test_commands_and_global_options():
    got = complete("slb-ctl ")
    assert set(subcommands()) <= set(got)
    assert {"--url", "--token", "--json", "--version"} <= set(got)
    assert complete("slb-ctl pl") == ["placement"]
    assert complete("slb-ctl --url http://x:1 up") == ["uplinks"]


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_option_of_every_command_completes(command):
    options = {
        opt
        for action in subcommands()[command]._actions  # noqa: SLF001
        for opt in action.option_strings
        if opt.startswith("--") and action.help != argparse.SUPPRESS
    }
    assert options <= set(complete(f"slb-ctl {command} --")), command


def test_event_types_and_no_guessing_values():
    assert "uplink-held" in complete("slb-ctl events --type uplink-h")
    assert complete("slb-ctl events --since ") == []
    assert complete("slb-ctl --token ") == []


def test_bridge_and_uplink_names_come_from_the_controller(tmp_path):
    httpd = make_server("127.0.0.1", 0, wsgi_app(FakeApp()), handler_class=WSGIRequestHandler)
    httpd.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        # slb-ctl on PATH: this interpreter running slb_ryu.cli.
        bindir = tmp_path / "bin"
        bindir.mkdir()
        shim = bindir / "slb-ctl"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m slb_ryu.cli "$@"\n')
        shim.chmod(0o755)
        env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
        env.pop("SLB_URL", None)
        assert complete(f"slb-ctl --url {url} uplinks --bridge ", env) == ["hv1", "hv2"]
        assert complete(f"slb-ctl --url {url} move 02:00:00:00:01:01 hv2-", env) == [
            "hv2-eth1",
            "hv2-eth2",
        ]
        env["SLB_URL"] = url
        assert "hv1-eth2" in complete("slb-ctl placement --uplink hv1", env)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_no_controller_means_no_names_and_no_error():
    env = {**os.environ, "SLB_URL": "http://127.0.0.1:9"}
    if shutil.which("slb-ctl") is None:
        env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    assert complete("slb-ctl uplinks --bridge ", env) == []

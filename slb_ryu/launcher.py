"""`slb-ryu`: the controller as one installed command.

    slb-ryu --version
    slb-ryu check-config [FILE ...]     exit 0 with an 'ok' summary, or 1 and every problem
    slb-ryu [RYU-MANAGER OPTIONS]       run the controller in this process

Running is `ryu-manager [OPTIONS] slb_ryu.app` in this process, with two differences: Ryu
4.34's incompatibility with current eventlet is fixed when this module is imported (no
installed file is edited), and /etc/slb-ryu/slb-ryu.conf is read when neither
--config-file nor --config-dir is given. `ryu-manager slb_ryu.app --config-file F` keeps
working as before (it needs scripts/patch_ryu.py; this command does not).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slb_ryu.options import Settings

DEFAULT_CONFIG = "/etc/slb-ryu/slb-ryu.conf"
APP = "slb_ryu.app"
USAGE = f"""\
usage: slb-ryu --version
       slb-ryu check-config [FILE ...]   (default FILE: {DEFAULT_CONFIG})
       slb-ryu [--config-file FILE] [ryu-manager options, e.g. --ofp-tcp-listen-port 6653
               --wsapi-port 8080 --wsapi-host 127.0.0.1 --verbose]

Runs the slb-ryu controller (ryu-manager {APP}) in this process; without --config-file
or --config-dir it reads {DEFAULT_CONFIG}. The [slb] options: etc/slb-ryu.conf.sample;
Ryu's options: ryu-manager --help.
"""


class UsageError(Exception):
    """The command line cannot be run; exit status 2."""


def fix_eventlet() -> bool:
    """Give eventlet.wsgi its ALREADY_HANDLED back (None) unless it has one; True if it
    had to.

    Ryu 4.34's ryu/app/wsgi.py does `from eventlet.wsgi import ALREADY_HANDLED`, a name
    eventlet >= 0.30.3 no longer has; Ryu master reads it with getattr(..., None), which
    this reproduces. Must run before ryu.app.wsgi is imported, hence at import time.
    """
    import eventlet.wsgi

    if hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
        return False
    eventlet.wsgi.ALREADY_HANDLED = None
    return True


fix_eventlet()


def version_line() -> str:
    """`slb-ryu --version`: ours (slb_ryu.__version__, from setup.cfg) and our stack's."""
    from slb_ryu import __version__

    parts = [f"{dist} {_dist_version(dist)}" for dist in ("ryu", "eventlet", "oslo.config")]
    python = ".".join(map(str, sys.version_info[:3]))
    return f"slb-ryu {__version__} ({', '.join(parts)}, Python {python})"


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def _gives_config(args: Sequence[str]) -> bool:
    flags = ("--config-file", "--config-dir")
    return any(a in flags or a.startswith(tuple(f + "=" for f in flags)) for a in args)


def ryu_argv(args: Sequence[str], default_config: str | None = None) -> list[str]:
    """The ryu-manager arguments for `slb-ryu ARGS`: the default config file when none is
    given, and the app (once)."""
    default_config = default_config or DEFAULT_CONFIG
    argv = list(args)
    if not _gives_config(argv):
        if not os.path.isfile(default_config):
            raise UsageError(
                f"no --config-file given and {default_config} does not exist "
                "(start from etc/slb-ryu.conf.sample)"
            )
        argv = ["--config-file", default_config, *argv]
    if APP not in argv:
        argv.append(APP)
    return argv


def check_config(files: Sequence[str], out: Callable[[str], None] = print) -> int:
    """0 and an 'ok' summary (plus any warnings), or 1 and every problem, one per line."""
    from oslo_config import cfg

    from slb_ryu import options

    if any(f.startswith("-") for f in files):
        raise UsageError(f"check-config takes file names only, not {list(files)}")
    files = list(files) or [DEFAULT_CONFIG]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        for f in missing:
            out(f"{f}: no such file")
        return 1
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.StrOpt("wsapi_host", default="0.0.0.0")])  # Ryu's, Ryu's default
    try:
        conf(
            args=[a for f in files for a in ("--config-file", f)],
            project="slb-ryu",
            default_config_files=[],
            default_config_dirs=[],
        )
    except cfg.Error as exc:
        out(f"{', '.join(files)}: {exc}")
        return 1
    settings, problems = options.problems_of(conf)
    for problem in problems:
        out(problem)
    if problems:
        return 1
    out(f"ok: {', '.join(files)}: {summary(settings, conf.wsapi_host)}")
    for warning in options.advice(settings):
        out(f"warning: {warning}")
    return 0


def summary(settings: Settings, host: str) -> str:
    """One line: the uplinks, the REST exposure and the options changed from defaults."""
    from dataclasses import fields

    from slb_ryu.options import Settings

    defaults = Settings()
    changed = [
        f.name
        for f in fields(settings)
        if getattr(settings, f.name) != getattr(defaults, f.name)
        and f.name not in ("uplinks", "bridge_uplinks")
    ]
    uplinks = ", ".join(settings.uplinks) or "(per bridge only)"
    per_bridge = "; ".join(f"{b}={','.join(u)}" for b, u in settings.bridge_uplinks.items())
    writes = "read-only" if settings.api_read_only else "token" if settings.api_token else "open"
    return (
        f"uplinks {uplinks}"
        + (f"; bridge_uplinks {per_bridge}" if per_bridge else "")
        + f"; REST on {host} (writes: {writes})"
        + f"; changed from defaults: {', '.join(changed) or 'none'}"
    )


def run(args: Sequence[str]) -> int:
    """ryu-manager's main, in this process, on the app."""
    argv = ryu_argv(args)
    from ryu.cmd import manager  # after fix_eventlet(): it imports ryu.app.wsgi

    return manager.main(args=argv, prog="slb-ryu") or 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point `slb-ryu`."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] in (["-h"], ["--help"]):
            print(USAGE)
            return 0
        if "--version" in args:
            print(version_line())
            return 0
        if args[:1] == ["check-config"]:
            return check_config(args[1:])
        return run(args)
    except UsageError as exc:
        print(f"slb-ryu: {exc}\n\n{USAGE}", file=sys.stderr)
        return 2

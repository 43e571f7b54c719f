#!/usr/bin/env python3
"""Idempotently patch the installed Ryu 4.34 so it imports with current eventlet.

``ryu/app/wsgi.py`` (Ryu 4.34, the last release) does::

    from eventlet.wsgi import ALREADY_HANDLED
    _ALREADY_HANDLED = ALREADY_HANDLED

``eventlet.wsgi.ALREADY_HANDLED`` is gone from eventlet >= 0.30.3, so
``ryu-manager`` dies at import time. Upstream Ryu master replaced it with a
``getattr(eventlet.wsgi, 'ALREADY_HANDLED', None)``; this script applies the
same change to the installed file.

The file is located through the installed distribution's metadata (falling
back to ``importlib.util.find_spec('ryu')``); ``ryu.app.wsgi`` itself is never
imported, because that import is exactly what fails. Run it with the venv's
interpreter. Exit status: 0 patched or already patched, 1 on any problem.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

TARGET = "ryu/app/wsgi.py"

OLD = "    from eventlet.wsgi import ALREADY_HANDLED\n    _ALREADY_HANDLED = ALREADY_HANDLED\n"
NEW = (
    "    import eventlet.wsgi  # patched by slb-ryu scripts/patch_ryu.py\n"
    "    _ALREADY_HANDLED = getattr(eventlet.wsgi, 'ALREADY_HANDLED', None)\n"
)


def locate() -> Path:
    """Return the path of the installed ryu/app/wsgi.py without importing it."""
    try:
        dist = importlib.metadata.distribution("ryu")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if str(f).replace("\\", "/") == TARGET:
                path = Path(dist.locate_file(f))
                if path.is_file():
                    return path
    spec = importlib.util.find_spec("ryu")  # imports only ryu/__init__.py
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("ryu is not installed in this interpreter")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "app" / "wsgi.py"
        if path.is_file():
            return path
    raise FileNotFoundError("ryu is installed but ryu/app/wsgi.py was not found")


def main() -> int:
    try:
        path = locate()
    except FileNotFoundError as exc:
        print(f"patch_ryu: ERROR: {exc}", file=sys.stderr)
        return 1
    text = path.read_text()
    if NEW in text:
        print(f"patch_ryu: {path}: already patched, nothing to do")
        return 0
    if OLD not in text:
        print(
            f"patch_ryu: ERROR: {path}: neither the original nor the patched "
            "ALREADY_HANDLED import found (unexpected Ryu version?)",
            file=sys.stderr,
        )
        return 1
    path.write_text(text.replace(OLD, NEW, 1))
    # Drop the stale bytecode so the next import recompiles the patched source.
    for pyc in (path.parent / "__pycache__").glob("wsgi.*.pyc"):
        pyc.unlink(missing_ok=True)
    print(
        f"patch_ryu: {path}: replaced 'from eventlet.wsgi import ALREADY_HANDLED' "
        "with getattr(eventlet.wsgi, 'ALREADY_HANDLED', None)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

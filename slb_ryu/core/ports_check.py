"""Does the configured uplink list fit the bridge? If not, the bridge is not managed.

A typo in `uplinks` turns a real uplink into a *local* port, and a broadcast from the
fabric then loops through the two stacked switches at thousands of frames/s. A glob
that matches every port, or a port that already carries VM MACs named as an uplink,
is as bad. So the controller compares the configuration with the ports the switch
reports and, on any mismatch, leaves the bridge with nothing but `drop_all_flow`
(the bridge is `fail_mode=secure`, so nothing floods) until the ports match.

Rules (see docs/security.md):
- every literal uplink name must be a port of the bridge; every glob must match one;
- a port that carries a MAC we learned as a local (VM) port cannot be an uplink;
- if every port but LOCAL would be an uplink, each of them must be named literally
  (a glob that swallows every port is refused; a host with no VM yet names its NICs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from slb_ryu.core import pipeline
from slb_ryu.core.pipeline import FlowSpec
from slb_ryu.core.placement import OFPP_LOCAL, Port, is_uplink_name

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def check_uplinks(
    patterns: Sequence[str], ports: Iterable[Port], learned_ports: Iterable[int] = ()
) -> list[str]:
    """What is wrong with `patterns` on a bridge with `ports`; empty when it fits.

    `learned_ports`: port numbers on which MACs were learned as local (VM) ports,
    from the switch's own flows or an earlier session.
    """
    ports = list(ports)
    names = sorted(p.name for p in ports if p.port_no != OFPP_LOCAL)
    have = ", ".join(names) or "none"
    problems = []
    for pattern in patterns:
        if is_glob(pattern):
            if not any(is_uplink_name(n, (pattern,)) for n in names):
                problems.append(f"uplink pattern {pattern!r} matches no port (ports: {have})")
        elif pattern not in names:
            problems.append(f"configured uplink {pattern} is not a port (ports: {have})")
    uplinks = [p for p in ports if p.port_no != OFPP_LOCAL and is_uplink_name(p.name, patterns)]
    learned = set(learned_ports)
    for port in uplinks:
        if port.port_no in learned:
            problems.append(
                f"port {port.name} is configured as an uplink but carries learned VM MACs "
                "(a VM port listed as an uplink would forward other VMs' traffic to it)"
            )
    locals_ = [n for n in names if not is_uplink_name(n, patterns)]
    by_glob = sorted(p.name for p in uplinks if p.name not in patterns)
    if uplinks and not locals_ and by_glob:
        problems.append(
            f"uplink pattern(s) {', '.join(p for p in patterns if is_glob(p))} match every "
            f"port of the bridge ({have}): name the uplinks explicitly"
        )
    return problems


def drop_all_flow() -> FlowSpec:
    """The only flow of a bridge we refuse to manage: drop everything, with our cookie."""
    return FlowSpec(pipeline.TABLE_CLASSIFY, 0, (), pipeline.cookie(pipeline.KIND_DROP))

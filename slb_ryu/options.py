"""Configuration: the `[slb]` options, each defined once, in `OPTS`.

An option is one oslo.config `Opt`: its bounds (`min`/`max`, enforced by oslo), a help
text that says what it means and why its bounds are what they are (`why`), and, when the
core consumes it, the core parameter it feeds (`feeds`). Everything else is derived from
that list: the `Settings` dataclass, `Settings.rebalance_params()` and `.limits()`, the
README option table (`markdown_table()`) and etc/slb-ryu.conf.sample (`sample_config()`);
`python -m slb_ryu.options --write` regenerates both, and a unit test fails when they
drift from the code.

Invalid configuration raises `ConfigError`; its `problems` name every mistake, one line
each, each starting with `[slb] <option>`, so the controller refuses to start (and
`slb-ryu check-config` lists them all) instead of running with a half-understood setup.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import Any

from oslo_config import cfg, types

from slb_ryu.core.bridge import Limits
from slb_ryu.core.probe import ProbeTarget, parse_target
from slb_ryu.core.rebalance import RebalanceParams

GROUP = "slb"
MAX_NAME = 255  # OVSDB port names have no fixed limit; longer than this is a mistake
_NAME = re.compile(r"[A-Za-z0-9_.@+\-*?\[\]!]+")  # port names and fnmatch globs


class Finite(types.Float):
    """oslo's Float, refusing NaN too (NaN passes every min/max comparison) and, with
    `off_below`, the values between 0 (= off) and `off_below`."""

    def __init__(self, min: float, max: float, off_below: float | None = None) -> None:
        super().__init__(min=min, max=max)
        self.off_below = off_below

    def __call__(self, value: Any) -> float | None:
        number = super().__call__(value)
        if number is not None and math.isnan(number):
            raise ValueError("Should be a number, not NaN")
        if number is not None and self.off_below and 0 < number < self.off_below:
            raise ValueError(f"Should be 0 (off) or at least {self.off_below:g}")
        return number


class FloatOpt(cfg.Opt):
    """A float option with finite bounds (see `Finite`)."""

    def __init__(
        self, name: str, min: float, max: float, off_below: float | None = None, **kw: Any
    ) -> None:
        super().__init__(name, type=Finite(min, max, off_below), **kw)


def allowed(opt: cfg.Opt) -> str:
    """The allowed values of an option, for messages and the docs."""
    t = opt.type
    if isinstance(t, types.Number) and t.min is not None:
        kind = "an integer" if isinstance(t, types.Integer) else "a number"
        if getattr(t, "off_below", None):
            return f"0 (off) or {kind} in {t.off_below:g}..{t.max:g}"
        return f"{kind} in {t.min:g}..{t.max:g}"
    if isinstance(t, types.Boolean):
        return "true or false"
    return {
        types.List: "comma-separated port names",
        types.Dict: "comma-separated name:value pairs",
        types.MultiString: "one BRIDGE=port,port line per bridge",
    }.get(type(t), "a string")


def _opt(opt: cfg.Opt, why: str = "", feeds: str | None = None, convert: Any = None) -> cfg.Opt:
    """Attach our metadata to an oslo option: `why` (the reason for its bounds; the help
    gets 'Allowed: <range>; <why>'), `feeds` ('limits.<field>' or 'rebalance.<field>' of
    the core), `convert` (typed value -> Settings value, appending problems to a list)."""
    opt.why, opt.feeds, opt.convert = why, feeds, convert
    if isinstance(opt.type, types.Number):
        opt.help = f"{opt.help} Allowed: {allowed(opt)}" + (f"; {why}" if why else ".")
    elif why:
        opt.help = f"{opt.help} {why}"
    return opt


def _int(name: str, default: int, lo: int, hi: int, help: str, why: str, **meta: Any) -> cfg.Opt:
    return _opt(cfg.IntOpt(name, default=default, min=lo, max=hi, help=help), why, **meta)


def _float(
    name: str,
    default: float,
    lo: float,
    hi: float,
    help: str,
    why: str,
    off_below: float = 0,
    **meta: Any,
) -> cfg.Opt:
    opt = FloatOpt(name, lo, hi, off_below, default=default, help=help)
    return _opt(opt, why, **meta)


def _bool(name: str, default: bool, help: str) -> cfg.Opt:
    return _opt(cfg.BoolOpt(name, default=default, help=help))


def _name_ok(name: str, option: str, problems: list[str], what: str = "port name") -> bool:
    """A port name or glob: no comment, no odd characters (refused with a reason)."""
    if "#" in name:
        problems.append(
            f"[slb] {option}: '#' in {name!r}: oslo.config has no inline comments, "
            "put the comment on its own line"
        )
    elif len(name) > MAX_NAME or not _NAME.fullmatch(name):
        problems.append(
            f"[slb] {option}: odd {what} {name!r}: allowed are letters, digits, "
            f"'_.@+-' and the globs '*?[]!', at most {MAX_NAME} characters"
        )
    else:
        return True
    return False


def _port_names(items: Iterable[str], option: str, problems: list[str]) -> tuple[str, ...]:
    """Names separated by commas or spaces; refuses empty entries, odd or repeated names."""
    names: list[str] = []
    for item in items:
        if not item.strip():
            problems.append(f"[slb] {option}: empty port name (a doubled or trailing comma?)")
        for name in item.split():
            if name in names:
                problems.append(f"[slb] {option}: port {name!r} listed twice")
            elif _name_ok(name, option, problems):
                names.append(name)
    return tuple(names)


def _uplinks(raw: list[str], problems: list[str]) -> tuple[str, ...]:
    return _port_names(raw, "uplinks", problems) if raw else ()


def _bridge_key(raw: str, problems: list[str], option: str = "bridge_uplinks") -> str | None:
    key = raw.strip().lower()
    if not key:
        problems.append(f"[slb] {option}: missing bridge name before '='")
        return None
    if key.startswith("0x") or key.isdigit():
        try:
            dpid = int(key, 0 if key.startswith("0x") else 10)
        except ValueError:
            dpid = -1
        if not 0 <= dpid < 2**64:
            problems.append(f"[slb] {option}: bad datapath id {raw.strip()!r} (64 bits)")
            return None
        return str(dpid)
    return key if _name_ok(key, option, problems, "bridge name") else None


def _bridge_uplinks(raw: list[str], problems: list[str]) -> dict[str, tuple[str, ...]]:
    per_bridge: dict[str, tuple[str, ...]] = {}
    lines: dict[str, str] = {}
    for line in raw:
        if "=" not in line:
            problems.append(f"[slb] bridge_uplinks: {line!r} is not of the form BRIDGE=port,port")
            continue
        bridge, _, names = line.partition("=")
        key = _bridge_key(bridge, problems)
        if not names.strip():
            problems.append(f"[slb] bridge_uplinks: {line!r}: empty uplink list")
            continue
        uplinks = _port_names(names.split(","), "bridge_uplinks", problems)
        if key is None:
            continue
        if key in per_bridge:
            problems.append(
                f"[slb] bridge_uplinks: bridge {bridge.strip()!r} given twice ({lines[key]!r} "
                f"and {line!r}); one line per bridge"
            )
            continue
        per_bridge[key], lines[key] = uplinks, line
    return per_bridge


def _targets(items: Iterable[str], problems: list[str], option: str) -> tuple[ProbeTarget, ...]:
    targets = []
    for item in items:
        if item.strip():
            try:
                targets.append(parse_target(item))
            except ValueError as exc:
                problems.append(f"[slb] {option}: {exc}")
    return tuple(dict.fromkeys(targets))


def _probe_targets(raw: list[str], problems: list[str]) -> tuple[ProbeTarget, ...]:
    return _targets(raw or [], problems, "probe_targets")


def _bridge_probe_targets(
    raw: list[str], problems: list[str]
) -> dict[str, tuple[ProbeTarget, ...]]:
    per_bridge: dict[str, tuple[ProbeTarget, ...]] = {}
    for line in raw or []:
        if "=" not in line:
            problems.append(
                f"[slb] bridge_probe_targets: {line!r} is not of the form BRIDGE=IP[@VLAN],..."
            )
            continue
        bridge, _, items = line.partition("=")
        key = _bridge_key(bridge, problems, "bridge_probe_targets")
        targets = _targets(items.split(","), problems, "bridge_probe_targets")
        if key is None:
            continue
        if key in per_bridge:
            problems.append(f"[slb] bridge_probe_targets: bridge {bridge.strip()!r} given twice")
            continue
        per_bridge[key] = targets
    return per_bridge


def _per_port(
    raw: dict[str, Any],
    option: str,
    parse: Callable[[str], Any],
    lo: float,
    hi: float,
    what: str,
    problems: list[str],
) -> dict[str, Any]:
    """A {port: number} option; every bad entry is reported."""
    out = {}
    for name, text in raw.items():
        _name_ok(name.strip(), option, problems)
        try:
            value = parse(str(text).strip())
        except ValueError:
            value = math.nan
        if lo <= value <= hi:  # False for NaN
            out[name.strip()] = value
        else:
            problems.append(f"[slb] {option}: {name} = {text} is not allowed: {what}")
    return out


def _speeds(raw: dict[str, str], problems: list[str]) -> dict[str, int]:
    mbps = _per_port(raw, "uplink_speeds", float, 1e-3, 1e6, "Mbit/s in 0.001..1e6", problems)
    return {name: int(value * 1_000_000) for name, value in mbps.items()}


def _access(raw: dict[str, str], problems: list[str]) -> dict[str, int]:
    return _per_port(raw, "access_ports", int, 1, 4094, "a VLAN id in 1..4094", problems)


def _token(raw: str | None, problems: list[str]) -> str | None:
    if raw and any(c.isspace() for c in raw):
        problems.append(
            "[slb] api_token: contains whitespace; oslo.config has no inline comments, so "
            "'TOKEN  # comment' makes the comment part of the token"
        )
    return raw or None


# The option table, kept compact by hand (ruff format would put every argument on its own
# line): one entry per option; everything else is derived from it.
# fmt: off
OPTS: list[cfg.Opt] = [
    _opt(
        cfg.ListOpt("uplinks", default=[], help="Uplink port names (globs allowed) for "
                    "every bridge, e.g. 'eth1, eth2'; no empty or repeated names."),
        convert=_uplinks,
    ),
    _opt(
        cfg.MultiStrOpt("bridge_uplinks", default=[], help="Per-bridge uplinks, one "
                        "'BRIDGE=name,name' line per bridge; BRIDGE is the bridge name or its "
                        "datapath id (0x-hex or decimal). Overrides 'uplinks' for that bridge."),
        "The same bridge on two lines is refused (oslo would silently keep the last).",
        convert=_bridge_uplinks,
    ),
    _opt(
        cfg.DictOpt("uplink_speeds", default={}, help="Link speed overrides in Mbit/s by port "
                    "name, e.g. 'eth1:10000, eth2:1000' (default: the speed the switch reports)."),
        "Each in 0.001..1e6: above 1 Tbit/s is a unit mistake that would skew the balance.",
        convert=_speeds,
    ),
    _float("stats_interval", 5.0, 0, 3600, "Seconds between flow stats polls (0 = off).",
           "faster polls of a big flow table keep the controller busy, slower ones leave the "
           "loads meaningless. Above 1,000 MACs on a bridge a poll is asked for in up to 16 "
           "shards spread over 0.8 x this interval (openflow/stats.py).", off_below=0.5),
    _float("load_half_life", 10.0, 0.1, 3600, "Seconds after which a load sample weighs half.",
           "shorter is noise, longer never reacts."),
    _float("rebalance_interval", 10.0, 0, 86400, "Seconds between rebalance runs (0 = off).",
           "a run needs fresh load samples.", off_below=1),
    _float("rebalance_min_gain", 0.10, 0, 1, "A move must shrink its uplink pair's "
           "speed-normalised excess by at least this fraction of the best possible move "
           "(OVS: 10%), unless the MAC carries >= rebalance_min_load without overshooting; "
           "applied per move, not per run.", "", feeds="rebalance.min_gain"),
    _float("rebalance_min_load", 12500.0, 0, 1.25e11, "Bytes/s below which load is noise: "
           "nothing moves off an uplink carrying less, nor between two equal-speed uplinks "
           "whose loads differ by less.", "1.25e11 bytes/s is 1 Tbit/s.",
           feeds="rebalance.min_load"),
    _float("min_dwell", 30.0, 0, 86400, "Seconds a MAC stays on its uplink after a move "
           "(bounds upstream MAC flapping).", "keep it >= rebalance_interval.",
           feeds="rebalance.min_dwell"),
    _int("max_moves", 8, 1, 1000, "Moves per rebalance run when little needs doing: the "
         "floor of the run's budget, which grows with the gap (see max_burst).",
         "each move costs flow-mods and learning packets.", feeds="rebalance.max_moves"),
    _int("max_burst", 1000, 1, 100000, "Ceiling of moves in one rebalance run, however large "
         "the gap (a returning uplink at 10,000 MACs needs hundreds).",
         "a run must end well within its interval; every move is flow-mods and learning "
         "packets, and upstream switches re-learn each MAC.", feeds="rebalance.max_burst"),
    _int("spread_runs", 1, 1, 100, "A large rebalance of N moves is spread over this many runs "
         "(ceil(N / spread_runs) per run; 1 = all at once, up to max_burst).",
         "more spreads upstream MAC re-learning thinner but takes that many intervals.",
         feeds="rebalance.spread_runs"),
    _float("swap_gain", 0.25, 0, 1, "A swap (two MACs trade uplinks, tried when no single move "
           "helps) must close at least this fraction of the pair's gap.",
           "a swap moves two MACs, so it must earn more than a move.",
           feeds="rebalance.swap_gain"),
    _bool("learning_packets", True, "Send GARP/RARP through the new uplink on a move."),
    _int("learning_repeat", 2, 1, 10, "Times the learning packets of a move are sent (frames "
         "still queued on the old uplink can re-teach the old switch after the first one).",
         "1000000 blocked the controller for 30 s and grew it to 1.8 GB."),
    _float("learning_repeat_interval", 1.0, 0.1, 10, "Seconds between learning packet "
           "repeats.", "NaN stopped the timers; later than 10 s is no longer the same move."),
    _int("event_log_size", 1000, 1, 100000, "Events kept for GET /slb/v1/events.",
         "the ring is kept in memory."),
    _opt(
        cfg.StrOpt("api_token", default=None, secret=True, help="Bearer token required by "
                   "the REST write endpoints (default: none)."),
        "No whitespace (it travels in an HTTP header; a '# comment' after it would be part "
        "of it).",
        convert=_token,
    ),
    _bool("api_read_only", False, "Disable the REST write endpoints."),
    _opt(
        cfg.DictOpt("access_ports", default={}, help="Access VLAN of local ports by name, "
                    "e.g. 'vif1.0:10, vif2.0:20' (adds to, and overrides, the OVSDB 'tag' "
                    "of the port)."),
        "Each VLAN in 1..4094.",
        convert=_access,
    ),
    _bool("ovsdb_tags", True, "Read access VLANs from the OVSDB 'tag' of each port "
          "(ovs-vsctl set port vif1.0 tag=10), every 5 s."),
    _int("max_macs_per_port", 64, 1, 100000, "MACs learned per local port at most.",
         "every MAC costs five flows; a MAC flood must not fill the flow table (a bridge "
         "carrying containers or a router VM may legitimately need thousands).",
         feeds="limits.max_macs_per_port"),
    _int("packet_in_rate", 200, 1, 100000, "Packets per second each local port (and, "
         "separately, path probing) may make the switch send to the controller (one "
         "OpenFlow meter each).", "the meter protects the controller, which cannot "
         "take more; 4294967296 overflowed the meter and left a bridge without flows.",
         feeds="limits.packet_in_rate"),
    _float("grat_arp_lock", 5.0, 1, 60, "Seconds after we announce a MAC during which a "
           "gratuitous ARP for it arriving on an uplink is our own reflection, not a "
           "migration.", "with 0 the echo of our own GARP made the controller forget a VM; a "
           "real migration inside the lock is only noticed when it ends.",
           feeds="limits.grat_arp_lock"),
    _int("flap_limit", 4, 1, 100, "Link downs within flap_window that hold an uplink.",
         "", feeds="limits.flap_limit"),
    _float("flap_window", 10.0, 0.1, 3600, "Seconds over which uplink flaps count.", "",
           feeds="limits.flap_window"),
    _float("flap_hold", 30.0, 0, 3600, "Seconds of quiet before a held uplink is used again.",
           "longer than an hour runs the bond on one leg for no reason.",
           feeds="limits.flap_hold"),
    _int("mac_idle_timeout", 300, 0, 65535, "Seconds after which a (MAC, VLAN) that sent "
         "nothing is forgotten, its flows and its place in the per-port limit included "
         "(OVS's mac-aging-time; 0 = never). Snooped IP addresses unused for as long go too.",
         "65535 is OpenFlow's largest idle timeout.", feeds="limits.mac_idle_timeout"),
    _int("guard_window", 5, 0, 3600, "Seconds during which a source MAC seen on an uplink may "
         "not be learned on a local port (hijack and loop guard, kept in the datapath; "
         "0 = off).", "longer keeps a migrated-in VM's MAC blocked that long.",
         feeds="limits.guard_window"),
    _int("max_ips_per_mac", 4, 1, 64, "Snooped IPv4 addresses kept per MAC (each gets a "
         "gratuitous ARP on a move).", "a VM ARPing from random addresses must not make one "
         "move send thousands of GARPs.", feeds="limits.max_ips_per_mac"),
    _bool("port_security", True, "A local port whose OVSDB interface has "
          "external_ids:attached-mac (set by XenServer and OpenStack on VIFs) learns and "
          "forwards only that MAC."),
    _opt(
        cfg.ListOpt("probe_targets", default=[], help="Path probing (gray failures): IPv4 "
                    "addresses to ARP for out of every uplink, e.g. the default gateway; "
                    "'IP@VLAN' probes on a tagged VLAN. Empty = off."),
        "Unicast IPv4 only; VLAN in 1..4094.",
        convert=_probe_targets,
    ),
    _opt(
        cfg.MultiStrOpt("bridge_probe_targets", default=[], help="Per-bridge probe targets, "
                        "one 'BRIDGE=IP[@VLAN],...' line per bridge (BRIDGE as in "
                        "bridge_uplinks); overrides probe_targets for that bridge ('BRIDGE=' "
                        "turns probing off there)."),
        "The same bridge on two lines is refused.",
        convert=_bridge_probe_targets,
    ),
    _float("probe_interval", 0.2, 0.05, 60, "Seconds between probe rounds (one ARP request "
           "per target per uplink).", "faster floods the fabric with ARP, slower detects a "
           "gray failure late."),
    _int("probe_misses", 3, 1, 100, "Rounds in a row without a reply that make an uplink "
         "path-dead (only while another uplink still gets replies).", ""),
    _int("probe_recover", 5, 1, 1000, "Rounds in a row with a reply that bring a path-dead "
         "uplink back.", ""),
    _bool("bfd", False, "Read the OVS BFD state (OVSDB bfd_status) of the uplinks every "
          "0.5 s: an uplink whose session went down is path-dead. Enable BFD per uplink with "
          "'ovs-vsctl set interface eth1 bfd:enable=true' (the switch must speak BFD)."),
]
# fmt: on
BY_NAME = {opt.dest: opt for opt in OPTS}


class ConfigError(ValueError):
    """The configuration cannot be used; `problems` has one line per mistake."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


# ---- Settings: derived from OPTS ---------------------------------------------------------

_PY_TYPES = {types.Integer: int, types.Float: float, types.Boolean: bool, types.String: str}


def _field_type(opt: cfg.Opt) -> Any:
    if opt.convert is not None:
        return typing.get_type_hints(opt.convert)["return"]
    py = next(t for k, t in _PY_TYPES.items() if isinstance(opt.type, k))
    return py | None if opt.default is None else py


def _field_default(opt: cfg.Opt) -> Any:
    if opt.convert is None:
        return field(default=opt.default, repr=not opt.secret)
    value = opt.convert(opt.default, [])
    if isinstance(value, dict):
        return field(default_factory=dict, repr=not opt.secret)
    return field(default=value, repr=not opt.secret)


def _uplinks_for(self: Any, dpid: int, name: str) -> tuple[str, ...]:
    """Uplink globs of one bridge: per-bridge entry by name or dpid, else the global list."""
    for key in (name.lower(), str(dpid)):
        if key and key in self.bridge_uplinks:
            return self.bridge_uplinks[key]
    return self.uplinks


def _probe_targets_for(self: Any, dpid: int, name: str) -> tuple[ProbeTarget, ...]:
    """Probe targets of one bridge: per-bridge entry by name or dpid, else the global."""
    for key in (name.lower(), str(dpid)):
        if key and key in self.bridge_probe_targets:
            return self.bridge_probe_targets[key]
    return self.probe_targets


def _fed(self: Any, target: str) -> dict[str, Any]:
    return {
        o.feeds.partition(".")[2]: getattr(self, o.dest)
        for o in OPTS
        if o.feeds and o.feeds.startswith(target + ".")
    }


def _rebalance_params(self: Any) -> RebalanceParams:
    """The rebalance parameters the core uses (fields not set here keep their default)."""
    return RebalanceParams(**_fed(self, "rebalance"))


def _limits(self: Any) -> Limits:
    """The protection limits the core uses."""
    return Limits(**_fed(self, "limits"))


Settings = make_dataclass(
    "Settings",
    [(o.dest, _field_type(o), _field_default(o)) for o in OPTS],
    frozen=True,
    namespace={
        "__doc__": "Validated [slb] options, one field per entry of OPTS.",
        "uplinks_for": _uplinks_for,
        "probe_targets_for": _probe_targets_for,
        "rebalance_params": _rebalance_params,
        "limits": _limits,
    },
)
Settings.__module__ = __name__


# ---- validation ---------------------------------------------------------------------------


def _bad_value(opt: cfg.Opt, shown: Any) -> str:
    shown = "***" if opt.secret else shown
    return f"[slb] {opt.dest} = {shown} is not allowed: {allowed(opt)}"


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), BY_NAME, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"[slb] {name}: unknown option{hint}"


def validate(
    raw: dict[str, Any], shown: dict[str, str] | None = None
) -> tuple[Settings | None, list[str]]:
    """(Settings or None, problems) from raw values (plain data or oslo-typed); `shown`
    is the text to quote per option (what the file said)."""
    problems = [_unknown(name) for name in raw if name not in BY_NAME]
    values: dict[str, Any] = {}
    for name, value in raw.items():
        opt = BY_NAME.get(name)
        if opt is None:
            continue
        text = (shown or {}).get(name, value)
        try:
            if value is None:
                typed = None
            elif opt.multi:
                typed = [opt.type(v) for v in ([value] if isinstance(value, str) else value)]
            else:
                typed = opt.type(value)
        except ValueError:
            problems.append(_bad_value(opt, text))
            continue
        if typed is None and opt.default is not None:
            problems.append(_bad_value(opt, "(empty)"))
            continue
        if isinstance(opt.type, types.Integer) and isinstance(value, float | bool):
            problems.append(_bad_value(opt, text))
            continue
        values[name] = typed if opt.convert is None else opt.convert(typed, problems)
    quiet = any(p.startswith(("[slb] uplinks", "[slb] bridge_uplinks")) for p in problems)
    if not values.get("uplinks") and not values.get("bridge_uplinks") and not quiet:
        problems.append(
            "[slb] uplinks: no uplinks configured: set 'uplinks' (e.g. uplinks = eth1, eth2) "
            "or 'bridge_uplinks' (e.g. bridge_uplinks = br0=eth1,eth2)"
        )
    return (None if problems else Settings(**values)), problems


def build_settings(**raw: Any) -> Settings:
    """Settings from raw option values (plain data, so it is unit-testable)."""
    settings, problems = validate(raw)
    if problems:
        raise ConfigError(problems)
    return settings


def advice(settings: Settings) -> list[str]:
    """Allowed but unwise combinations: warnings for the log and `slb-ryu check-config`."""
    out = []
    if 0 < settings.min_dwell < settings.rebalance_interval:
        out.append(
            f"[slb] min_dwell ({settings.min_dwell:g} s) < rebalance_interval "
            f"({settings.rebalance_interval:g} s): a MAC moved in one run may be moved back "
            "in the next; keep min_dwell >= rebalance_interval"
        )
    if settings.rebalance_interval and not settings.stats_interval:
        out.append(
            "[slb] rebalance_interval is set but stats_interval = 0: with no load samples "
            "a rebalance never moves anything"
        )
    return out


def exposure_problems(settings: Settings, host: str) -> list[str]:
    """Write endpoints on a non-loopback address need a token (or read-only mode)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or settings.api_read_only or settings.api_token:
        return []
    return [
        f"[slb] api_token: REST API on non-loopback address {host!r} with write endpoints "
        "and no [slb] api_token: set api_token, or api_read_only = true, or bind to 127.0.0.1"
    ]


def check_api_exposure(settings: Settings, host: str) -> None:
    """Refuse write endpoints on a non-loopback address without a token."""
    problems = exposure_problems(settings, host)
    if problems:
        raise ConfigError(problems)


# ---- oslo.config: registration, the files, load ------------------------------------------


def register(conf: cfg.ConfigOpts) -> None:
    """Register the [slb] options and make the REST API loopback-only by default."""
    try:
        conf.register_opts(OPTS, group=GROUP)
    except cfg.DuplicateOptError:
        pass
    try:
        conf.set_default("wsapi_host", "127.0.0.1")
    except cfg.NoSuchOptError:
        pass


def config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files oslo read, in order: --config-file ones, then --config-dir/*.conf."""
    files = list(getattr(conf, "config_file", None) or [])
    for folder in getattr(conf, "config_dir", None) or []:
        files += sorted(str(p) for p in Path(folder).glob("*.conf"))
    return files


def file_problems(paths: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """What oslo would silently ignore: unknown keys in [slb], a key given twice in one
    file, [slb] options put in [DEFAULT]. Also returns the raw text of each option."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    for path in paths:
        sections: dict[str, dict[str, list[str]]] = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        for key, lines in sections.get(GROUP, {}).items():
            opt = BY_NAME.get(key)
            if opt is None:
                problems.append(f"{_unknown(key)} ({path})")
                continue
            texts[key] = lines[-1]
            if len(lines) > 1 and not opt.multi:
                problems.append(
                    f"[slb] {key}: given {len(lines)} times in {path} "
                    f"({', '.join(map(repr, lines))}); oslo would keep only the last"
                )
        for key in sections.get("DEFAULT", {}):
            if key in BY_NAME:
                problems.append(f"[slb] {key}: found in [DEFAULT] of {path}; move it to [slb]")
    return problems, texts


def problems_of(conf: cfg.ConfigOpts) -> tuple[Settings | None, list[str]]:
    """(Settings or None, every problem) of the [slb] group of a parsed ConfigOpts."""
    register(conf)
    problems, texts = file_problems(config_files(conf))
    raw: dict[str, Any] = {}
    for opt in OPTS:
        try:
            raw[opt.dest] = getattr(conf[GROUP], opt.dest)
        except (cfg.Error, ValueError):
            problems.append(_bad_value(opt, texts.get(opt.dest, "?")))
    settings, more = validate(raw, texts)
    problems += [p for p in more if p not in problems]
    if settings is not None:
        problems += exposure_problems(settings, getattr(conf, "wsapi_host", "127.0.0.1"))
    return (None if problems else settings), problems


def load(conf: cfg.ConfigOpts) -> Settings:
    """Read and validate the [slb] group of Ryu's CONF; raises ConfigError."""
    settings, problems = problems_of(conf)
    if problems:
        raise ConfigError(problems)
    return settings


# ---- documentation: derived from OPTS -----------------------------------------------------

TABLE_BEGIN = "<!-- options table: generated by `python -m slb_ryu.options --write` -->"
TABLE_END = "<!-- end of options table -->"
SAMPLE_PATH = "etc/slb-ryu.conf.sample"
SAMPLE_HEADER = """\
# slb-ryu configuration: the [slb] options with their defaults (commented out).
# Generated from slb_ryu/options.py by `python -m slb_ryu.options --write`; do not edit.
#
# Copy to /etc/slb-ryu/slb-ryu.conf, set `uplinks` (or `bridge_uplinks`) and check it
# with `slb-ryu check-config /etc/slb-ryu/slb-ryu.conf`. Unknown option names, an
# option given twice and out-of-range values are refused at start, each named.
#
# oslo.config has NO inline comments: in `api_token = s3cret  # ops token` the
# `# ops token` becomes part of the value. Comments go on their own line (# or ;).
#
# Ryu's own options go in [DEFAULT] or on the command line: ofp_tcp_listen_port
# (6653), wsapi_port (8080), wsapi_host (127.0.0.1 with slb-ryu; Ryu's is 0.0.0.0).
"""


def default_text(opt: cfg.Opt) -> str:
    """An option's default as it would be written in the file ('' when none)."""
    d = opt.default
    if isinstance(d, bool):
        return str(d).lower()
    if isinstance(d, float):
        return f"{d:g}"
    if isinstance(d, list | tuple):
        return ", ".join(map(str, d))
    if isinstance(d, dict):
        return ", ".join(f"{k}:{v}" for k, v in d.items())
    return "" if d is None else str(d)


def markdown_table() -> str:
    """The README's option table."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for opt in OPTS:
        default = f"`{default_text(opt)}`" if default_text(opt) else "(none)"
        rows.append(f"| `{opt.dest}` | {default} | {opt.help} |")
    return "\n".join(rows) + "\n"


def sample_config() -> str:
    """etc/slb-ryu.conf.sample: every option, its help, allowed values and default."""
    import textwrap

    lines = [SAMPLE_HEADER, f"[{GROUP}]"]
    for opt in OPTS:
        lines.append("")
        lines += ["# " + line for line in textwrap.wrap(opt.help, 86)]
        lines.append(f"#{opt.dest} = {default_text(opt)}".rstrip())
    return "\n".join(lines) + "\n"


def readme_with_table(readme: str) -> str:
    """README text with the generated table between its markers."""
    head, begin, rest = readme.partition(TABLE_BEGIN)
    _, end, tail = rest.partition(TABLE_END)
    if not begin or not end:
        raise ValueError(f"README has no {TABLE_BEGIN!r} ... {TABLE_END!r} section")
    return f"{head}{TABLE_BEGIN}\n{markdown_table()}{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """python -m slb_ryu.options --table | --sample | --write [REPO]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m slb_ryu.options", description=main.__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", action="store_true", help="print the README option table")
    what.add_argument("--sample", action="store_true", help="print the sample config file")
    what.add_argument(
        "--write",
        metavar="REPO",
        nargs="?",
        const=".",
        help=f"rewrite REPO/README.md's table and REPO/{SAMPLE_PATH} (default: .)",
    )
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(), end="")
    elif args.sample:
        print(sample_config(), end="")
    else:
        repo = Path(args.write)
        readme = repo / "README.md"
        readme.write_text(readme_with_table(readme.read_text()))
        (repo / SAMPLE_PATH).parent.mkdir(parents=True, exist_ok=True)
        (repo / SAMPLE_PATH).write_text(sample_config())
        print(f"wrote {readme} (option table) and {repo / SAMPLE_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

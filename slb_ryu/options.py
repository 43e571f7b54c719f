"""Configuration: oslo.config options in the `[slb]` group, validated into `Settings`.

Invalid configuration raises `ConfigError` with a message that names the option, so
the controller stops at start instead of running with a half-understood setup.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from typing import Any

from oslo_config import cfg

from slb_ryu.core.probe import ProbeTarget, parse_target

OPTS = [
    cfg.ListOpt(
        "uplinks",
        default=[],
        help="Uplink port names (globs allowed) for every bridge, e.g. 'eth1, eth2'.",
    ),
    cfg.MultiStrOpt(
        "bridge_uplinks",
        default=[],
        help="Per-bridge uplinks, one 'BRIDGE=name,name' per line; BRIDGE is the bridge "
        "name or its datapath id (0x-hex or decimal). Overrides 'uplinks' for that bridge.",
    ),
    cfg.DictOpt(
        "uplink_speeds",
        default={},
        help="Link speed overrides in Mbit/s by port name, e.g. 'eth1:10000, eth2:1000' "
        "(default: the speed the switch reports).",
    ),
    cfg.FloatOpt("stats_interval", default=5.0, help="Seconds between flow stats polls (0 = off)."),
    cfg.FloatOpt("load_half_life", default=10.0, help="Seconds for a load sample to weigh half."),
    cfg.FloatOpt("rebalance_interval", default=10.0, help="Seconds between rebalances (0 = off)."),
    cfg.FloatOpt(
        "rebalance_min_gain",
        default=0.10,
        help="Commit a rebalance only if it lowers the busiest uplink's normalised load by "
        "at least this fraction.",
    ),
    cfg.FloatOpt(
        "rebalance_min_load",
        default=12500.0,
        help="Bytes/s below which an uplink's load is noise and nothing is moved.",
    ),
    cfg.FloatOpt(
        "min_dwell",
        default=30.0,
        help="Seconds a MAC stays on its uplink after a move (bounds upstream MAC flapping).",
    ),
    cfg.IntOpt("max_moves", default=8, help="At most this many MAC moves per rebalance run."),
    cfg.BoolOpt(
        "learning_packets", default=True, help="Send GARP/RARP through the new uplink on a move."
    ),
    cfg.IntOpt(
        "learning_repeat",
        default=2,
        help="Times the learning packets of a move are sent (frames still queued on the old "
        "uplink can re-teach the old switch after the first announcement).",
    ),
    cfg.FloatOpt(
        "learning_repeat_interval", default=1.0, help="Seconds between learning packet repeats."
    ),
    cfg.IntOpt("event_log_size", default=1000, help="Events kept for the REST API."),
    cfg.StrOpt(
        "api_token",
        default=None,
        secret=True,
        help="Bearer token required by the REST write endpoints (default: none).",
    ),
    cfg.BoolOpt("api_read_only", default=False, help="Disable the REST write endpoints."),
    cfg.DictOpt(
        "access_ports",
        default={},
        help="Access VLAN of local ports by name, e.g. 'vif1.0:10, vif2.0:20' (adds to, and "
        "overrides, the OVSDB 'tag' of the port).",
    ),
    cfg.BoolOpt(
        "ovsdb_tags", default=True, help="Read access VLANs from the OVSDB 'tag' of each port."
    ),
    cfg.IntOpt("max_macs_per_port", default=64, help="MACs learned per local port at most."),
    cfg.IntOpt(
        "packet_in_rate",
        default=200,
        help="Packets per second the switch may send to the controller (OpenFlow meter).",
    ),
    cfg.FloatOpt(
        "grat_arp_lock",
        default=5.0,
        help="Seconds after we announce a MAC during which a gratuitous ARP for it arriving "
        "on an uplink is treated as our own reflection, not as a migration.",
    ),
    cfg.IntOpt("flap_limit", default=4, help="Link downs within flap_window that hold an uplink."),
    cfg.FloatOpt("flap_window", default=10.0, help="Seconds over which uplink flaps count."),
    cfg.FloatOpt(
        "flap_hold", default=30.0, help="Seconds of quiet before a held uplink is used again."
    ),
    cfg.ListOpt(
        "probe_targets",
        default=[],
        help="Path probing (gray failures): IPv4 addresses to ARP for out of every uplink, "
        "e.g. the default gateway; 'IP@VLAN' probes on a tagged VLAN. Empty = off.",
    ),
    cfg.MultiStrOpt(
        "bridge_probe_targets",
        default=[],
        help="Per-bridge probe targets, one 'BRIDGE=IP[@VLAN],...' per line (BRIDGE as in "
        "bridge_uplinks); overrides probe_targets for that bridge ('BRIDGE=' turns it off).",
    ),
    cfg.FloatOpt(
        "probe_interval",
        default=0.2,
        min=0.05,
        max=60.0,
        help="Seconds between probe rounds (one ARP request per target per uplink).",
    ),
    cfg.IntOpt(
        "probe_misses",
        default=3,
        min=1,
        max=100,
        help="Rounds in a row without a reply that make an uplink path-dead (only while "
        "another uplink still gets replies).",
    ),
    cfg.IntOpt(
        "probe_recover",
        default=5,
        min=1,
        max=1000,
        help="Rounds in a row with a reply that bring a path-dead uplink back.",
    ),
    cfg.BoolOpt(
        "bfd",
        default=False,
        help="Read the OVS BFD state (OVSDB bfd_status) of the uplinks every 0.5 s: an "
        "uplink whose session is down is path-dead. Enable BFD per uplink with "
        "'ovs-vsctl set interface eth1 bfd:enable=true' (the switch must speak BFD).",
    ),
]


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which option and why."""


@dataclass(frozen=True)
class Settings:
    uplinks: tuple[str, ...] = ()
    bridge_uplinks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    uplink_speeds: dict[str, int] = field(default_factory=dict)  # bits/s by port name
    stats_interval: float = 5.0
    load_half_life: float = 10.0
    rebalance_interval: float = 10.0
    rebalance_min_gain: float = 0.10
    rebalance_min_load: float = 12500.0
    min_dwell: float = 30.0
    max_moves: int = 8
    learning_packets: bool = True
    learning_repeat: int = 2
    learning_repeat_interval: float = 1.0
    event_log_size: int = 1000
    api_token: str | None = None
    api_read_only: bool = False
    access_ports: dict[str, int] = field(default_factory=dict)
    ovsdb_tags: bool = True
    max_macs_per_port: int = 64
    packet_in_rate: int = 200
    grat_arp_lock: float = 5.0
    flap_limit: int = 4
    flap_window: float = 10.0
    flap_hold: float = 30.0
    probe_targets: tuple[ProbeTarget, ...] = ()
    bridge_probe_targets: dict[str, tuple[ProbeTarget, ...]] = field(default_factory=dict)
    probe_interval: float = 0.2
    probe_misses: int = 3
    probe_recover: int = 5
    bfd: bool = False

    def probe_targets_for(self, dpid: int, name: str) -> tuple[ProbeTarget, ...]:
        """Probe targets of one bridge: per-bridge entry by name or dpid, else the global."""
        for key in (name.lower(), str(dpid)):
            if key and key in self.bridge_probe_targets:
                return self.bridge_probe_targets[key]
        return self.probe_targets

    def uplinks_for(self, dpid: int, name: str) -> tuple[str, ...]:
        """Uplink globs of one bridge: per-bridge entry by name or dpid, else the global list."""
        for key in (name.lower(), str(dpid)):
            if key and key in self.bridge_uplinks:
                return self.bridge_uplinks[key]
        return self.uplinks


def _names(raw: str, option: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.replace(" ", ",").split(",") if n.strip())
    if not names:
        raise ConfigError(f"[slb] {option}: empty uplink list")
    for name in names:
        if len(name) > 255 or any(c in name for c in "=\"'"):
            raise ConfigError(f"[slb] {option}: invalid port name {name!r}")
    return names


def _bridge_key(raw: str, option: str = "bridge_uplinks") -> str:
    key = raw.strip().lower()
    if not key:
        raise ConfigError(f"[slb] {option}: missing bridge name before '='")
    if key.startswith("0x"):
        try:
            return str(int(key, 16))
        except ValueError:
            raise ConfigError(f"[slb] {option}: bad datapath id {raw!r}") from None
    return key


def _targets(items: list[str], option: str) -> tuple[ProbeTarget, ...]:
    targets = []
    for item in items:
        if not item.strip():
            continue
        try:
            targets.append(parse_target(item))
        except ValueError as exc:
            raise ConfigError(f"[slb] {option}: {exc}") from None
    return tuple(dict.fromkeys(targets))


def _bridge_targets(lines: list[str]) -> dict[str, tuple[ProbeTarget, ...]]:
    per_bridge = {}
    for line in lines:
        if "=" not in line:
            raise ConfigError(
                f"[slb] bridge_probe_targets: {line!r} is not of the form BRIDGE=IP[@VLAN],..."
            )
        bridge, _, items = line.partition("=")
        key = _bridge_key(bridge, "bridge_probe_targets")
        per_bridge[key] = _targets(items.split(","), "bridge_probe_targets")
    return per_bridge


def _speeds(raw: dict[str, str]) -> dict[str, int]:
    speeds = {}
    for name, value in raw.items():
        try:
            mbps = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"[slb] uplink_speeds: {name}: {value!r} is not Mbit/s") from None
        if mbps <= 0:
            raise ConfigError(f"[slb] uplink_speeds: {name}: speed must be > 0")
        speeds[name.strip()] = int(mbps * 1_000_000)
    return speeds


def _access(raw: dict[str, str]) -> dict[str, int]:
    vlans = {}
    for name, value in raw.items():
        try:
            vlan = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"[slb] access_ports: {name}: {value!r} is not a VLAN") from None
        if not 1 <= vlan <= 4094:
            raise ConfigError(f"[slb] access_ports: {name}: VLAN {vlan} not in 1..4094")
        vlans[name.strip()] = vlan
    return vlans


_MINIMUMS = {
    "stats_interval": 0.0,
    "load_half_life": 0.1,
    "rebalance_interval": 0.0,
    "rebalance_min_gain": 0.0,
    "rebalance_min_load": 0.0,
    "min_dwell": 0.0,
    "max_moves": 1,
    "event_log_size": 1,
    "learning_repeat": 1,
    "learning_repeat_interval": 0.1,
    "max_macs_per_port": 1,
    "packet_in_rate": 1,
    "grat_arp_lock": 0.0,
    "flap_limit": 1,
    "flap_window": 0.1,
    "flap_hold": 0.0,
    "probe_interval": 0.05,
    "probe_misses": 1,
    "probe_recover": 1,
}


def build_settings(**raw: Any) -> Settings:
    """Validate raw option values (plain data, so it is unit-testable)."""
    known = {f.name for f in fields(Settings)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"[slb] unknown option(s): {', '.join(sorted(unknown))}")
    values = dict(raw)
    per_bridge: dict[str, tuple[str, ...]] = {}
    for line in values.get("bridge_uplinks") or []:
        if "=" not in line:
            raise ConfigError(f"[slb] bridge_uplinks: {line!r} is not of the form BRIDGE=port,port")
        bridge, _, names = line.partition("=")
        per_bridge[_bridge_key(bridge)] = _names(names, "bridge_uplinks")
    values["bridge_uplinks"] = per_bridge
    uplinks = values.get("uplinks") or []
    values["uplinks"] = _names(",".join(uplinks), "uplinks") if uplinks else ()
    if not values["uplinks"] and not per_bridge:
        raise ConfigError(
            "[slb] no uplinks configured: set 'uplinks' (e.g. uplinks = eth1, eth2) "
            "or 'bridge_uplinks' (e.g. bridge_uplinks = br0=eth1,eth2)"
        )
    values["uplink_speeds"] = _speeds(values.get("uplink_speeds") or {})
    values["access_ports"] = _access(values.get("access_ports") or {})
    values["probe_targets"] = _targets(list(values.get("probe_targets") or []), "probe_targets")
    values["bridge_probe_targets"] = _bridge_targets(list(values.get("bridge_probe_targets") or []))
    for name, minimum in _MINIMUMS.items():
        if name in values and values[name] is not None and values[name] < minimum:
            raise ConfigError(f"[slb] {name} must be >= {minimum}, got {values[name]}")
    if 0 < values.get("rebalance_interval", 10.0) < 1:
        raise ConfigError("[slb] rebalance_interval must be 0 (off) or >= 1 second")
    if values.get("api_token") == "":
        values["api_token"] = None
    return Settings(**values)


def check_api_exposure(settings: Settings, host: str) -> None:
    """Refuse write endpoints on a non-loopback address without a token."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not settings.api_read_only and not settings.api_token:
        raise ConfigError(
            f"REST API on non-loopback address {host!r} with write endpoints and no "
            "[slb] api_token: set api_token, or api_read_only = true, or bind to 127.0.0.1"
        )


def register(conf: cfg.ConfigOpts) -> None:
    """Register the [slb] options and make the REST API loopback-only by default."""
    try:
        conf.register_opts(OPTS, group="slb")
    except cfg.DuplicateOptError:
        pass
    try:
        conf.set_default("wsapi_host", "127.0.0.1")
    except cfg.NoSuchOptError:
        pass


def load(conf: cfg.ConfigOpts) -> Settings:
    """Read and validate the [slb] group of Ryu's CONF."""
    register(conf)
    try:
        group = conf.slb
        raw = {opt.dest: getattr(group, opt.dest) for opt in OPTS}
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(f"[slb] invalid configuration: {exc}") from exc
    raw["uplinks"] = list(raw["uplinks"])
    raw["bridge_uplinks"] = list(raw["bridge_uplinks"])
    settings = build_settings(**raw)
    host = getattr(conf, "wsapi_host", "127.0.0.1")
    check_api_exposure(settings, host)
    return settings

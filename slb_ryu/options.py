"""Configuration: oslo.config options in the `[slb]` group, validated into `Settings`.

Invalid configuration raises `ConfigError` with a message that names the option, so
the controller stops at start instead of running with a half-understood setup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oslo_config import cfg

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
    cfg.IntOpt(
        "stats_interval",
        default=5,
        help="Seconds between flow statistics polls (0 = off).",
    ),
    cfg.IntOpt(
        "rebalance_interval",
        default=10,
        help="Seconds between rebalance runs (0 = off).",
    ),
    cfg.BoolOpt(
        "learning_packets", default=True, help="Send GARP/RARP through the new uplink on a move."
    ),
    cfg.IntOpt("event_log_size", default=1000, help="Events kept for the REST API."),
]


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which option and why."""


@dataclass(frozen=True)
class Settings:
    uplinks: tuple[str, ...] = ()
    bridge_uplinks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stats_interval: int = 5
    rebalance_interval: int = 10
    learning_packets: bool = True
    event_log_size: int = 1000

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


def _bridge_key(raw: str) -> str:
    key = raw.strip().lower()
    if not key:
        raise ConfigError("[slb] bridge_uplinks: missing bridge name before '='")
    if key.startswith("0x"):
        try:
            return str(int(key, 16))
        except ValueError:
            raise ConfigError(f"[slb] bridge_uplinks: bad datapath id {raw!r}") from None
    return key


def build_settings(
    uplinks: list[str],
    bridge_uplinks: list[str],
    stats_interval: int = 5,
    rebalance_interval: int = 10,
    learning_packets: bool = True,
    event_log_size: int = 1000,
) -> Settings:
    """Validate raw option values (plain data, so it is unit-testable)."""
    per_bridge: dict[str, tuple[str, ...]] = {}
    for line in bridge_uplinks:
        if "=" not in line:
            raise ConfigError(f"[slb] bridge_uplinks: {line!r} is not of the form BRIDGE=port,port")
        bridge, _, names = line.partition("=")
        per_bridge[_bridge_key(bridge)] = _names(names, "bridge_uplinks")
    globs = _names(",".join(uplinks), "uplinks") if uplinks else ()
    if not globs and not per_bridge:
        raise ConfigError(
            "[slb] no uplinks configured: set 'uplinks' (e.g. uplinks = eth1, eth2) "
            "or 'bridge_uplinks' (e.g. bridge_uplinks = br0=eth1,eth2)"
        )
    if stats_interval < 0:
        raise ConfigError("[slb] stats_interval must be >= 0")
    if rebalance_interval < 0 or 0 < rebalance_interval < 1:
        raise ConfigError("[slb] rebalance_interval must be 0 (off) or >= 1")
    if event_log_size < 1:
        raise ConfigError("[slb] event_log_size must be >= 1")
    return Settings(
        uplinks=globs,
        bridge_uplinks=per_bridge,
        stats_interval=stats_interval,
        rebalance_interval=rebalance_interval,
        learning_packets=learning_packets,
        event_log_size=event_log_size,
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
    register(conf)
    try:
        group = conf.slb
        return build_settings(
            list(group.uplinks),
            list(group.bridge_uplinks),
            group.stats_interval,
            group.rebalance_interval,
            group.learning_packets,
            group.event_log_size,
        )
    except (cfg.Error, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"[slb] invalid configuration: {exc}") from exc

"""The controller core of one bridge: events and a clock in, OpenFlow work out.

Like Faucet's valve, it holds no Ryu object: the app feeds it port descriptions,
port status changes, packet-ins, statistics and timer ticks, and sends what comes back
(`Output`). It keeps what it believes the switch holds (`SwitchState`) and only emits
the difference, so a reconnect or a controller restart converges instead of reshuffling.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from slb_ryu.core import demand, pipeline
from slb_ryu.core.errors import Conflict, NotFound
from slb_ryu.core.events import EventLog
from slb_ryu.core.guards import AnnounceLock, FlapGuard
from slb_ryu.core.load import LoadTracker
from slb_ryu.core.marks import LearnBudget, Mark
from slb_ryu.core.pipeline import FlowSpec, GroupSpec, MeterSpec
from slb_ryu.core.placement import (
    REASON_DRAIN,
    REASON_FAILOVER,
    REASON_FORGET,
    REASON_LEARN,
    REASON_MANUAL,
    REASON_REBALANCE,
    REASON_RECOVERY,
    BridgePlacement,
    MacEntry,
    Move,
    Port,
    normalise_mac,
)
from slb_ryu.core.probe import (
    DEFAULT_PROBE,
    PATH_DEAD,
    PATH_UNKNOWN,
    PathProber,
    ProbeParams,
    ProbeRequest,
    ProbeTarget,
    meter_rate,
)
from slb_ryu.core.rebalance import (
    DEFAULT_PARAMS,
    MacRow,
    RebalanceParams,
    UplinkState,
    capacities,
    imbalance,
    plan,
)
from slb_ryu.core.sync import Mod, SwitchState, owner

T = TypeVar("T")
SYNC_SLICE = 128  # MACs (their ~5 flows each) per slice of a (re)connect sync: a few ms
# MACs (learning packets or per-MAC flow syncs) one Output carries. A bigger batch of
# moves (a failover of thousands of MACs) is returned one slice at a time from `next_slice`,
# so the app can yield between slices: the datapath is already safe meanwhile (the
# fast-failover groups forward a dead uplink's traffic to a live one).
SLICE = 256


@dataclass
class LearningPackets:
    """Frames to send for one moved MAC through `out_port`."""

    out_port: int
    mac: str
    vlan: int
    ips: tuple[str, ...]


@dataclass
class Output:
    """What the app must send, in order: mods, then learning packets, then the re-injection."""

    mods: list[Mod] = field(default_factory=list)
    learning: list[LearningPackets] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)  # the decisions, for the caller's answer
    # The datapath forwards a new MAC's frames itself (table 2), so nothing is
    # re-injected any more; kept so the app's send path stays unchanged.
    reinject: bool = False
    untag: bool = False
    warnings: list[str] = field(default_factory=list)  # for the app's log (rate-limited)

    def extend(self, other: Output) -> None:
        self.mods += other.mods
        self.learning += other.learning
        self.moves += other.moves
        self.reinject = self.reinject or other.reinject
        self.warnings += other.warnings


@dataclass(frozen=True)
class Limits:
    """Protection settings (see options.py for what each means)."""

    max_macs_per_port: int = 64
    packet_in_rate: int = 200
    grat_arp_lock: float = 5.0
    flap_limit: int = 4
    flap_window: float = 10.0
    flap_hold: float = 30.0
    mac_idle_timeout: int = 300
    guard_window: int = 5
    max_ips_per_mac: int = 4


def run_steps(steps: Generator[None, None, T], pause: Callable[[], None] = lambda: None) -> T:
    """Run a generator of slices to its end, `pause()` between slices; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        pause()


class BridgeCore:
    """Placement, switch state and event log of one managed bridge."""

    def __init__(
        self,
        dpid: int,
        uplink_patterns: Iterable[str],
        events: EventLog | None = None,
        learning_packets: bool = True,
        params: RebalanceParams = DEFAULT_PARAMS,
        half_life: float = 10.0,
        speeds: dict[str, int] | None = None,
        limits: Limits = Limits(),
        access_vlans: dict[str, int] | None = None,
        probe_targets: Iterable[ProbeTarget] = (),
        probe_params: ProbeParams = DEFAULT_PROBE,
    ) -> None:
        self.placement = BridgePlacement(dpid, tuple(uplink_patterns))
        self.placement.max_macs_per_port = limits.max_macs_per_port
        self.placement.max_ips_per_mac = limits.max_ips_per_mac
        self.tuning = pipeline.Tuning(
            limits.mac_idle_timeout, limits.guard_window, limits.packet_in_rate
        )
        self.guard_reported = AnnounceLock(max(1.0, float(limits.guard_window)))
        self.events = events or EventLog()
        self.learning_packets = learning_packets
        self.params = params
        self.limits = limits
        self.loads = LoadTracker(half_life=half_life)
        self.port_loads = LoadTracker(half_life=half_life)  # uplink ports, by port_no
        self.port_rates: dict[tuple[int, int], float] = {}  # (port_no, 0 tx / 1 rx) -> B/s
        self.saturation = demand.Saturation()
        self.speeds = dict(speeds or {})
        self.access_vlans = dict(access_vlans or {})
        self.flaps = FlapGuard(limits.flap_limit, limits.flap_window, limits.flap_hold)
        self.learn_budget = LearnBudget(limits.packet_in_rate)  # copies + recoveries per port
        self.marks_tried = AnnounceLock(float(pipeline.PENDING_HOLD))  # (port, MAC, VLAN)
        self.announced = AnnounceLock(limits.grat_arp_lock)
        self.switch = SwitchState()
        self.synced = False
        targets = tuple(probe_targets)
        self.prober = PathProber(dpid, targets, probe_params) if targets else None
        self.placement.probing = self.prober is not None
        self.unreachable: tuple[ProbeTarget, ...] = ()
        self.bfd_down: set[int] = set()  # uplinks whose OVS BFD session is down
        # Deferred work of a big batch of moves, oldest first (see `next_slice`).
        self.pending_learning: dict[tuple[str, int], LearningPackets] = {}
        self.pending_flows: dict[tuple[str, int], None] = {}
        # A failover's stranded MACs still to re-pin, in `repair` order (see `_repair`).
        self.repinning: list[MacEntry] = []
        self.repin_reason = REASON_FAILOVER

    @property
    def dpid(self) -> int:
        return self.placement.dpid

    def entry(self, mac: str, vlan: int) -> MacEntry | None:
        return self.placement.macs.get((mac, vlan))

    @property
    def backlog(self) -> int:
        """MACs whose learning packets or flows are still to be sent (`next_slice` sends them)."""
        return len(self.repinning) + len(self.pending_learning) + len(self.pending_flows)

    def next_slice(self, now: float, limit: int = SLICE) -> Output:
        """The next slice of deferred work, learning packets first.

        Upstream switches re-learning the moved MACs is what traffic waits for; the
        per-MAC flows can follow (until they do, the old uplink's fast-failover group
        already forwards to the new one). A learning packet whose MAC has moved again or
        gone since is dropped here. A failover's re-pin comes before both: each slice
        re-pins `limit` stranded MACs and carries their learning packets.
        """
        if self.repinning:
            return self._repin_slice(now, limit)
        out = Output()
        for key in list(itertools.islice(self.pending_learning, limit)):
            lp = self.pending_learning.pop(key)
            entry = self.placement.macs.get(key)
            port = self.placement.ports.get(lp.out_port)
            if entry is None or entry.uplink != lp.out_port or port is None or not port.usable:
                continue
            self._emit_learning(lp, out, now)
            limit -= 1
        for key in list(itertools.islice(self.pending_flows, max(0, limit))):
            out.mods += self._mac_mods(key)  # pops it from pending_flows
        return out

    def _repin_slice(self, now: float, limit: int) -> Output:
        """Re-pin the next `limit` stranded MACs (as `placement.repair` would, one by one):
        their learning packets now, their flows queued behind every learning packet. A
        MAC gone, moved or whose uplink came back meanwhile is skipped."""
        chunk, self.repinning = self.repinning[:limit], self.repinning[limit:]
        usable = {p.port_no for p in self.placement.usable_uplinks}
        macs = self.placement.macs
        moves: list[Move] = []
        for entry in chunk:
            if macs.get(entry.key) is not entry or entry.uplink in usable:
                continue
            new = self.placement.choose_uplink()
            if new is None:  # no usable uplink left: nothing to re-pin to
                self.repinning = []
                break
            old = entry.uplink
            self.placement.set_uplink(entry, new, now)
            moves.append(Move(entry.mac, entry.vlan, entry.port_no, old, new, self.repin_reason))
        out = Output(moves=moves)
        self._log_moves(moves, now)
        self.pending_flows.update(dict.fromkeys((m.mac, m.vlan) for m in moves))
        self._learning(moves, out, now)
        return out

    def _repair(
        self,
        now: float,
        reason: str = REASON_FAILOVER,
        moves: Iterable[Move] = (),
        stranded: list[MacEntry] | None = None,
    ) -> Output:
        """`placement.repair` and its Output: in one piece when a few MACs are stranded;
        for more than a slice, the bridge-wide part now (groups, meters, the active
        uplink's flows) and the re-pin in slices from `next_slice` (the app's pacer),
        learning packets first. The datapath is safe meanwhile: the fast-failover groups
        already carry a dead uplink's traffic to a live one."""
        done = list(moves)
        if stranded is None:
            stranded = self.placement.stranded()
        if len(stranded) <= SLICE or not self.placement.usable_uplinks:
            return self._apply(done + self.placement.repair(now, reason), now)
        self.placement.repair(now, reason, limit=0)  # the active uplink only
        self.repinning, self.repin_reason = stranded, reason
        return self._apply(done, now)  # the re-pin follows from next_slice, after a yield

    def requeue_learning(self, lp: LearningPackets) -> None:
        """Learning packets that may have been lost (sent into a connection that died)."""
        self.pending_learning.setdefault((lp.mac, lp.vlan), lp)

    # ---- connection ------------------------------------------------------------------

    def connect(
        self,
        ports: Iterable[Port],
        switch_groups: Iterable[GroupSpec],
        switch_flows: Iterable[FlowSpec],
        ages: dict,
        now: float,
        switch_meters: Iterable[MeterSpec] = (),
    ) -> Output:
        """Switch (re)connected: adopt its placement, then fix its tables to match ours."""
        return run_steps(
            self.connect_steps(ports, switch_groups, switch_flows, ages, now, switch_meters)
        )

    def connect_steps(
        self,
        ports: Iterable[Port],
        switch_groups: Iterable[GroupSpec],
        switch_flows: Iterable[FlowSpec],
        ages: dict,
        now: float,
        switch_meters: Iterable[MeterSpec] = (),
        size: int = SYNC_SLICE,
    ) -> Generator[None, None, Output]:
        """`connect` in slices of `size` MACs (their flows): yields between slices so the
        app can let the event loop run (at 10,000 MACs the whole of it is ~0.5 s); the
        generator's return value is the Output. `synced` turns true only at the end."""
        self.synced = False
        flows = list(switch_flows)
        step = size * 5  # switch flows per slice (a MAC has about five)
        moves = self.placement.set_ports(map(self._port, ports), now)
        self.events.names[self.dpid] = self.placement.name  # log lines name the bridge
        if not self.placement.macs:
            recovered: list[Move] = []
            for i in range(0, len(flows), step):
                chunk = pipeline.entries_from_flows(flows[i : i + step], ages, now)
                recovered += self.placement.recover(chunk)
                yield
            if recovered:
                self.events.add(now, "recovery", dpid=self.dpid, macs=len(recovered))
            moves += self.placement.repair(now)
        self._log_moves(moves, now)
        self.switch.reset([], switch_groups, switch_meters)
        for i in range(0, len(flows), step):
            self.switch.adopt(flows[i : i + step])
            yield
        out = Output()
        groups = pipeline.groups(self.placement)
        meters = pipeline.meters(
            self.placement, self.limits.packet_in_rate, self._probe_meter_rate()
        )
        out.mods += self.switch.sync_meters(meters)
        out.mods += self.switch.sync_groups(groups)
        # pipeline.desired_flows(placement, tuning), a slice of MACs at a time (same flows)
        current = set(self.switch.flows)
        wanted: set[tuple] = set()
        base = {f.key: f for f in pipeline.base_flows(self.placement, self.tuning)}
        out.mods += self.switch.sync_want(base)
        wanted.update(base)
        entries = list(self.placement.macs.values())
        for i in range(0, len(entries), size):
            chunk = {
                f.key: f
                for entry in entries[i : i + size]
                for f in pipeline.mac_flows(self.placement, entry, self.tuning)
            }
            out.mods += self.switch.sync_want(chunk)
            wanted.update(chunk)
            yield
        held = list(current)  # what the switch held and nobody wants: deleted
        unwanted: list[tuple] = []
        for i in range(0, len(held), step):
            unwanted += [key for key in held[i : i + step] if key not in wanted]
            yield
        out.mods += self.switch.delete_flows(unwanted)
        del held
        for keys in (wanted, current):  # freed in slices too: ~30 ms of tuples at 10,000 MACs
            while keys:
                for _ in range(min(step, len(keys))):
                    keys.pop()
                yield
        self.pending_flows.clear()
        self.repinning = []  # the repair above re-pinned every stranded MAC
        out.mods += self.switch.stale_groups(groups)
        out.mods += self.switch.stale_meters(meters)
        self._learning(moves, out, now)
        self.synced = True
        return out

    def port_status(self, reason: str, port: Port, now: float) -> Output:
        """OpenFlow port status: 'add', 'modify' or 'delete'."""
        was = self.placement.ports.get(port.port_no)
        was_live = was is not None and was.live
        if reason == "delete":
            self.flaps.forget(port.port_no)
            moves = self.placement.delete_port(port.port_no, now)
            return self._apply(moves, now)
        port = self._port(port)
        if self.placement.names_uplink(port):
            if was_live and not port.live and self.flaps.link_down(port.port_no, now):
                if not (was is not None and was.held):
                    port.held = True
                    self.events.add(now, "uplink-held", dpid=self.dpid, uplink=port.name)
        moves = self.placement.update_port(port, now, repin=False)
        stranded = None  # computed once, for the event and the re-pin
        new = self.placement.ports[port.port_no]
        if new.uplink and was_live != new.live:
            kind = "uplink-up" if new.live else "uplink-down"
            moved = sum(1 for m in moves if m.reason == REASON_FAILOVER)
            if self.placement.usable_uplinks:
                stranded = self.placement.stranded()
                moved += len(stranded)
            self.events.add(now, kind, dpid=self.dpid, uplink=new.name, held=new.held, moved=moved)
        return self._repair(now, moves=moves, stranded=stranded)

    def tick(self, now: float) -> Output:
        """Timer: age snooped IPs; return held uplinks to service after a quiet period."""
        self.guard_reported.prune(now)
        self.marks_tried.prune(now)
        if self.limits.mac_idle_timeout:
            for mac, vlan, ip in self.placement.age_ips(now, self.limits.mac_idle_timeout):
                self.events.add(now, "ip-aged", dpid=self.dpid, mac=mac, vlan=vlan, ip=ip)
        released = []
        for port in self.placement.uplinks:
            if port.held and port.live and self.flaps.quiet(port.port_no, now):
                port.held = False
                released.append(port)
                self.events.add(now, "uplink-released", dpid=self.dpid, uplink=port.name)
        if not released:
            return Output()
        return self._repair(now)

    # ---- path probing (core/probe.py) -------------------------------------------------

    def _probe_meter_rate(self) -> int:
        if self.prober is None:
            return 0
        p = self.prober
        return meter_rate(len(p.targets), len(self.placement.uplinks), p.params.interval)

    def probe_round(self, now: float) -> tuple[Output, list[ProbeRequest]]:
        """Probe timer: judge the round that ended (drain path-dead uplinks, restore
        recovered ones, exactly like a carrier change) and return the next probes."""
        if self.prober is None or not self.synced:
            return Output(), []
        live = [p.port_no for p in self.placement.uplinks if p.live]
        self.prober.round(now, live)
        changed = False
        for port in self.placement.uplinks:
            changed |= self._update_path(port.port_no, now, "probe")
        self._track_targets(now)
        out = self._repair(now) if changed else Output()
        return out, self.prober.requests(live)

    def bfd_update(self, sessions: dict[str, tuple[str, int]], now: float) -> Output:
        """OVSDB `bfd_status` (state, flap_count) by interface name, BFD-enabled uplinks
        only. A session that has been up (flap_count > 0) and is now 'down' or 'init'
        makes the uplink path-dead; 'up', 'admin_down' (the peer asks not to be judged,
        RFC 5880) or a session never up (a switch without BFD, still starting) do not.
        Like probing, it never takes the last uplink that is not path-dead."""
        changed = False
        for port in self.placement.uplinks:
            state, flaps = sessions.get(port.name, ("", 0))
            down = state in ("down", "init") and flaps > 0
            if down and port.port_no not in self.bfd_down:
                others = [p for p in self.placement.live_uplinks if p is not port]
                if not any(not p.path_dead for p in others):
                    self.events.count("bfd_down_ignored_last_uplink")
                    continue
                self.bfd_down.add(port.port_no)
            elif not down:
                self.bfd_down.discard(port.port_no)
            changed |= self._update_path(port.port_no, now, "bfd")
        return self._repair(now) if changed else Output()

    def _update_path(self, port_no: int, now: float, source: str) -> bool:
        """Recompute one uplink's path-dead flag from probing and BFD; True if it changed
        (the caller then repairs placement, as after a carrier change)."""
        port = self.placement.ports.get(port_no)
        if port is None:
            return False
        path = self.prober.paths.get(port_no) if self.prober else None
        port.path = path.state if path else (PATH_UNKNOWN if self.prober else "off")
        port.last_reply = path.last_reply if path else None
        dead = (path is not None and path.dead) or port_no in self.bfd_down
        if port_no in self.bfd_down:
            port.path = PATH_DEAD
        if dead == port.path_dead:
            return False
        port.path_dead = dead
        if dead:
            self.events.add(now, "uplink-path-dead", dpid=self.dpid, uplink=port.name, by=source)
            if self.flaps.link_down(port_no, now) and not port.held:
                port.held = True
                self.events.add(now, "uplink-held", dpid=self.dpid, uplink=port.name)
        else:
            self.events.add(now, "uplink-path-up", dpid=self.dpid, uplink=port.name, by=source)
        return True

    def _track_targets(self, now: float) -> None:
        assert self.prober is not None
        unreachable = tuple(self.prober.unreachable())
        for target in set(unreachable) - set(self.unreachable):
            self.events.add(now, "probe-target-unreachable", dpid=self.dpid, target=str(target))
        for target in set(self.unreachable) - set(unreachable):
            self.events.add(now, "probe-target-reachable", dpid=self.dpid, target=str(target))
        self.unreachable = unreachable

    def probe_reply(self, in_port: int, ip: str | None, vlan: int, now: float) -> None:
        """An ARP reply punted by a probe flow: counts for the uplink it arrived on."""
        if self.prober is not None and ip and self.prober.reply(in_port, ip, vlan, now):
            self.events.count("probe_replies")
        else:
            self.events.count("probe_replies_unexpected")

    # ---- packets ---------------------------------------------------------------------

    def packet_in(
        self,
        kind: int | None,
        in_port: int,
        src: str,
        vlan: int,
        arp_spa: str | None,
        now: float,
        garp: bool = False,
        claimed: bool = False,
    ) -> Output:
        """A packet from one of our controller-bound flows (learning, ARP snoop, migration)."""
        out = Output()
        if not self.synced:
            self.events.count("packet_in_before_sync")
            return out
        key = (src, vlan)
        if kind == pipeline.KIND_PORT_SECURITY:
            self.events.count("port_security_drop")
            return out
        if kind == pipeline.KIND_SRC_MISS:
            self.learn_budget.charge(in_port, now)  # the meter let it through
            learned = self._source_miss(in_port, src, vlan, now)
            if learned is None:
                return out
            out = learned
            if garp and key in self.placement.macs:
                # A new VM announcing itself: the datapath already sent its GARP, whose
                # echo through the other switch must not read as a migration away.
                self.announced.announce(key, now)
        elif kind == pipeline.KIND_PORT_FULL:
            self.events.count("mac_limit_drop")
            return out
        elif kind == pipeline.KIND_GUARD:
            return self._guard(key, in_port, now)
        elif kind == pipeline.KIND_GUARD_ANNOUNCE:
            if not garp:
                return self._guard(key, in_port, now)
            return self._announced_in(key, in_port, now)
        elif kind == pipeline.KIND_ARP_SNOOP:
            if garp:
                self.announced.announce(key, now)
        elif kind == pipeline.KIND_MIGRATION:
            return self._migration(key, garp, now)
        else:
            self.events.count("packet_in_unexpected")
            return out
        if arp_spa and claimed:
            return self._claimed(key, arp_spa, now, out)
        if arp_spa:
            learned = self.placement.learn_ip(src, vlan, arp_spa, now)
            if learned == "new":
                self.events.add(now, "ip", dpid=self.dpid, mac=src, vlan=vlan, ip=arp_spa)
            elif learned == "full":
                self.events.count("ip_limit_drop")
        return out

    def _source_miss(self, in_port: int, src: str, vlan: int, now: float) -> Output | None:
        """A learning copy (or a recovered one): port security and the port's MAC limit
        as the datapath applies them, then learn; None when refused (counted)."""
        attached = self.placement.attached_macs.get(in_port)
        if attached and attached != src:
            self.events.count("port_security_drop")
            return None
        if (src, vlan) not in self.placement.macs and self.placement.port_full(in_port):
            self.events.count("mac_limit_drop")
            return None
        new_vlan = vlan not in self.placement.learned_vlans()
        move = self.placement.learn(src, vlan, in_port, now)
        if move is None:
            return Output()
        # A MAC on a VLAN already in use changes no group, meter or bridge-wide flow
        # (most of a learn's cost at thousands of MACs) unless it fills its port: then
        # the port's table-2 flows gain the port-full drop.
        base = new_vlan or self.placement.port_full(in_port)
        return self._apply([move], now, base=base)

    def learning_marks(self, marks: Iterable[Mark], now: float) -> Output:
        """The datapath's learning-in-progress marks (core/marks.py): learn each marked
        source we do not know whose copy is overdue, as its copy would have, once per
        mark, within the port's packet-in budget. A source known on another port is left
        alone: its mark may be older than the move that learned it there. The marks (and
        echo guards) of every source known by now are deleted, after its flows."""
        out = Output()
        if not self.synced:
            return out
        done: list[tuple[int, str, int]] = []  # marks of sources now known: deleted below
        for in_port, mac, vlan, age in marks:
            self.events.count("learning_marks")
            key = (mac, vlan)
            tried = (in_port, mac, vlan)
            if key in self.placement.macs:
                done.append(tried)
                continue
            if age < pipeline.PENDING_MIN_AGE:
                continue
            port = self.placement.ports.get(in_port)
            if port is None or port.uplink or self.marks_tried.locked(tried, now):
                continue
            if not self.learn_budget.take(in_port, now):
                self.events.count("learning_copy_deferred")  # next read, if the mark lives
                continue
            self.marks_tried.announce(tried, now)
            learned = self._source_miss(in_port, mac, vlan, now)
            if learned is None or key not in self.placement.macs:
                continue
            out.extend(learned)
            done.append(tried)
            self.events.count("learning_copy_recovered")
            self.events.add(
                now,
                "learning-copy-recovered",
                dpid=self.dpid,
                mac=mac,
                vlan=vlan,
                port=self.placement.port_name(in_port),
                age=round(age, 3),
            )
        # After the MACs' own flows (same connection, so OVS applies them first): the
        # marks and echo guards of sources now known, in one batch rather than expiring
        # one by one (pipeline.learned_while_learning says why).
        deletes = {
            spec.key: spec
            for in_port, mac, vlan in done
            for spec in pipeline.learned_while_learning(in_port, mac, vlan, self.tuning)
        }  # one guard per (MAC, VLAN), however many ports marked it
        out.mods += [("flow", "delete", spec) for spec in deletes.values()]
        if done:
            self.events.count("learning_marks_deleted", len(done))
        return out

    def _announced_in(self, key: tuple[str, int], in_port: int, now: float) -> Output:
        """A gratuitous ARP/RARP for a MAC the fabric showed lately: a live migration into
        this host (the guard's one exception; a forged announcement is how a VM can still
        claim a remote MAC, as with the OVS bond). Learn it and re-inject the frame."""
        if key not in self.placement.macs and self.placement.port_full(in_port):
            self.events.count("mac_limit_drop")
            return Output()
        move = self.placement.learn(key[0], key[1], in_port, now)
        out = self._apply([move], now) if move is not None else Output()
        entry = self.placement.macs.get(key)
        if entry is None or entry.port_no != in_port:
            return out
        self.announced.announce(key, now)
        self.events.count("guard_override")
        self.events.add(
            now,
            "migrated-in",
            dpid=self.dpid,
            mac=key[0],
            vlan=key[1],
            port=self.placement.port_name(in_port),
        )
        port = self.placement.ports.get(in_port)
        out.reinject = True
        out.untag = port is not None and bool(port.vlan) and key[1] == port.vlan
        return out

    def _guard(self, key: tuple[str, int], in_port: int, now: float) -> Output:
        """A local port sent a source MAC the fabric showed within the guard window: the
        datapath dropped it (a hijack of a remote host, or a loop through a miswired
        port). Count every report, event and warn once per MAC per window."""
        self.events.count("guard_drop")
        out = Output()
        if self.guard_reported.locked(key, now):
            return out
        self.guard_reported.announce(key, now)
        port = self.placement.port_name(in_port)
        self.events.add(
            now, "guard", dpid=self.dpid, mac=key[0], vlan=key[1], port=port, reason="fabric-seen"
        )
        out.warnings.append(
            f"dropped frames from {key[0]} (VLAN {key[1]}) on local port {port}: that MAC was "
            f"seen on the fabric within {self.limits.guard_window} s (hijack or loop)"
        )
        return out

    def _claimed(self, key: tuple[str, int], ip: str, now: float, out: Output) -> Output:
        """A VM ARPed with an address a fabric host ARPed from lately: never announce it
        for this VM (a gratuitous ARP would poison the fabric's caches); drop it if the
        VM had it."""
        self.events.count("ip_claimed")
        self.placement.drop_ip(key[0], key[1], ip)
        if not self.guard_reported.locked(("ip",) + key, now):
            self.guard_reported.announce(("ip",) + key, now)
            self.events.add(now, "ip-claimed", dpid=self.dpid, mac=key[0], vlan=key[1], ip=ip)
        return out

    def flow_removed(self, spec: FlowSpec, reason: str, now: float) -> Output:
        """The switch removed a flow. An idle source flow means its MAC aged out."""
        self.switch.removed(spec.key)
        if reason != "idle" or pipeline.cookie_kind(spec.cookie) != pipeline.KIND_SRC:
            return Output()
        key = owner(spec)
        entry = self.placement.macs.get(key) if key else None
        if entry is None or dict(spec.match).get("in_port") != entry.port_no:
            return Output()
        move = self.placement.forget(*entry.key)
        self.events.add(
            now,
            "aged",
            dpid=self.dpid,
            mac=entry.mac,
            vlan=entry.vlan,
            port=self.placement.port_name(entry.port_no),
        )
        return self._apply([move] if move else [], now)

    def _migration(self, key: tuple[str, int], garp: bool, now: float) -> Output:
        """An ARP from one of our MACs came in from the fabric."""
        if not garp or key not in self.placement.macs:
            self.events.count("reflection_dropped")
            return Output()
        if self.announced.locked(key, now):
            self.events.count("garp_lock_ignored")
            return Output()
        move = self.placement.forget(*key)
        self.events.add(now, "migrated-away", dpid=self.dpid, mac=key[0], vlan=key[1])
        return self._apply([move] if move else [], now)

    # ---- load and rebalancing ----------------------------------------------------------

    def flow_stats(self, samples: Iterable[tuple[FlowSpec, int, float]], now: float) -> None:
        """Byte counters of our per-MAC flows: source flows are tx, destination flows rx."""
        self.mac_counters(
            ((pipeline.cookie_kind(spec.cookie), owner(spec), n, age) for spec, n, age in samples),
            now,
        )

    def mac_counters(
        self, samples: Iterable[tuple[int | None, tuple[str, int] | None, int, float]], now: float
    ) -> None:
        """Per-MAC counters as (cookie kind, (MAC, VLAN), byte count, flow age in s): the
        form the poll reads straight from the reply bytes (openflow/stats.py)."""
        counters: dict[tuple[str, int], list] = {}
        for kind, key, byte_count, age in samples:
            if key is None or kind not in (pipeline.KIND_SRC, pipeline.KIND_DST):
                continue
            slot = counters.get(key)
            if slot is None:
                slot = counters[key] = [None, None, None, None]
            direction = 0 if kind == pipeline.KIND_SRC else 1
            slot[direction], slot[direction + 2] = byte_count, age
        macs = self.placement.macs
        for key, (tx, rx, tx_age, rx_age) in counters.items():
            entry = macs.get(key)
            if entry is None or tx is None or rx is None:
                continue
            entry.tx_bps, entry.rx_bps = self.loads.update(key, tx, rx, now, tx_age, rx_age)

    def port_stats(self, counters: dict[int, tuple[int, int]], now: float | None = None) -> None:
        """Port byte counters (tx, rx) by port number, for the uplink view and metrics; with
        `now`, also the uplinks' smoothed rates, which tell the rebalancer a link is full."""
        for port_no, (tx, rx) in counters.items():
            port = self.placement.ports.get(port_no)
            if port is not None:
                port.tx_bytes, port.rx_bytes = tx, rx
                if now is not None and port.uplink:
                    rates = self.port_loads.update(port_no, tx, rx, now)
                    self.port_rates[(port_no, 0)], self.port_rates[(port_no, 1)] = rates

    def _loads(self) -> list[MacRow]:
        """plan()'s input: plain tuples (key, uplink, tx, rx, pinned, since), built cheaply."""
        return [
            (e.key, e.uplink, e.tx_bps, e.rx_bps, e.pinned, e.since)
            for e in self.placement.macs.values()
        ]

    def rebalance(self, now: float) -> Output:
        """Move MACs between usable uplinks as `rebalance.plan` decides; learning packets follow.

        On full uplinks the MACs' measured rates understate what they want: `demand`
        raises those held back to their fair share before planning."""
        uplinks = [UplinkState(p.port_no, p.usable, p.speed_bps) for p in self.placement.uplinks]
        loads = self._loads()
        before = imbalance(uplinks, loads)
        caps = capacities(uplinks)
        if any(u.speed_bps > 0 for u in uplinks):  # "full" needs known speeds
            self.saturation.update(demand.carried(loads, caps, self.port_rates), caps)
        wanted = demand.estimate(loads, caps, self.saturation, now)
        params = self.params
        if self.saturation.recent:  # a link is (or was, a few runs ago) full: per-MAC sizes
            # are guesses, so no swaps (they would trade equals) and a wide dead band
            params = demand.saturated_params(params)
        moves = []
        for planned in plan(uplinks, wanted, now, params):
            mac, vlan = planned.key
            move = self.placement.move(mac, vlan, planned.new_uplink, now, REASON_REBALANCE)
            if move is not None:
                moves.append(move)
        if moves:
            after = imbalance(uplinks, self._loads())
            self.events.add(
                now, "rebalance", dpid=self.dpid, moves=len(moves), before=before, after=after
            )
        return self._apply(moves, now)

    # ---- operator actions ------------------------------------------------------------

    def move(self, mac: str, vlan: int, uplink: str, now: float, pin: bool | None) -> Output:
        """Manual move (REST); `core.errors` say what is wrong. `Output.moves` has the move."""
        port = self.placement.uplink_named(uplink)
        mac = normalise_mac(mac)
        entry = self.placement.macs.get((mac, vlan))
        old_pin = entry.pinned if entry else None
        move = self.placement.move(mac, vlan, port.port_no, now, REASON_MANUAL, pin)
        out = self._apply([move] if move else [], now)
        if move is None and entry is not None and entry.pinned != old_pin:
            out.mods += self._mac_mods(entry.key)
        return out

    def set_pinned(self, mac: str, vlan: int, pinned: bool, now: float) -> Output:
        """Pin a MAC where it is, or unpin it (REST); NotFound for an unknown MAC."""
        mac = normalise_mac(mac)
        entry = self.placement.macs.get((mac, vlan))
        if entry is None:
            raise NotFound(
                f"MAC {mac} is not known on VLAN {vlan} of bridge {self.placement.label}"
            )
        out = Output()
        if entry.pinned != pinned:
            entry.pinned = pinned
            self.events.add(now, "pin" if pinned else "unpin", dpid=self.dpid, mac=mac, vlan=vlan)
            out.mods += self._mac_mods(entry.key)
        return out

    def drain(self, uplink: str, now: float) -> Output:
        """Take an uplink out of service for maintenance (OVS `bond/disable-member`): its
        MACs move to the others with learning packets, it leaves the fast-failover groups
        and the broadcast role, and stays out until `undrain`. `Output.moves` has the moves.

        Refused (Conflict) when it would leave no usable uplink: draining the last one
        would cut every VM off; take the link down instead if that is what is wanted."""
        port = self.placement.uplink_named(uplink)
        if port.drained:
            return Output()
        others = [p for p in self.placement.usable_uplinks if p.port_no != port.port_no]
        if not others:
            raise Conflict(
                f"draining {port.name} would leave bridge {self.placement.label} with no "
                "usable uplink: bring another uplink up (or undrain one) first"
            )
        port.drained = True
        moves = self.placement.repair(now, REASON_DRAIN)
        self.events.add(now, "uplink-drained", dpid=self.dpid, uplink=port.name, moved=len(moves))
        return self._apply(moves, now)

    def undrain(self, uplink: str, now: float) -> Output:
        """Return a drained uplink to service; it takes load back at the next rebalance
        (as a returning member does in OVS), so nothing moves now."""
        port = self.placement.uplink_named(uplink)
        if not port.drained:
            return Output()
        port.drained = False
        self.events.add(now, "uplink-undrained", dpid=self.dpid, uplink=port.name)
        return self._repair(now)

    # ---- internals -------------------------------------------------------------------

    def _port(self, port: Port) -> Port:
        """Apply configured speed overrides and access VLANs to a reported port."""
        if port.name in self.speeds:
            port.speed_bps = self.speeds[port.name]
        if port.name in self.access_vlans:
            port.vlan = self.access_vlans[port.name]
        return port

    def set_access_vlans(self, vlans: dict[str, int], now: float) -> Output:
        """Access VLANs by port name (OVSDB `tag` or configuration); MACs on changed ports go."""
        self.access_vlans.update(vlans)
        moves: list[Move] = []
        for port in self.placement.local_ports:
            vlan = self.access_vlans.get(port.name, 0)
            if port.vlan != vlan:
                port.vlan = vlan
                moves += self.placement.forget_port_macs(port.port_no)
        return self._apply(moves, now)

    def set_attached_macs(self, by_name: dict[str, str], now: float) -> Output:
        """Port security from OVSDB `external_ids:attached-mac` (interface name -> MAC):
        such a port learns only that MAC; other MACs already learned there go."""
        wanted = {}
        for port in self.placement.local_ports:
            try:
                mac = normalise_mac(by_name[port.name]) if port.name in by_name else None
            except ValueError:
                self.events.count("attached_mac_invalid")
                mac = None
            if mac:
                wanted[port.port_no] = mac
        if wanted == self.placement.attached_macs:
            return Output()
        self.placement.attached_macs = wanted
        moves = []
        for entry in list(self.placement.macs.values()):
            allowed = wanted.get(entry.port_no)
            if allowed and entry.mac != allowed:
                move = self.placement.forget(*entry.key)
                if move is not None:
                    moves.append(move)
        self.events.add(now, "port-security", dpid=self.dpid, ports=len(wanted))
        return self._apply(moves, now)

    def _apply(self, moves: list[Move], now: float, base: bool = True) -> Output:
        """Flows, groups, meters and learning packets for `moves`; `base=False` when the
        caller knows no group, meter or bridge-wide flow can have changed."""
        out = Output(moves=list(moves))
        self._log_moves(moves, now)
        groups = pipeline.groups(self.placement) if base else []
        meters = (
            pipeline.meters(self.placement, self.limits.packet_in_rate, self._probe_meter_rate())
            if base
            else []
        )
        if base:
            out.mods += self.switch.sync_meters(meters)
            out.mods += self.switch.sync_groups(groups)
            out.mods += self.switch.sync_base(pipeline.base_flows(self.placement, self.tuning))
        keys = list(dict.fromkeys((m.mac, m.vlan) for m in moves))
        for key in keys:
            if key not in self.placement.macs:
                self.loads.forget(key)
                self.announced.forget(key)
        if len(keys) <= SLICE:  # the common case: everything at once, as small as it is
            for key in keys:
                out.mods += self._mac_mods(key)
            if base:
                out.mods += self.switch.stale_groups(groups)  # per-MAC flows use no group
                out.mods += self.switch.stale_meters(meters)
            self._learning(moves, out, now)
            return out
        self.pending_flows.update(dict.fromkeys(keys))
        if base:
            out.mods += self.switch.stale_groups(groups)
            out.mods += self.switch.stale_meters(meters)
        self._learning(moves, None, now)
        out.extend(self.next_slice(now))
        return out

    def _mac_mods(self, key: tuple[str, int]) -> list[Mod]:
        self.pending_flows.pop(key, None)
        entry = self.placement.macs.get(key)
        desired = pipeline.mac_flows(self.placement, entry, self.tuning) if entry else []
        return self.switch.sync_mac(key, desired)

    def _learning(self, moves: list[Move], out: Output | None, now: float) -> None:
        """Learning packets for `moves`: into `out` now, or queued for `next_slice` (None)."""
        if not self.learning_packets:
            return
        for move in moves:
            if not move.needs_learning_packets or move.new_uplink is None:
                continue
            port = self.placement.ports.get(move.new_uplink)
            if port is None or not port.usable:
                continue
            key = (move.mac, move.vlan)
            entry = self.placement.macs.get(key)
            ips = tuple(sorted(entry.ips)) if entry else ()
            lp = LearningPackets(move.new_uplink, move.mac, move.vlan, ips)
            self.pending_learning.pop(key, None)  # superseded by this move's packets
            if out is None:
                self.pending_learning[key] = lp
            else:
                self._emit_learning(lp, out, now)

    def _emit_learning(self, lp: LearningPackets, out: Output, now: float) -> None:
        out.learning.append(lp)
        self.announced.announce((lp.mac, lp.vlan), now)
        self.events.add(
            now,
            "learning-packets",
            dpid=self.dpid,
            mac=lp.mac,
            vlan=lp.vlan,
            uplink=self.placement.port_name(lp.out_port),
            packets=max(1, len(lp.ips)),
        )

    def _log_moves(self, moves: list[Move], now: float) -> None:
        name = self.placement.port_name
        kinds = {REASON_LEARN: "learn", REASON_FORGET: "forget", REASON_RECOVERY: "recover"}
        uplink_load = self.placement.uplink_load  # bytes/s after these moves, O(1) each
        for m in moves:
            extra = {}
            if m.reason not in kinds:
                self.events.count(f"move:{m.reason}")
                entry = self.placement.macs.get((m.mac, m.vlan))
                extra = {
                    "mac_bps": entry.tx_bps + entry.rx_bps if entry else 0.0,
                    "from_bps": uplink_load(m.old_uplink),
                    "to_bps": uplink_load(m.new_uplink),
                }
            self.events.add(
                now,
                kinds.get(m.reason, "move"),
                dpid=self.dpid,
                mac=m.mac,
                vlan=m.vlan,
                port=name(m.port_no),
                reason=m.reason,
                **{
                    "from": None if m.old_uplink is None else name(m.old_uplink),
                    "to": None if m.new_uplink is None else name(m.new_uplink),
                },
                **extra,
            )

"""The Ryu application: translates OpenFlow events into `BridgeCore` calls and sends the
messages that come back. No placement logic lives here.

Run: ryu-manager slb_ryu.app --config-file slb.conf
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from ryu import cfg
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu import options
from slb_ryu.api import rest
from slb_ryu.core import pipeline
from slb_ryu.core.bridge import SLICE, BridgeCore, LearningPackets, Output
from slb_ryu.core.events import EventLog
from slb_ryu.core.jobs import Supervisor
from slb_ryu.core.placement import Move, Port
from slb_ryu.core.probe import PATH_DEAD, ProbeParams
from slb_ryu.openflow import errors, frames, learning_packets, ovsdb, probe_packets, stats
from slb_ryu.openflow import messages as ofmsgs
from slb_ryu.openflow.pacing import LearningLedger

CONF = cfg.CONF
TAG_REFRESH = 5.0  # seconds between OVSDB port tag reads
BFD_POLL = 0.5  # seconds between OVSDB bfd_status reads ([slb] bfd)
SEND_BATCH = 64  # flow-mods joined into one write to the switch connection
WATCH_INTERVAL = 0.02  # s between event-loop liveness checks
STALL_EVENT = 0.05  # s: a longer stall of the event loop is logged as an event
STALL_COUNTERS = (50, 100, 250, 1000)  # ms: counters event_loop_stall_over_<ms>ms
FREEZE_GROWTH = 1000  # MACs learned since the last gc.freeze() that warrant another
options.register(CONF)
stats.install()  # flow-stats reply entries stay raw until read (see openflow/stats.py)


def port_from_ofp(desc: Any) -> Port:
    """A placement `Port` from an OFPPort; live means carrier up and not admin-down."""
    name = desc.name.decode("utf-8", "replace") if isinstance(desc.name, bytes) else desc.name
    live = not (desc.state & ofp.OFPPS_LINK_DOWN) and not (desc.config & ofp.OFPPC_PORT_DOWN)
    return Port(desc.port_no, name, live=live, speed_bps=int(desc.curr_speed) * 1000)


def _next_xid(dp: Any) -> int:
    """The next transaction id of `dp`, as `Datapath.set_xid` gives it to a message."""
    dp.xid = (dp.xid + 1) & ofp.MAX_XID
    return dp.xid


class _Handshake:
    """Multipart replies collected on (re)connect before the core syncs the switch."""

    def __init__(self) -> None:
        self.ports: list[Port] = []
        self.groups: list = []
        self.meters: list = []
        self.flows: list = []
        self.ages: dict = {}
        self.port_status: list[tuple[str, Port]] = []


class SlbApp(app_manager.RyuApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            self.settings = options.load(CONF)
        except options.ConfigError as exc:
            for problem in exc.problems:
                self.logger.error("slb-ryu: configuration error: %s", problem)
            raise SystemExit(f"slb-ryu: configuration error: {exc}") from None
        self.event_log = EventLog(self.settings.event_log_size)
        self.sent_mods = errors.SentMods()  # (dpid, xid) -> mod, to explain error replies
        for warning in options.advice(self.settings):
            self.logger.warning("slb-ryu: %s", warning)
        self.bridges: dict[int, BridgeCore] = {}
        self.datapaths: dict[int, Any] = {}
        self.handshakes: dict[int, _Handshake] = {}
        self.started = time.time()
        self.params = self.settings.rebalance_params()
        self.limits = self.settings.limits()
        self.jobs = Supervisor(self.event_log, self.logger)
        self.next_rebalance_at: float | None = None  # time.monotonic() of the next run
        self.stats = stats.StatsPoller(self.event_log.count)
        self.ledger = LearningLedger(
            self.settings.learning_repeat, self.settings.learning_repeat_interval
        )
        self._send_locks: dict[int, Any] = {}
        self._wake_pacer = hub.Event()
        self._frozen_at = 0  # MACs on all bridges at the last gc.freeze()
        rest.register(kwargs["wsgi"], self)  # REST API, /metrics, JSON 404s
        self.threads.append(hub.spawn(self._timers))
        self.threads.append(hub.spawn(self._pacer))
        self.threads.append(hub.spawn(self._watchdog))
        self.probe_params = ProbeParams(
            self.settings.probe_interval, self.settings.probe_misses, self.settings.probe_recover
        )
        if self.settings.probe_targets or self.settings.bridge_probe_targets:
            self.threads.append(hub.spawn(self._probe_loop))
        if self.settings.bfd:
            self.threads.append(hub.spawn(self._bfd_loop))

    # ---- connection and handshake ------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if dp.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[dp.id] = dp
            self.handshakes[dp.id] = _Handshake()
            if dp.id in self.bridges:
                self.bridges[dp.id].synced = False
            self.event_log.add(time.time(), "switch-connect", dpid=dp.id)
            dp.send_msg(parser.OFPPortDescStatsRequest(dp, 0))
        elif self.datapaths.get(dp.id) is dp:
            del self.datapaths[dp.id]
            self.handshakes.pop(dp.id, None)
            if dp.id in self.bridges:
                self.bridges[dp.id].synced = False
            self.event_log.add(time.time(), "switch-disconnect", dpid=dp.id)

    def _more(self, msg: Any) -> bool:
        return bool(msg.flags & ofp.OFPMPF_REPLY_MORE)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, ev: Any) -> None:
        dp = ev.msg.datapath
        hs = self.handshakes.get(dp.id)
        if hs is None:
            return
        hs.ports += [port_from_ofp(p) for p in ev.msg.body]
        if not self._more(ev.msg):
            dp.send_msg(parser.OFPGroupDescStatsRequest(dp, 0))

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def _group_desc(self, ev: Any) -> None:
        dp = ev.msg.datapath
        hs = self.handshakes.get(dp.id)
        if hs is None:
            return
        hs.groups += [ofmsgs.spec_from_group_desc(g) for g in ev.msg.body]
        if not self._more(ev.msg):
            dp.send_msg(parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL))

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    def _meter_config(self, ev: Any) -> None:
        dp = ev.msg.datapath
        hs = self.handshakes.get(dp.id)
        if hs is None:
            return
        specs = (ofmsgs.spec_from_meter_config(m) for m in ev.msg.body)
        hs.meters += [m for m in specs if m is not None]
        if not self._more(ev.msg):
            dp.send_msg(ofmsgs.our_flows_request(dp))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        dp = ev.msg.datapath
        if self.stats.owns(ev.msg.xid):
            self.stats.reply(ev.msg, self.bridges.get)
            return
        hs = self.handshakes.get(dp.id)
        if hs is None:
            return
        for stat in ev.msg.body:
            spec = ofmsgs.spec_from_stats(stat)
            hs.flows.append(spec)
            hs.ages[spec.key] = stat.duration_sec + stat.duration_nsec / 1e9
        if self._more(ev.msg):
            return
        del self.handshakes[dp.id]
        now = time.time()
        core = self.bridges.get(dp.id)
        if core is None:
            local = next((p for p in hs.ports if p.port_no == ofp.OFPP_LOCAL), None)
            name = local.name if local else ""
            patterns = self.settings.uplinks_for(dp.id, name)
            core = BridgeCore(
                dp.id,
                patterns,
                self.event_log,
                self.settings.learning_packets,
                params=self.params,
                half_life=self.settings.load_half_life,
                speeds=self.settings.uplink_speeds,
                limits=self.limits,
                access_vlans=self._access_vlans(name),
                probe_targets=self.settings.probe_targets_for(dp.id, name),
                probe_params=self.probe_params,
            )
            self.bridges[dp.id] = core
            self.logger.info("bridge %s (dpid %016x): uplinks %s", name, dp.id, patterns)
        out = core.connect(hs.ports, hs.groups, hs.flows, hs.ages, now, hs.meters)
        for reason, port in hs.port_status:
            out.extend(core.port_status(reason, port, now))
        self.send(dp, out)
        self.logger.info(
            "bridge %s (dpid %016x) synced: %d MACs, %d flow mods",
            core.placement.name,
            dp.id,
            len(core.placement.macs),
            len(out.mods),
        )

    # ---- statistics and rebalancing ---------------------------------------------------

    def _timers(self) -> None:
        """One loop for every periodic job, so a slow poll never overlaps the next.

        Each job runs under `self.jobs`: an exception is logged with its traceback,
        counted, shown in /health, and the loop (and every other job) keeps going.
        """
        interval = self.settings.stats_interval
        rebalance = self.settings.rebalance_interval
        next_poll = next_rebalance = time.monotonic()
        if rebalance:
            next_rebalance += rebalance
            self.next_rebalance_at = next_rebalance
        next_tags = time.monotonic() + TAG_REFRESH
        while True:
            hub.sleep(0.25)
            now = time.monotonic()
            self.jobs.run("tick", self._tick)
            if now >= next_tags:
                next_tags = now + TAG_REFRESH
                self.jobs.run("ovsdb-tags", self._refresh_tags)
            if interval and now >= next_poll:
                next_poll = now + interval
                self.jobs.run("stats-poll", self._poll_all)
            if rebalance and now >= next_rebalance:
                next_rebalance = self.next_rebalance_at = now + rebalance
                self.jobs.run("rebalance", self.request_rebalance, None)

    def _probe_loop(self) -> None:
        """Path probing (core/probe.py) on its own schedule: probe_interval is sub-second,
        finer than the shared timer loop, and a late round would look like a miss."""
        interval = self.settings.probe_interval
        due = time.monotonic()
        while True:
            due += interval
            hub.sleep(max(0.0, due - time.monotonic()))
            if time.monotonic() - due > interval:  # we fell behind: skip, do not burst
                due = time.monotonic()
            self.jobs.run("probe", self._probe_all)

    def _probe_all(self) -> None:
        for dpid, core in list(self.bridges.items()):
            dp = self.datapaths.get(dpid)
            if dp is None or not core.synced or core.prober is None:
                continue
            out, requests = core.probe_round(time.time())
            for port_no, old, new in core.prober.last_changes:
                if PATH_DEAD in (old, new):
                    self.logger.warning(
                        "bridge %s: uplink %s path %s -> %s (probe targets %s)",
                        core.placement.label,
                        core.placement.port_name(port_no),
                        old,
                        new,
                        ", ".join(map(str, core.prober.targets)),
                    )
            self.send(dp, out)
            for request in requests:
                data = probe_packets.probe_frame(request)
                dp.send_msg(ofmsgs.packet_out(dp, ofp.OFPP_CONTROLLER, request.port_no, data))
            self.event_log.count("probe_requests_sent", len(requests))

    def _bfd_loop(self) -> None:
        while True:
            hub.sleep(BFD_POLL)
            self.jobs.run("ovsdb-bfd", self._bfd_all)

    def _bfd_all(self) -> None:
        """OVS BFD state of every uplink (OVSDB): a session that is down means path-dead."""
        for dpid, core in list(self.bridges.items()):
            dp = self.datapaths.get(dpid)
            if dp is None or not core.synced:
                continue
            names = [p.name for p in core.placement.uplinks]
            states = ovsdb.bfd_states(names)  # OvsdbError: the job supervisor logs it
            out = core.bfd_update(states, time.time())
            if out.moves or out.mods:
                self.logger.warning(
                    "bridge %s: BFD state of uplinks %s", core.placement.label, states
                )
            self.send(dp, out)

    def _tick(self) -> None:
        self.event_log.flush(time.time())  # summaries of rate-limited log lines
        for dpid, core in list(self.bridges.items()):
            dp = self.datapaths.get(dpid)
            if dp is not None and core.synced:
                self.send(dp, core.tick(time.time()))

    def _poll_all(self) -> None:
        for dpid, dp in list(self.datapaths.items()):
            core = self.bridges.get(dpid)
            if core is not None and core.synced:
                self._poll(dp)

    def _poll(self, dp: Any) -> None:
        """Ask for the per-MAC source and destination flow counters and the port counters."""
        for req in self.stats.requests(dp):
            dp.send_msg(req)

    @property
    def stats_poll_seconds(self) -> float:
        """Duration of the last complete flow-counter poll (metrics)."""
        return self.stats.last_seconds

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev: Any) -> None:
        if self.stats.owns(ev.msg.xid):
            self.stats.reply(ev.msg, self.bridges.get)

    def request_rebalance(self, dpid: int | None) -> list[tuple[int, Move]]:
        """Run a rebalance now on one bridge (or all synced ones); the moves, by dpid."""
        moved = []
        for core_dpid, core in list(self.bridges.items()):
            dp = self.datapaths.get(core_dpid)
            if (dpid is not None and core_dpid != dpid) or dp is None or not core.synced:
                continue
            out = core.rebalance(time.time())
            self.send(dp, out)
            moved += [(core_dpid, m) for m in out.moves]
        return moved

    # ---- events ----------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        reason = {
            ofp.OFPPR_ADD: "add",
            ofp.OFPPR_DELETE: "delete",
            ofp.OFPPR_MODIFY: "modify",
        }.get(msg.reason, "modify")
        port = port_from_ofp(msg.desc)
        hs = self.handshakes.get(dp.id)
        if hs is not None:
            hs.port_status.append((reason, port))
            return
        core = self.bridges.get(dp.id)
        if core is None or not core.synced:
            return
        if reason == "add":
            port.vlan = self._access_vlans(core.placement.name).get(port.name, 0)
        self.send(dp, core.port_status(reason, port, time.time()))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        self.event_log.count("packet_in")
        core = self.bridges.get(dp.id)
        if core is None:
            return
        frame = frames.parse(msg.data)
        in_port = msg.match.get("in_port")
        if frame is None or in_port is None:
            self.event_log.count("packet_in_malformed")
            return
        kind = pipeline.cookie_kind(msg.cookie)
        if kind == pipeline.KIND_PROBE:
            core.probe_reply(in_port, frame.arp_spa, frame.vlan, time.time())
            return
        out = core.packet_in(
            kind,
            in_port,
            frame.src,
            frame.vlan,
            frame.arp_spa,
            time.time(),
            garp=frame.is_gratuitous_arp,
        )
        self.send(dp, out)  # the MAC's flows first: the re-injected frame must match them
        if out.reinject:
            data = frames.untag(msg.data) if out.untag else msg.data
            dp.send(ofmsgs.packet_out_bytes(in_port, ofp.OFPP_TABLE, data, _next_xid(dp)))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        dpid = msg.datapath.id
        name, cause = errors.error_name(msg.type, msg.code), self.sent_mods.lookup(dpid, msg.xid)
        if cause is None:  # forgotten (or not a mod): say what kind of request it was
            cause = errors.offending_type(bytes(msg.data or b""))
        self.event_log.add(
            time.time(), "openflow-error", dpid=dpid, error=name, xid=msg.xid, cause=cause
        )

    # ---- output ----------------------------------------------------------------------

    def send(self, dp: Any, out: Output) -> None:
        """Send a core `Output` in order. One sender at a time per switch: a send blocks
        (and yields) when Ryu's queue is full, and what another greenthread computed
        later must not overtake what this one is still sending. Every mod's xid is
        remembered, so an error reply names the mod that caused it (_error)."""
        lock = self._send_locks.setdefault(dp.id, hub.Semaphore())
        with lock:
            chunk: list[bytes] = []  # flow-mods packed directly, sent in batches
            for obj, command, spec in out.mods:
                packed = None
                if obj == "flow":
                    xid = _next_xid(dp)
                    try:
                        packed = ofmsgs.flow_mod_bytes(spec, command, xid)
                    except ofmsgs.Unpackable:
                        packed = None  # Ryu's serialiser below
                if packed is not None:
                    self.sent_mods.remember(dp.id, xid, obj, command, spec)
                    chunk.append(packed)
                    if len(chunk) < SEND_BATCH:
                        continue
                if chunk:
                    dp.send(b"".join(chunk))
                    chunk = []
                if packed is None:
                    build = {"group": ofmsgs.group_mod, "meter": ofmsgs.meter_mod}.get(
                        obj, ofmsgs.flow_mod
                    )
                    msg = build(dp, spec, command)
                    dp.set_xid(msg)
                    self.sent_mods.remember(dp.id, msg.xid, obj, command, spec)
                    dp.send_msg(msg)
            if chunk:
                dp.send(b"".join(chunk))
            for lp in out.learning:
                self._learning_packets(dp, lp)
        core = self.bridges.get(dp.id)
        if core is not None and core.backlog:
            self._wake_pacer.set()

    def _learning_packets(self, dp: Any, lp: LearningPackets, left: int | None = None) -> None:
        for data in learning_packets.learning_packets(lp.mac, lp.ips, lp.vlan):
            dp.send(ofmsgs.packet_out_bytes(ofp.OFPP_CONTROLLER, lp.out_port, data, _next_xid(dp)))
        self.event_log.count("learning_packets_sent", max(1, len(lp.ips)))
        # Frames of the MAC still queued on the old uplink reach the old switch after
        # our announcement and teach it the old port again: announce again later.
        self.ledger.sent(dp.id, dp, lp, time.monotonic(), left)

    def _current(self, dpid: int, dp: Any = None) -> Any:
        """The live, synced connection of `dpid` (and only if it is `dp`, when given)."""
        current = self.datapaths.get(dpid)
        core = self.bridges.get(dpid)
        if current is None or not current.is_active or core is None or not core.synced:
            return None
        return current if dp is None or current is dp else None

    def _pacer(self) -> None:
        """Deferred work, one slice at a time with a yield between slices: a failover of
        10,000 MACs must not keep OVS's echo requests or packet-ins waiting. Learning
        packets go only into a live, synced connection; repeats and packets a dying
        connection may have lost are given back to the core to send after reconnect."""
        while True:
            self._wake_pacer.wait(timeout=0.1)
            self._wake_pacer.clear()
            for dpid, core in list(self.bridges.items()):
                while core.backlog and (dp := self._current(dpid)) is not None:
                    self.send(dp, core.next_slice(time.time()))
                    hub.sleep(0)
            while due := self.ledger.due(time.monotonic(), limit=SLICE):
                for dpid, lp, left in due:
                    self._repeat_learning(dpid, lp, left)
                hub.sleep(0)
            for dpid, lp in self.ledger.lost(time.monotonic(), self._current):
                core = self.bridges.get(dpid)
                if core is not None:
                    self.event_log.count("learning_packets_requeued")
                    core.requeue_learning(lp)
            self._freeze_state()

    def _freeze_state(self) -> None:
        """Keep the garbage collector off the long-lived placement state.

        Each MAC is a few dozen tracked objects (entry, flow specs, counters); CPython's
        full collections walk all of them, ~60 ms at 10,000 MACs, blocking the event loop
        several times while a bridge learns. After every FREEZE_GROWTH new MACs, the
        young generations are collected and what survives is frozen (gc.freeze): later
        full collections skip it. Frozen objects are still freed by reference counting;
        the placement state holds no reference cycles once a MAC is forgotten."""
        macs = sum(len(core.placement.macs) for core in self.bridges.values())
        if macs - self._frozen_at < FREEZE_GROWTH:
            self._frozen_at = min(self._frozen_at, macs)
            return
        gc.collect(1)
        gc.freeze()
        self._frozen_at = macs
        self.event_log.count("gc_freezes")

    def _watchdog(self) -> None:
        """Notice when the event loop was blocked (nothing else ran) for longer than
        STALL_EVENT: OVS drops a controller that misses its echo replies, and packet-ins
        wait meanwhile. Logged as an `event-loop-stall` event with its length, and
        counted by size (`event_loop_stall_over_<ms>ms`, in /health counters)."""
        while True:
            started = time.monotonic()
            hub.sleep(WATCH_INTERVAL)
            lag = time.monotonic() - started - WATCH_INTERVAL
            if lag > STALL_EVENT:
                self.event_log.add(time.time(), "event-loop-stall", ms=round(lag * 1e3, 1))
                for ms in STALL_COUNTERS:  # counters outlive the event ring
                    if lag * 1e3 > ms:
                        self.event_log.count(f"event_loop_stall_over_{ms}ms")
                if lag > 2 * STALL_EVENT:
                    self.logger.warning("event loop blocked for %.0f ms", lag * 1e3)

    def _repeat_learning(self, dpid: int, lp: LearningPackets, left: int) -> None:
        """Repeat only while the MAC is still pinned there; no connection: send it later."""
        core = self.bridges.get(dpid)
        entry = core.entry(lp.mac, lp.vlan) if core else None
        if core is None or entry is None or entry.uplink != lp.out_port:
            return
        dp = self._current(dpid)
        if dp is None:
            core.requeue_learning(lp)
            return
        core.announced.announce((lp.mac, lp.vlan), time.time())
        with self._send_locks.setdefault(dpid, hub.Semaphore()):
            self._learning_packets(dp, lp, left)

    def _access_vlans(self, bridge: str) -> dict[str, int]:
        """Access VLANs of a bridge's ports: configuration first, then OVSDB `tag`."""
        tags = {}
        if self.settings.ovsdb_tags and bridge:
            try:
                tags = ovsdb.port_tags(bridge)
            except ovsdb.OvsdbError as exc:
                self.event_log.count("ovsdb_errors")
                self.logger.warning("cannot read port tags of %s: %s", bridge, exc)
        tags.update(self.settings.access_ports)
        return tags

    def _refresh_tags(self) -> None:
        """`ovs-vsctl set port X tag=N` raises no OpenFlow event: poll OVSDB for it."""
        for dpid, core in list(self.bridges.items()):
            dp = self.datapaths.get(dpid)
            if dp is None or not core.synced:
                continue
            tags = self._access_vlans(core.placement.name)
            current = {p.name: p.vlan for p in core.placement.local_ports}
            wanted = {name: tags.get(name, 0) for name in current}
            if wanted != current:
                self.send(dp, core.set_access_vlans(wanted, time.time()))

    def act(self, dpid: int, action: Callable[[BridgeCore], Output]) -> Output:
        """Run a core command for the REST API, send its output to the switch, return it."""
        out = action(self.bridges[dpid])
        dp = self.datapaths.get(dpid)
        if dp is not None:
            self.send(dp, out)
        return out

    def job_problems(self) -> list[str]:
        return self.jobs.problems(time.time())

    def job_failures(self) -> dict[str, int]:
        return self.jobs.failures()

    def next_rebalance_in(self) -> float | None:
        if not self.settings.rebalance_interval or self.next_rebalance_at is None:
            return None
        return round(max(0.0, self.next_rebalance_at - time.monotonic()), 3)

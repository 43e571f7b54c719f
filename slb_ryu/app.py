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
from ryu.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp

from slb_ryu import options
from slb_ryu.api import protect, rest
from slb_ryu.core import pipeline, ports_check
from slb_ryu.core.bridge import SLICE, BridgeCore, LearningPackets, Output, run_steps
from slb_ryu.core.events import EventLog
from slb_ryu.core.jobs import Supervisor
from slb_ryu.core.placement import Move, Port
from slb_ryu.core.probe import PATH_DEAD, ProbeParams
from slb_ryu.openflow import (
    errors,
    frames,
    handshake,
    learning_packets,
    listener,
    marks,
    ovsdb,
    probe_packets,
    stats,
)
from slb_ryu.openflow import messages as ofmsgs
from slb_ryu.openflow.handshake import port_from_ofp
from slb_ryu.openflow.pacing import LearningLedger

CONF = cfg.CONF
TAG_REFRESH = 5.0  # seconds between OVSDB port tag reads
BFD_POLL = 0.5  # seconds between OVSDB bfd_status reads ([slb] bfd)
MARKS_INTERVAL = 1.0  # s between reads of the learning-in-progress marks (PENDING_HOLD 2 s)
SEND_BATCH = 64  # flow-mods joined into one write to the switch connection
WATCH_INTERVAL = 0.02  # s between event-loop liveness checks
STALL_EVENT = 0.05  # s: a longer stall of the event loop is logged as an event
STALL_COUNTERS = (50, 100, 250, 1000)  # ms: counters event_loop_stall_over_<ms>ms
TICK = 0.25  # s between two rounds of the timer loop
SHARDS_WITHIN = 0.8  # of the stats interval: a large flow poll's shards are spread over it
FREEZE_GROWTH = 1000  # MACs learned since the last gc.freeze() that warrant another
FREEZE_CHANGES = 2000  # or mods sent + MAC counters read since then (a re-pin or a stats
# poll replaces MACs' state without growth)
options.register(CONF)
stats.install()  # flow-stats reply entries stay raw until read (see openflow/stats.py)
listener.listen_on_loopback(CONF)  # OpenFlow listener: 127.0.0.1 unless --ofp-listen-host
listener.fix_tls_server(CONF)  # Ryu 4.34's TLS server fails every connection after the first
protect.install(CONF)  # REST server: Host/Content-Type checks, connection timeouts and cap

__all__ = ["SlbApp", "port_from_ofp"]


def _next_xid(dp: Any) -> int:
    """The next transaction id of `dp`, as `Datapath.set_xid` gives it to a message."""
    dp.xid = (dp.xid + 1) & ofp.MAX_XID
    return dp.xid


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
        self.conns = handshake.Connections(
            self.event_log,
            self._connection_changed,
            self._connection_changed,
            self._synced,
            pause=lambda: hub.sleep(0),
        )
        self.datapaths: dict[int, Any] = self.conns.active  # accepted connections only
        self.unmanaged: dict[int, dict] = {}  # dpid -> {"name", "problems", "ports"}
        self.started = time.time()
        self.params = self.settings.rebalance_params()
        self.limits = self.settings.limits()
        self.jobs = Supervisor(self.event_log, self.logger)
        self.next_rebalance_at: float | None = None  # time.monotonic() of the next run
        self.stats = stats.StatsPoller(self.event_log.count)
        self.marks = marks.MarkReader()  # learning copies lost on the way (core/marks.py)
        self.ledger = LearningLedger(
            self.settings.learning_repeat, self.settings.learning_repeat_interval
        )
        self._send_locks: dict[int, Any] = {}
        self._wake_pacer = hub.Event()
        self._frozen_at = 0  # MACs on all bridges at the last gc.freeze()
        self._changes_since_freeze = 0  # mods sent and MAC counters read since then
        rest.register(kwargs["wsgi"], self)  # REST API, /metrics, JSON 404s
        protect.count_with(self.event_log.count)  # refused REST requests
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
        self.threads.append(hub.spawn(self._watch_connections))

    # ---- connection and handshake (state machine: openflow/handshake.py) ----------------

    @set_ev_cls(
        ofp_event.EventOFPStateChange,
        [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER, DEAD_DISPATCHER],
    )
    def _state_change(self, ev: Any) -> None:
        if ev.state == MAIN_DISPATCHER and ev.datapath.id is not None:
            self.conns.main(ev.datapath)
        elif ev.state == DEAD_DISPATCHER:
            self.conns.dead(ev.datapath)
        else:
            self.conns.opening(ev.datapath)

    @set_ev_cls(ofp_event.EventOFPEchoReply, MAIN_DISPATCHER)
    def _echo_reply(self, ev: Any) -> None:
        self.conns.echo_reply(ev.msg.datapath, ev.msg.xid)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, ev: Any) -> None:
        self._collect(ev.msg)

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def _group_desc(self, ev: Any) -> None:
        self._collect(ev.msg)

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    def _meter_config(self, ev: Any) -> None:
        self._collect(ev.msg)

    def _collect(self, msg: Any) -> None:
        if not self.conns.collect(msg):
            self.event_log.count("unexpected_reply")

    def _more(self, msg: Any) -> bool:
        return bool(msg.flags & ofp.OFPMPF_REPLY_MORE)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        if not self.conns.accepted(ev.msg.datapath):
            self.event_log.count("unexpected_reply")
            return
        if self.stats.owns(ev.msg.xid):
            self.stats.reply(ev.msg, self.bridges.get)
            self._changes_since_freeze += len(ev.msg.body)
            return
        if self.marks.owns(ev.msg.xid):
            dpid, found = self.marks.reply(ev.msg)
            core = self.bridges.get(dpid)
            if core is not None and found:
                self.send(ev.msg.datapath, core.learning_marks(found, time.time()))
            return
        self._collect(ev.msg)

    def _watch_connections(self) -> None:
        while True:
            hub.sleep(1.0)
            self.conns.expire()

    def _connection_changed(self, dp: Any) -> None:
        """A connection became, or stopped being, the one of its datapath id."""
        if dp.id in self.bridges:
            self.bridges[dp.id].synced = False

    def _synced(self, dp: Any, hs: handshake.Collector) -> None:
        """Handshake replies are in: check the ports against the configuration, then sync."""
        now = time.time()
        local = next((p for p in hs.ports if p.port_no == ofp.OFPP_LOCAL), None)
        name = local.name if local else ""
        core = self.bridges.get(dp.id)
        ports = {p.port_no: p for p in hs.ports}
        for reason, port in hs.port_status:
            if reason == "delete":
                ports.pop(port.port_no, None)
            else:
                ports[port.port_no] = port
        recovered = hs.recovered  # pipeline.entries_from_flows(hs.flows), slice by slice
        if core is not None and not _memory_fits(core, hs, recovered):
            # What we remember was learned from another switch claiming this datapath
            # id: this switch's own flows are the truth, start over from them instead
            # of deleting them.
            self.logger.warning(
                "bridge %016x: placement in memory differs from the bridge's own flows "
                "or ports: adopting the bridge's",
                dp.id,
            )
            self.event_log.count("placement_from_switch")
            del self.bridges[dp.id]
            core = None
        learned = {e.port_no for e in recovered}
        if core is not None:
            learned |= {e.port_no for e in core.placement.macs.values()}
        patterns = self.settings.uplinks_for(dp.id, name)
        problems = ports_check.check_uplinks(patterns, ports.values(), learned)
        if problems:
            self._unmanage(dp, name, problems, list(ports.values()), learned)
            return
        if self.unmanaged.pop(dp.id, None) is not None:
            self.event_log.add(now, "bridge-managed", dpid=dp.id, bridge=name)
            self.logger.warning("bridge %s (dpid %016x): its ports match now", name, dp.id)
        if core is None:
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
        steps = core.connect_steps(hs.ports, hs.groups, hs.flows, hs.ages, now, hs.meters)
        out = run_steps(steps, lambda: hub.sleep(0))  # yields between slices of MACs
        for reason, port in hs.port_status:
            out.extend(core.port_status(reason, port, now))
        self.send(dp, out)
        self._port_security(dp, core)
        self.logger.info(
            "bridge %s (dpid %016x) synced: %d MACs, %d flow mods",
            core.placement.name,
            dp.id,
            len(core.placement.macs),
            len(out.mods),
        )

    def _unmanage(
        self, dp: Any, name: str, problems: list[str], ports: list[Port], learned: set[int]
    ) -> None:
        """Ports do not match the configuration: our flows go, one drop-all stays."""
        first = dp.id not in self.unmanaged
        self.unmanaged[dp.id] = {"name": name, "problems": problems, "ports": ports}
        self.unmanaged[dp.id]["learned"] = learned
        if dp.id in self.bridges:
            self.bridges[dp.id].synced = False
        dp.send_msg(handshake.delete_our_flows(dp))
        dp.send_msg(handshake.delete_our_flows(dp, cookie=pipeline.COOKIE_LEARNED))
        dp.send_msg(ofmsgs.flow_mod(dp, ports_check.drop_all_flow(), "add"))
        if first:
            self.event_log.count("bridge_unmanaged")
            self.event_log.add(
                time.time(), "bridge-unmanaged", dpid=dp.id, bridge=name, problems=problems
            )
        self.logger.error(
            "bridge %s (dpid %016x) is NOT managed (all traffic dropped) until its ports "
            "match [slb] uplinks / bridge_uplinks: %s",
            name,
            dp.id,
            "; ".join(problems),
        )

    def _unmanaged_port_status(self, dp: Any, reason: str, port: Port) -> None:
        """A port changed on an unmanaged bridge: manage it as soon as its ports match."""
        info = self.unmanaged[dp.id]
        ports = {p.port_no: p for p in info["ports"]}
        if reason == "delete":
            ports.pop(port.port_no, None)
        else:
            ports[port.port_no] = port
        info["ports"] = list(ports.values())
        patterns = self.settings.uplinks_for(dp.id, info["name"])
        if not ports_check.check_uplinks(patterns, info["ports"], info["learned"]):
            self.conns.restart(dp)  # full handshake again, then _synced manages it

    def security_problems(self) -> list[str]:
        """Impostor refusals and unmanaged bridges, for /health."""
        names = {d: c.placement.name for d, c in self.bridges.items()}
        names.update({d: u["name"] for d, u in self.unmanaged.items()})
        out = self.conns.problems(names)
        for dpid, info in sorted(self.unmanaged.items()):
            out.append(
                f"bridge {info['name'] or f'{dpid:016x}'} is not managed (all traffic "
                f"dropped): {'; '.join(info['problems'])}"
            )
        return out

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
        next_marks = time.monotonic() + MARKS_INTERVAL
        while True:
            hub.sleep(TICK)
            now = time.monotonic()
            self.jobs.run("tick", self._tick)
            if now >= next_marks:
                next_marks = now + MARKS_INTERVAL
                self.jobs.run("learning-marks", self._read_marks)
            if now >= next_tags:
                next_tags = now + TAG_REFRESH
                self.jobs.run("ovsdb-tags", self._refresh_tags)
            self.jobs.run("stats-shards", self._poll_shards)
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

    def _read_marks(self) -> None:
        """Ask each synced switch for its learning-in-progress marks (one request, which
        costs OVS ~1 us per mark present, bench/README.md); the replies go to the core."""
        for dpid, dp in list(self.datapaths.items()):
            core = self.bridges.get(dpid)
            if core is not None and core.synced and (req := self.marks.request(dp)) is not None:
                dp.send_msg(req)

    def _poll_all(self) -> None:
        for dpid, dp in list(self.datapaths.items()):
            core = self.bridges.get(dpid)
            if core is not None and core.synced:
                self._poll(dp)

    def _poll(self, dp: Any) -> None:
        """Ask for the per-MAC source and destination flow counters (the first shard of
        them: openflow/stats.py) and the port counters."""
        core = self.bridges.get(dp.id)
        macs = len(core.placement.macs) if core else 0
        spread = SHARDS_WITHIN * self.settings.stats_interval
        for req in self.stats.requests(dp, macs, spread, TICK):
            dp.send_msg(req)

    def _poll_shards(self) -> None:
        """The next shard of each flow poll, when due (openflow/stats.py), on the connection
        the poll began on, if it is still the switch's."""
        for dp, req in self.stats.due(time.monotonic()):
            if self.datapaths.get(dp.id) is dp:
                dp.send_msg(req)

    @property
    def stats_poll_seconds(self) -> float:
        """Duration of the last complete flow-counter poll (metrics)."""
        return self.stats.last_seconds

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev: Any) -> None:
        if not self.conns.accepted(ev.msg.datapath):
            self.event_log.count("unexpected_reply")
            return
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
        if not self.conns.accepted(dp):
            self.event_log.count("port_status_ignored")  # not the connection of this dpid
            return
        hs = self.conns.handshaking(dp)
        if hs is not None:
            hs.port_status.append((reason, port))
            return
        if dp.id in self.unmanaged:
            self._unmanaged_port_status(dp, reason, port)
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
        if not self.conns.accepted(dp):
            self.event_log.count("packet_in_ignored")  # not the connection of this dpid
            return
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
            garp=frame.is_gratuitous_arp or frame.ethertype == pipeline.ETH_TYPE_RARP,
            claimed=msg.match.get("reg1", 0) == 1,
        )
        for warning in out.warnings:
            self.logger.warning("bridge %016x: %s", dp.id, warning)
        self.send(dp, out)  # the MAC's flows first: the re-injected frame must match them
        if out.reinject:
            data = frames.untag(msg.data) if out.untag else msg.data
            dp.send(ofmsgs.packet_out_bytes(in_port, ofp.OFPP_TABLE, data, _next_xid(dp)))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev: Any) -> None:
        """An aged MAC's source flow went idle: the core forgets the MAC and its flows."""
        dp = ev.msg.datapath
        core = self.bridges.get(dp.id)
        if core is None or not core.synced:
            return
        spec, reason = ofmsgs.removed_from_msg(ev.msg)
        self.send(dp, core.flow_removed(spec, reason, time.time()))

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
        self._changes_since_freeze += len(out.mods)
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
                    self._freeze_state()  # a re-pin's new state, before a full collection
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
        several times while a bridge learns. After every FREEZE_GROWTH new MACs, or
        FREEZE_CHANGES mods sent and MAC counters read (a failover re-pins thousands of
        MACs and a stats poll renews every MAC's load: new objects, no growth; left
        unfrozen they made 50-230 ms full collections at 10,000 MACs, bench/README.md),
        the young generations are collected and what survives is frozen (gc.freeze):
        later full collections skip it. Frozen objects are still freed by reference
        counting; the placement state holds no reference cycles once a MAC is forgotten."""
        macs = sum(len(core.placement.macs) for core in self.bridges.values())
        if macs - self._frozen_at < FREEZE_GROWTH and self._changes_since_freeze < FREEZE_CHANGES:
            self._frozen_at = min(self._frozen_at, macs)
            return
        gc.collect(1)
        gc.freeze()
        self._frozen_at = macs
        self._changes_since_freeze = 0
        self.event_log.count("gc_freezes")

    def _watchdog(self) -> None:
        """Notice when the event loop was blocked (nothing else ran) for longer than
        STALL_EVENT: OVS drops a controller that misses its echo replies, and packet-ins
        wait meanwhile. Logged as an `event-loop-stall` event with its length, and
        counted by size (`event_loop_stall_over_<ms>ms`, in /health counters). The event
        says what the time went to: `cpu_ms` this process used meanwhile (much less than
        `ms`: the machine did not run us) and `gc_ms` of it in garbage collection."""
        gc_clock = _GcClock()
        gc.callbacks.append(gc_clock)
        while True:
            started, cpu, gc_s = time.monotonic(), time.process_time(), gc_clock.total
            hub.sleep(WATCH_INTERVAL)
            lag = time.monotonic() - started - WATCH_INTERVAL
            if lag > STALL_EVENT:
                self.event_log.add(
                    time.time(),
                    "event-loop-stall",
                    ms=round(lag * 1e3, 1),
                    cpu_ms=round((time.process_time() - cpu) * 1e3, 1),
                    gc_ms=round((gc_clock.total - gc_s) * 1e3, 1),
                )
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
            self._port_security(dp, core)

    def _port_security(self, dp: Any, core: BridgeCore) -> None:
        """OVSDB `external_ids:attached-mac` of the bridge's interfaces (port security)."""
        if not self.settings.port_security or not core.placement.name:
            return
        try:
            macs = ovsdb.attached_macs(core.placement.name)
        except ovsdb.OvsdbError as exc:
            self.event_log.count("ovsdb_errors")
            self.logger.warning("cannot read attached MACs of %s: %s", core.placement.name, exc)
            return
        self.send(dp, core.set_attached_macs(macs, time.time()))

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


class _GcClock:
    """A gc.callbacks hook: seconds spent in garbage collection so far."""

    def __init__(self) -> None:
        self.total = 0.0
        self.started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self.started


def _memory_fits(core: BridgeCore, hs: handshake.Collector, recovered: list) -> bool:
    """May the core's memory be written to this switch? Not when it was learned over a
    connection whose ports (name, MAC) differ from this one's (another switch held the
    datapath id) while this switch still holds per-MAC flows of ours to recover from.
    Otherwise memory wins: it repairs a damaged table and refills a flushed one."""
    known = core.placement.ports
    if any(p.port_no in known and known[p.port_no].name != p.name for p in hs.ports):
        return False
    return hs.same_switch or not recovered

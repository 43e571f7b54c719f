"""The Ryu application: translates OpenFlow events into `BridgeCore` calls and sends the
messages that come back. No placement logic lives here.

Run: ryu-manager slb_ryu.app --config-file slb.conf
"""

from __future__ import annotations

import time
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
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu import options
from slb_ryu.api import protect, rest
from slb_ryu.core import pipeline, ports_check
from slb_ryu.core.bridge import BridgeCore, LearningPackets, Limits, Output
from slb_ryu.core.events import EventLog
from slb_ryu.core.placement import Port
from slb_ryu.core.rebalance import RebalanceParams
from slb_ryu.openflow import frames, handshake, learning_packets, listener, ovsdb
from slb_ryu.openflow import messages as ofmsgs
from slb_ryu.openflow.handshake import port_from_ofp

CONF = cfg.CONF
TAG_REFRESH = 5.0  # seconds between OVSDB port tag reads
options.register(CONF)
listener.listen_on_loopback(CONF)  # OpenFlow listener: 127.0.0.1 unless --ofp-listen-host
listener.fix_tls_server(CONF)  # Ryu 4.34's TLS server fails every connection after the first
protect.install(CONF)  # REST server: Host/Content-Type checks, connection timeouts and cap

__all__ = ["SlbApp", "port_from_ofp"]


class SlbApp(app_manager.RyuApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            self.settings = options.load(CONF)
        except options.ConfigError as exc:
            self.logger.error("slb-ryu: configuration error: %s", exc)
            raise SystemExit(f"slb-ryu: configuration error: {exc}") from None
        self.event_log = EventLog(self.settings.event_log_size)
        if 0 < self.settings.min_dwell < self.settings.rebalance_interval:
            self.logger.warning(
                "[slb] min_dwell (%s s) < rebalance_interval (%s s): a MAC moved in one run "
                "may be moved back in the next; keep min_dwell >= rebalance_interval",
                self.settings.min_dwell,
                self.settings.rebalance_interval,
            )
        self.bridges: dict[int, BridgeCore] = {}
        self.conns = handshake.Connections(
            self.event_log, self._connection_changed, self._connection_changed, self._synced
        )
        self.datapaths: dict[int, Any] = self.conns.active  # accepted connections only
        self.unmanaged: dict[int, dict] = {}  # dpid -> {"name", "problems", "ports"}
        self.started = time.time()
        self.params = RebalanceParams(
            min_gain=self.settings.rebalance_min_gain,
            min_load=self.settings.rebalance_min_load,
            min_dwell=self.settings.min_dwell,
            max_moves=self.settings.max_moves,
        )
        self.limits = Limits(
            max_macs_per_port=self.settings.max_macs_per_port,
            packet_in_rate=self.settings.packet_in_rate,
            grat_arp_lock=self.settings.grat_arp_lock,
            flap_limit=self.settings.flap_limit,
            flap_window=self.settings.flap_window,
            flap_hold=self.settings.flap_hold,
        )
        self.polls: dict[int, dict] = {}  # xid -> {"dpid", "samples", "sent"}
        self.stats_poll_seconds = 0.0
        rest.register(kwargs["wsgi"], self)  # REST API, /metrics, JSON 404s
        protect.count_with(self.event_log.count)  # refused REST requests
        self.threads.append(hub.spawn(self._timers))
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
        if ev.msg.xid in self.polls:
            self._poll_reply(ev.msg)
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
        recovered = pipeline.entries_from_flows(hs.flows, hs.ages, now)
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
            )
            self.bridges[dp.id] = core
            self.logger.info("bridge %s (dpid %016x): uplinks %s", name, dp.id, patterns)
        out = core.connect(hs.ports, hs.groups, hs.flows, hs.ages, now, hs.meters)
        for reason, port in hs.port_status:
            out.extend(core.port_status(reason, port, now))
        self.send(dp, out)
        self.logger.info(
            "bridge %016x synced: %d MACs, %d flow mods",
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
        """One loop for both intervals, so a slow poll never overlaps the next."""
        interval = self.settings.stats_interval
        rebalance = self.settings.rebalance_interval
        next_poll = next_rebalance = time.monotonic()
        if rebalance:
            next_rebalance += rebalance
        next_tags = time.monotonic() + TAG_REFRESH
        while True:
            hub.sleep(0.25)
            now = time.monotonic()
            for dpid, core in list(self.bridges.items()):
                dp = self.datapaths.get(dpid)
                if dp is not None and core.synced:
                    self.send(dp, core.tick(time.time()))
            if now >= next_tags:
                next_tags = now + TAG_REFRESH
                self._refresh_tags()
            if interval and now >= next_poll:
                next_poll = now + interval
                for dpid, dp in list(self.datapaths.items()):
                    core = self.bridges.get(dpid)
                    if core is not None and core.synced:
                        self._poll(dp)
            if rebalance and now >= next_rebalance:
                next_rebalance = now + rebalance
                self.request_rebalance(None)

    def _poll(self, dp: Any) -> None:
        """Ask for the per-MAC source and destination flow counters and the port counters."""
        stale = {id(p): p for p in self.polls.values() if p["dpid"] == dp.id}
        if stale:  # the previous poll of this switch never completed: give up on it
            self.polls = {x: p for x, p in self.polls.items() if id(p) not in stale}
            self.event_log.count("stats_poll_lost")
        flows = {"dpid": dp.id, "kind": "flow", "samples": [], "pending": set()}
        ports = {"dpid": dp.id, "kind": "port", "samples": [], "pending": set()}
        flows["sent"] = ports["sent"] = time.monotonic()
        requests = [
            (ofmsgs.kind_flows_request(dp, pipeline.KIND_SRC), flows),
            (ofmsgs.kind_flows_request(dp, pipeline.KIND_DST), flows),
            (parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY), ports),
        ]
        for req, poll in requests:
            dp.set_xid(req)
            poll["pending"].add(req.xid)
            self.polls[req.xid] = poll
        for req, _ in requests:
            dp.send_msg(req)

    def _poll_reply(self, msg: Any) -> None:
        poll = self.polls[msg.xid]
        if poll["kind"] == "port":
            poll["samples"] += [(p.port_no, (p.tx_bytes, p.rx_bytes)) for p in msg.body]
        else:
            for stat in msg.body:
                age = stat.duration_sec + stat.duration_nsec / 1e9
                poll["samples"].append((ofmsgs.spec_from_stats(stat), stat.byte_count, age))
        if self._more(msg):
            return
        del self.polls[msg.xid]
        poll["pending"].discard(msg.xid)
        core = self.bridges.get(poll["dpid"])
        if poll["pending"] or core is None:
            return
        if poll["kind"] == "port":
            core.port_stats(dict(poll["samples"]))
        else:
            core.flow_stats(poll["samples"], time.time())
            self.stats_poll_seconds = time.monotonic() - poll["sent"]
        self.event_log.count("stats_replies")

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev: Any) -> None:
        if ev.msg.xid in self.polls:
            self._poll_reply(ev.msg)

    def request_rebalance(self, dpid: int | None) -> list[dict]:
        """Run a rebalance now on one bridge (or all); returns the moves as event dicts."""
        moved = []
        for core_dpid, core in list(self.bridges.items()):
            dp = self.datapaths.get(core_dpid)
            if (dpid is not None and core_dpid != dpid) or dp is None or not core.synced:
                continue
            seq = self.event_log.seq
            self.send(dp, core.rebalance(time.time()))
            moved += [e for e in self.event_log.events if e["seq"] > seq and e["type"] == "move"]
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
        out = core.packet_in(
            pipeline.cookie_kind(msg.cookie),
            in_port,
            frame.src,
            frame.vlan,
            frame.arp_spa,
            time.time(),
            garp=frame.is_gratuitous_arp,
        )
        self.send(dp, out)
        if out.reinject:
            data = frames.untag(msg.data) if out.untag else msg.data
            dp.send_msg(ofmsgs.packet_out(dp, in_port, ofp.OFPP_TABLE, data))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        self.event_log.count("switch_error")
        self.logger.warning(
            "switch %016x error type=%s code=%s", msg.datapath.id, msg.type, msg.code
        )

    # ---- output ----------------------------------------------------------------------

    def send(self, dp: Any, out: Output) -> None:
        for obj, command, spec in out.mods:
            if obj == "group":
                dp.send_msg(ofmsgs.group_mod(dp, spec, command))
            elif obj == "meter":
                dp.send_msg(ofmsgs.meter_mod(dp, spec, command))
            else:
                dp.send_msg(ofmsgs.flow_mod(dp, spec, command))
        for lp in out.learning:
            self._learning_packets(dp, lp)
            # Frames of the MAC still queued on the old uplink reach the old switch after
            # our announcement and teach it the old port again: announce again later.
            for i in range(1, self.settings.learning_repeat):
                hub.spawn_after(
                    i * self.settings.learning_repeat_interval, self._repeat_learning, dp, lp
                )

    def _learning_packets(self, dp: Any, lp: LearningPackets) -> None:
        for data in learning_packets.learning_packets(lp.mac, lp.ips, lp.vlan):
            dp.send_msg(ofmsgs.packet_out(dp, ofp.OFPP_CONTROLLER, lp.out_port, data))
        self.event_log.count("learning_packets_sent", max(1, len(lp.ips)))

    def _repeat_learning(self, dp: Any, lp: LearningPackets) -> None:
        """Repeat only while the MAC is still pinned there and the switch still connected."""
        core = self.bridges.get(dp.id)
        entry = core.entry(lp.mac, lp.vlan) if core else None
        if self.datapaths.get(dp.id) is dp and entry is not None and entry.uplink == lp.out_port:
            core.announced.announce((lp.mac, lp.vlan), time.time())
            self._learning_packets(dp, lp)

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

    def act(self, dpid: int, action: Any) -> None:
        """Run a core call for the REST API and send its output to the switch."""
        dp = self.datapaths.get(dpid)
        out = action(self.bridges[dpid])
        if dp is not None:
            self.send(dp, out)


def _memory_fits(core: BridgeCore, hs: handshake.Collector, recovered: list) -> bool:
    """May the core's memory be written to this switch? Not when it was learned over a
    connection whose ports (name, MAC) differ from this one's (another switch held the
    datapath id) while this switch still holds per-MAC flows of ours to recover from.
    Otherwise memory wins: it repairs a damaged table and refills a flushed one."""
    known = core.placement.ports
    if any(p.port_no in known and known[p.port_no].name != p.name for p in hs.ports):
        return False
    return hs.same_switch or not recovered

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
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu import frames, learning_packets, ofmsgs, options, pipeline, rest
from slb_ryu.core import BridgeCore, EventLog, Output
from slb_ryu.placement import Port

CONF = cfg.CONF
options.register(CONF)


def port_from_ofp(desc: Any) -> Port:
    """A placement `Port` from an OFPPort; live means carrier up and not admin-down."""
    name = desc.name.decode("utf-8", "replace") if isinstance(desc.name, bytes) else desc.name
    live = not (desc.state & ofp.OFPPS_LINK_DOWN) and not (desc.config & ofp.OFPPC_PORT_DOWN)
    return Port(desc.port_no, name, live=live, speed_bps=int(desc.curr_speed) * 1000)


class _Handshake:
    """Multipart replies collected on (re)connect before the core syncs the switch."""

    def __init__(self) -> None:
        self.ports: list[Port] = []
        self.groups: list = []
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
            self.logger.error("slb-ryu: configuration error: %s", exc)
            raise SystemExit(f"slb-ryu: configuration error: {exc}") from None
        self.event_log = EventLog(self.settings.event_log_size)
        self.bridges: dict[int, BridgeCore] = {}
        self.datapaths: dict[int, Any] = {}
        self.handshakes: dict[int, _Handshake] = {}
        self.started = time.time()
        kwargs["wsgi"].register(rest.SlbRestController, {rest.APP_KEY: self})

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
            dp.send_msg(ofmsgs.our_flows_request(dp))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        dp = ev.msg.datapath
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
            core = BridgeCore(dp.id, patterns, self.event_log, self.settings.learning_packets)
            self.bridges[dp.id] = core
            self.logger.info("bridge %s (dpid %016x): uplinks %s", name, dp.id, patterns)
        out = core.connect(hs.ports, hs.groups, hs.flows, hs.ages, now)
        for reason, port in hs.port_status:
            out.extend(core.port_status(reason, port, now))
        self.send(dp, out)
        self.logger.info(
            "bridge %016x synced: %d MACs, %d flow mods",
            dp.id,
            len(core.placement.macs),
            len(out.mods),
        )

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
        out = core.packet_in(
            pipeline.cookie_kind(msg.cookie),
            in_port,
            frame.src,
            frame.vlan,
            frame.arp_spa,
            time.time(),
        )
        self.send(dp, out)
        if out.reinject:
            dp.send_msg(ofmsgs.packet_out(dp, in_port, ofp.OFPP_TABLE, msg.data))

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
            else:
                dp.send_msg(ofmsgs.flow_mod(dp, spec, command))
        for lp in out.learning:
            for data in learning_packets.learning_packets(lp.mac, lp.ips, lp.vlan):
                dp.send_msg(ofmsgs.packet_out(dp, ofp.OFPP_CONTROLLER, lp.out_port, data))
            self.event_log.count("learning_packets_sent", max(1, len(lp.ips)))

    def act(self, dpid: int, action: Any) -> None:
        """Run a core call for the REST API and send its output to the switch."""
        dp = self.datapaths.get(dpid)
        out = action(self.bridges[dpid])
        if dp is not None:
            self.send(dp, out)

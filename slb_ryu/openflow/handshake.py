"""Which OpenFlow connection speaks for a datapath id, and the (re)connect handshake.

Ryu 4.34's ofp_handler moves a connection HANDSHAKE -> CONFIG -> MAIN (HELLO, then
FEATURES_REPLY sets `datapath.id`, then one PORT_DESC reply) and does nothing about a
second connection claiming the same datapath id; only `dpset` (which this app does not
load) would close the *old* one. Whatever an app keys by `dp.id` is therefore taken over
by any client that can reach the listener and says the right number. Here:

- the first connection of a datapath id that completes Ryu's handshake is *accepted*
  (`active`); only an accepted connection's messages reach the core;
- a second connection claiming an id whose accepted connection is alive is held
  (nothing it sends is used) while the accepted one is asked for an ECHO: if it
  answers within `probe_timeout`, the newcomer is an impostor: closed, logged at ERROR,
  counted, an event `switch-impostor`, and /health is degraded naming it for
  `impostor_memory` seconds. If it does not answer, it is dead (a bridge reconnecting
  before its old TCP connection timed out): it is closed and the newcomer accepted;
- every connection must finish its handshake (Ryu's and ours: port descriptions,
  groups, meters, our flows) within `timeout` seconds or it is closed; a stalled one
  never touches another connection's state.

`Collector` replaces three near-identical multipart handlers: one table of steps
(request, parser) walked in order, replies checked against the xid we sent.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ryu.controller.handler import DEAD_DISPATCHER
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu.core.events import EventLog
from slb_ryu.core.pipeline import COOKIE_MAGIC, COOKIE_MAGIC_MASK, FlowSpec, entries_from_flows
from slb_ryu.core.placement import MacEntry, Port
from slb_ryu.openflow import messages as ofmsgs

HANDSHAKE_TIMEOUT = 10.0  # seconds from TCP accept to synced, else the connection is closed
PROBE_TIMEOUT = 3.0  # seconds the accepted connection has to answer the ECHO of a probe
IMPOSTOR_MEMORY = 300.0  # seconds /health stays degraded after an impostor was refused
FLOW_SLICE = 64  # flow-stats entries parsed between two pauses (~3 ms)
FREEZE_FLOWS = 5000  # flows read between two gc.freeze() calls

LOG = logging.getLogger("slb_ryu.handshake")


def delete_our_flows(dp: Any, cookie: int = COOKIE_MAGIC) -> Any:
    """A flow-mod deleting every flow with our cookie (or, with `cookie=COOKIE_LEARNED`,
    every flow the datapath learned for us), in every table (others stay)."""
    return parser.OFPFlowMod(
        dp,
        cookie=cookie,
        cookie_mask=COOKIE_MAGIC_MASK,
        table_id=ofp.OFPTT_ALL,
        command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
    )


def port_from_ofp(desc: Any) -> Port:
    """A placement `Port` from an OFPPort; live means carrier up and not admin-down."""
    name = desc.name.decode("utf-8", "replace") if isinstance(desc.name, bytes) else desc.name
    live = not (desc.state & ofp.OFPPS_LINK_DOWN) and not (desc.config & ofp.OFPPC_PORT_DOWN)
    return Port(desc.port_no, name, live=live, speed_bps=int(desc.curr_speed) * 1000)


def _flows(collector: Collector, body: list) -> None:
    """Ryu's full parse of each entry (left lazy by stats.install) and our spec: ~50 us
    an entry, ~30 ms a 64 KiB reply, so a pause every FLOW_SLICE entries."""
    for i in range(0, len(body), FLOW_SLICE):
        if i:
            collector.pause()
        if len(collector.flows) - collector.frozen_at >= FREEZE_FLOWS:
            # Tens of thousands of specs are about to become the bridge's state: keep
            # CPython's full collections (~150 ms each at 10,000 MACs) off them, as the
            # app's gc.freeze does for learned MACs.
            gc.collect(1)
            gc.freeze()
            collector.frozen_at = len(collector.flows)
        specs = []
        for stat in body[i : i + FLOW_SLICE]:
            spec = ofmsgs.spec_from_stats(stat)
            specs.append(spec)
            collector.ages[spec.key] = stat.duration_sec + stat.duration_nsec / 1e9
        collector.flows += specs
        collector.recovered += entries_from_flows(specs, collector.ages, collector.wall())


def _ports(collector: Collector, body: list) -> None:
    for desc in body:
        port = port_from_ofp(desc)
        collector.ports.append(port)
        collector.identity[port.port_no] = (port.name, str(desc.hw_addr))


def _meters(collector: Collector, body: list) -> None:
    specs = (ofmsgs.spec_from_meter_config(m) for m in body)
    collector.meters += [m for m in specs if m is not None]


# (reply class, request builder, what to do with the reply body), in handshake order.
STEPS: tuple[tuple[type, Callable[[Any], Any], Callable[[Any, list], None]], ...] = (
    (
        parser.OFPPortDescStatsReply,
        lambda dp: parser.OFPPortDescStatsRequest(dp, 0),
        _ports,
    ),
    (
        parser.OFPGroupDescStatsReply,
        lambda dp: parser.OFPGroupDescStatsRequest(dp, 0),
        lambda c, body: c.groups.extend(ofmsgs.spec_from_group_desc(g) for g in body),
    ),
    (
        parser.OFPMeterConfigStatsReply,
        lambda dp: parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL),
        _meters,
    ),
    (parser.OFPFlowStatsReply, ofmsgs.our_flows_request, _flows),
)


@dataclass
class Collector:
    """What one accepted connection reported during its (re)connect handshake."""

    ports: list[Port] = field(default_factory=list)
    groups: list = field(default_factory=list)
    meters: list = field(default_factory=list)
    flows: list[FlowSpec] = field(default_factory=list)
    ages: dict = field(default_factory=dict)
    port_status: list[tuple[str, Port]] = field(default_factory=list)
    identity: dict[int, tuple[str, str]] = field(default_factory=dict)  # port -> name, MAC
    same_switch: bool = True  # its ports match those of the previous connection of the id
    step: int = 0
    xid: int | None = None
    recovered: list[MacEntry] = field(default_factory=list)  # placement its flows hold
    frozen_at: int = 0  # flows read at the last gc.freeze
    pause: Callable[[], None] = lambda: None  # let the event loop run (between slices)
    wall: Callable[[], float] = time.time

    def request(self, dp: Any) -> None:
        """Send the request of the current step (remembering its xid)."""
        req = STEPS[self.step][1](dp)
        self.xid = dp.set_xid(req)
        dp.send_msg(req)


@dataclass
class _Probe:
    """A newcomer held while the accepted connection of its datapath id is asked for ECHO."""

    newcomer: Any
    established: Any
    xid: int
    deadline: float


def _alive(dp: Any) -> bool:
    return bool(getattr(dp, "is_active", True)) and dp.state != DEAD_DISPATCHER


def _addr(dp: Any) -> str:
    address = getattr(dp, "address", None)
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class Connections:
    """Accepted connection per datapath id, handshakes in progress, impostor refusals.

    `on_accept(dp)` runs when a connection becomes the one of its datapath id and
    `on_lost(dp)` when it stops being it (the app marks the bridge unsynced on both);
    `on_synced(dp, collector)` when its handshake replies are all in. `clock` is
    monotonic seconds.
    """

    def __init__(
        self,
        events: EventLog,
        on_accept: Callable[[Any], None],
        on_lost: Callable[[Any], None],
        on_synced: Callable[[Any, Collector], None],
        timeout: float = HANDSHAKE_TIMEOUT,
        probe_timeout: float = PROBE_TIMEOUT,
        impostor_memory: float = IMPOSTOR_MEMORY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        pause: Callable[[], None] = lambda: None,
    ) -> None:
        self.events = events
        self.on_accept = on_accept
        self.on_lost = on_lost
        self.on_synced = on_synced
        self.timeout = timeout
        self.probe_timeout = probe_timeout
        self.impostor_memory = impostor_memory
        self.clock = clock
        self.wall = wall
        self.pause = pause
        self.active: dict[int, Any] = {}  # datapath id -> accepted connection
        self.collecting: dict[Any, Collector] = {}  # accepted connection -> its handshake
        self.opened: dict[Any, float] = {}  # connection not synced yet -> when it opened
        self.probes: dict[Any, _Probe] = {}  # held newcomer -> its probe
        self.impostors: dict[int, dict] = {}  # datapath id -> last refusal
        self.identity: dict[int, dict] = {}  # datapath id -> ports of its last handshake

    # ---- queries -------------------------------------------------------------------

    def accepted(self, dp: Any) -> bool:
        """Is `dp` the connection that speaks for its datapath id?"""
        return dp.id is not None and self.active.get(dp.id) is dp

    def handshaking(self, dp: Any) -> Collector | None:
        return self.collecting.get(dp) if self.accepted(dp) else None

    def problems(self, names: dict[int, str]) -> list[str]:
        """Recent impostor refusals, for /health (`names`: bridge name by datapath id)."""
        now = self.clock()
        out = []
        for dpid, info in sorted(self.impostors.items()):
            if now - info["mono"] > self.impostor_memory:
                continue
            label = names.get(dpid) or f"{dpid:016x}"
            out.append(
                f"a second OpenFlow connection from {info['address']} claimed the datapath id "
                f"{dpid:016x} of connected bridge {label}: refused ({info['count']} time(s), "
                f"last {now - info['mono']:.0f} s ago)"
            )
        return out

    # ---- Ryu events ----------------------------------------------------------------

    def opening(self, dp: Any) -> None:
        """Ryu's HANDSHAKE/CONFIG state: start the clock of this connection."""
        self.opened.setdefault(dp, self.clock())

    def main(self, dp: Any) -> None:
        """Ryu's handshake is done (`dp.id` known): accept, or hold and probe."""
        self.opened.setdefault(dp, self.clock())
        current = self.active.get(dp.id)
        if current is None or current is dp or not _alive(current):
            self._accept(dp)
            return
        echo = parser.OFPEchoRequest(current, data=b"slb-ryu probe")
        xid = current.set_xid(echo)
        self.probes[dp] = _Probe(dp, current, xid, self.clock() + self.probe_timeout)
        LOG.warning(
            "datapath %016x: second connection from %s while %s is connected: probing it",
            dp.id,
            _addr(dp),
            _addr(current),
        )
        current.send_msg(echo)

    def echo_reply(self, dp: Any, xid: int) -> None:
        """The accepted connection answered a probe: every newcomer it held is an impostor."""
        for probe in [p for p in self.probes.values() if p.established is dp and p.xid == xid]:
            del self.probes[probe.newcomer]
            self._refuse(probe.newcomer)

    def dead(self, dp: Any) -> None:
        """A connection closed (Ryu's DEAD state)."""
        self.opened.pop(dp, None)
        self.probes.pop(dp, None)
        if self.accepted(dp):
            self._drop(dp)
        for probe in [p for p in self.probes.values() if p.established is dp]:
            del self.probes[probe.newcomer]  # its rival is gone: the newcomer may speak
            if _alive(probe.newcomer):
                self._accept(probe.newcomer)

    def collect(self, msg: Any) -> bool:
        """A multipart reply of the handshake; False when it is not one we asked for."""
        dp = msg.datapath
        collector = self.handshaking(dp)
        if collector is None or msg.xid != collector.xid:
            return False
        reply, _, absorb = STEPS[collector.step]
        if not isinstance(msg, reply):
            return False
        absorb(collector, msg.body)
        if self.collecting.get(dp) is not collector:
            return True  # dropped or restarted while it paused: this handshake is over
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return True
        collector.step += 1
        if collector.step < len(STEPS):
            collector.request(dp)
            return True
        del self.collecting[dp]
        self.opened.pop(dp, None)
        last = self.identity.get(dp.id, {})
        common = set(last) & set(collector.identity)
        collector.same_switch = all(last[p] == collector.identity[p] for p in common)
        self.identity[dp.id] = collector.identity
        self.on_synced(dp, collector)
        return True

    def restart(self, dp: Any) -> None:
        """Run our handshake again on an accepted connection (e.g. its ports now match)."""
        if self.accepted(dp):
            self.opened[dp] = self.clock()
            self.collecting[dp] = collector = self._collector()
            collector.request(dp)

    # ---- timers --------------------------------------------------------------------

    def expire(self) -> None:
        """Close stalled handshakes; settle probes the accepted connection did not answer."""
        now = self.clock()
        for probe in [p for p in self.probes.values() if now >= p.deadline]:
            del self.probes[probe.newcomer]
            old = probe.established
            LOG.warning(
                "datapath %016x: %s did not answer ECHO within %.0f s: closing it, accepting %s",
                old.id,
                _addr(old),
                self.probe_timeout,
                _addr(probe.newcomer),
            )
            self.events.count("switch_replaced_dead")
            if self.accepted(old):
                self._drop(old, reason="no echo")
            old.close()
            if _alive(probe.newcomer):
                self._accept(probe.newcomer)
        for dp, opened in list(self.opened.items()):
            if now - opened < self.timeout or dp in self.probes:
                continue
            del self.opened[dp]
            self.collecting.pop(dp, None)
            self.events.count("handshake_timeout")
            self.events.add(self.wall(), "handshake-timeout", dpid=dp.id, address=_addr(dp))
            LOG.error(
                "OpenFlow connection from %s (datapath id %s) did not finish its handshake "
                "within %.0f s: closed",
                _addr(dp),
                "unknown" if dp.id is None else f"{dp.id:016x}",
                self.timeout,
            )
            if self.accepted(dp):
                self._drop(dp, reason="handshake timeout")
            dp.close()

    # ---- internals -----------------------------------------------------------------

    def _accept(self, dp: Any) -> None:
        self.active[dp.id] = dp
        self.collecting[dp] = collector = self._collector()
        self.events.add(self.wall(), "switch-connect", dpid=dp.id, address=_addr(dp))
        self.on_accept(dp)
        collector.request(dp)

    def _collector(self) -> Collector:
        return Collector(pause=self.pause, wall=self.wall)

    def _drop(self, dp: Any, **why: str) -> None:
        del self.active[dp.id]
        self.collecting.pop(dp, None)
        self.events.add(self.wall(), "switch-disconnect", dpid=dp.id, **why)
        self.on_lost(dp)

    def _refuse(self, dp: Any) -> None:
        self.opened.pop(dp, None)
        info = self.impostors.setdefault(dp.id, {"count": 0})
        info.update(count=info["count"] + 1, mono=self.clock(), address=_addr(dp))
        self.events.count("switch_impostor")
        self.events.add(self.wall(), "switch-impostor", dpid=dp.id, address=_addr(dp))
        LOG.error(
            "refused OpenFlow connection from %s: it claims datapath id %016x, which is "
            "connected from %s and still answers; check for a bridge with a duplicate "
            "other-config:datapath-id or a rogue client (see docs/security.md)",
            _addr(dp),
            dp.id,
            _addr(self.active[dp.id]) if dp.id in self.active else "?",
        )
        dp.close()

"""Statistics polling: per-MAC flow byte counters and port counters, at little cost.

Ryu parses every entry of a flow-stats reply into an `OFPFlowStats` (match, instructions,
actions: ~42 us per entry) in the connection's receive loop, before any handler runs; at
10,000 MACs a poll (2 flows per MAC) held every packet-in back for about a second. Here
Ryu's body class for flow-stats replies is replaced by `LazyFlowStats`, which only reads
each entry's length; the poll reads cookie, byte count, duration and the eth_src /
eth_dst / vlan_vid match fields straight from the wire bytes (`read_counter`), and any
other reader (the connect handshake) still gets Ryu's full parse on first attribute
access. A reply arrives in multipart messages of about 64 KiB, each handled on its own,
so a poll costs packet-in handling a few milliseconds at a time.

Above SHARD_MACS MACs a flow poll is asked for in shards, by the low bits of the MAC
(`shard_bits`: 16 shards at 10,000 MACs), spread over most of the poll interval (`due`).
OVS builds a whole reply in one go in the main thread that also reads the VM ports of a
userspace datapath, and our handlers then work through it back to back: at 10,000 MACs
one poll at once is ~19 ms of ovs-vswitchd's main thread, then ~0.1 s of ours, and a
new MAC's first frame arriving meanwhile waited up to 61 ms (bench/README.md). A shard
of ~600 MACs is a few milliseconds of each. The shards cost OVS more in all (each
request scans its table: ~50 ms a poll instead of ~19), a small price every 5 s.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu.core import pipeline
from slb_ryu.openflow import messages as ofmsgs

SHARD_MACS = 1000  # MACs above which a flow poll is split, and about the most per shard
MAX_SHARD_BITS = 4  # at most 16 shards

FLOW_STATS_HEAD = struct.Struct("!HBxIIHHHH4xQQQ")  # ofp_flow_stats up to the match, 48 bytes
_MATCH_HEAD = struct.Struct("!HH")
_OXM_HEAD = struct.Struct("!HBB")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_OXM_BASIC = ofp.OFPXMC_OPENFLOW_BASIC
_IN_PORT, _ETH_DST, _ETH_SRC, _VLAN_VID = (
    ofp.OFPXMT_OFB_IN_PORT,
    ofp.OFPXMT_OFB_ETH_DST,
    ofp.OFPXMT_OFB_ETH_SRC,
    ofp.OFPXMT_OFB_VLAN_VID,
)

Counter = tuple[int, tuple[str, int], int, float]  # (cookie kind, (MAC, VLAN), bytes, age s)


class LazyFlowStats:
    """One flow-stats entry, parsed by Ryu only if something asks for more than the bytes."""

    __slots__ = ("buf", "offset", "length", "_full")

    @classmethod
    def parser(cls, buf: Any, offset: int) -> LazyFlowStats:
        entry = cls.__new__(cls)
        entry.buf, entry.offset = buf, offset
        (entry.length,) = _U16.unpack_from(buf, offset)
        if entry.length < FLOW_STATS_HEAD.size:  # Ryu's loop would never advance
            raise struct.error(f"flow stats entry of {entry.length} bytes")
        entry._full = None
        return entry

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        full = self._full
        if full is None:
            full = self._full = parser.OFPFlowStats.parser(self.buf, self.offset)
        return getattr(full, name)


def install() -> None:
    """Make Ryu keep flow-stats reply entries lazy (idempotent; see the module doc)."""
    parser.OFPFlowStatsReply.cls_stats_body_cls = LazyFlowStats


def read_match(buf: Any, offset: int) -> tuple[int | None, bytes | None, bytes | None, int]:
    """(in_port, eth_src, eth_dst, vlan_vid) of the match of the flow-stats entry at
    `offset`, read from the wire format; the MACs as 6 raw bytes, None when absent."""
    _type, match_len = _MATCH_HEAD.unpack_from(buf, offset + FLOW_STATS_HEAD.size)
    pos = offset + FLOW_STATS_HEAD.size + 4
    end = offset + FLOW_STATS_HEAD.size + match_len
    in_port = src = dst = None
    vid = 0
    while pos + 4 <= end:
        oxm_class, oxm_field, size = _OXM_HEAD.unpack_from(buf, pos)
        if oxm_class == _OXM_BASIC:
            which = oxm_field >> 1
            if which == _ETH_SRC:
                src = buf[pos + 4 : pos + 10]
            elif which == _ETH_DST:
                dst = buf[pos + 4 : pos + 10]
            elif which == _VLAN_VID:
                (vid,) = _U16.unpack_from(buf, pos + 4)
            elif which == _IN_PORT:
                (in_port,) = _U32.unpack_from(buf, pos + 4)
        pos += 4 + size
    return in_port, src, dst, vid


def read_body(
    body: Iterable[Any],
    from_bytes: Callable[[Any, int], Any],
    from_ryu: Callable[[Any], Any],
) -> list[Any]:
    """What `from_bytes(buf, offset)` (lazy entries) or `from_ryu(stat)` (entries Ryu
    parsed) makes of each entry of a flow-stats reply body, the Nones left out."""
    out = []
    for stat in body:
        if isinstance(stat, LazyFlowStats):
            item = from_bytes(stat.buf, stat.offset)
        else:
            item = from_ryu(stat)
        if item is not None:
            out.append(item)
    return out


def read_counter(buf: Any, offset: int) -> Counter | None:
    """(kind, owner, byte_count, age) of one of our per-MAC flows at `offset`, read from
    the wire format; None for any other flow. Same owner as `sync.owner` would give."""
    length, _table, sec, nsec, _prio, _idle, _hard, _flags, cookie, _pkts, nbytes = (
        FLOW_STATS_HEAD.unpack_from(buf, offset)
    )
    kind = pipeline.cookie_kind(cookie)
    if kind not in (pipeline.KIND_SRC, pipeline.KIND_DST):
        return None
    _in_port, src, dst, vid = read_match(buf, offset)
    mac = src or dst
    if mac is None:
        return None
    return kind, (bytes(mac).hex(":"), pipeline.vlan_of(vid)), nbytes, sec + nsec / 1e9


def counters(body: Iterable[Any]) -> list[Counter]:
    """Counters of our per-MAC flows in a flow-stats reply body (lazy or fully parsed)."""
    return read_body(body, read_counter, _counter_from_ryu)


def _counter_from_ryu(stat: Any) -> Counter | None:
    from slb_ryu.core.sync import owner

    spec = ofmsgs.spec_from_stats(stat)
    kind = pipeline.cookie_kind(spec.cookie)
    key = owner(spec)
    if kind not in (pipeline.KIND_SRC, pipeline.KIND_DST) or key is None:
        return None
    return kind, key, stat.byte_count, stat.duration_sec + stat.duration_nsec / 1e9


def shard_bits(macs: int, max_shards: int = 1 << MAX_SHARD_BITS) -> int:
    """Low MAC bits a flow poll of `macs` MACs is split on: 0 (one request per kind) up
    to SHARD_MACS, then one more bit each time the count doubles, at most MAX_SHARD_BITS
    and at most `max_shards` shards."""
    bits = 0
    while bits < MAX_SHARD_BITS and macs > SHARD_MACS << bits and 2 << bits <= max_shards:
        bits += 1
    return bits


@dataclass
class _Poll:
    dpid: int
    kind: str  # "flow" or "port"
    sent: float
    bits: int = 0  # a flow poll's shards: 2 ** bits, asked for one after the other
    shard: int = 0  # the shard being read
    spread: float = 0.0  # s from one shard's request to the next one's, at least
    dp: Any = None  # the connection the shards are asked on
    pending: set[int] = field(default_factory=set)
    # a MAC's counter of one direction waiting for the other one (then both go to the core)
    half: dict[tuple[int | None, tuple[str, int]], Counter] = field(default_factory=dict)
    ports: dict[int, tuple[int, int]] = field(default_factory=dict)
    cpu: float = 0.0  # process time spent handling its replies


class StatsPoller:
    """Outstanding statistics requests by xid, and what their replies add up to."""

    def __init__(self, count: Callable[[str], None] = lambda name: None) -> None:
        self.polls: dict[int, _Poll] = {}
        self.waiting: dict[int, _Poll] = {}  # dpid -> flow poll whose next shard is not due
        self.count = count
        self.last_seconds = 0.0  # wall time of the last complete flow poll
        self.handled_seconds = 0.0  # CPU its replies cost in our handlers

    def owns(self, xid: int) -> bool:
        return xid in self.polls

    def requests(
        self, dp: Any, macs: int = 0, spread_over: float = 0.0, tick: float = 0.25
    ) -> list[Any]:
        """The first requests of one poll of `dp` (xids set, to send in order): port
        counters and the first shard of the flow counters of its `macs` MACs; the other
        shards follow one by one over `spread_over` s (`due`, called every `tick` s,
        so there are at most spread_over / tick shards). A previous poll of that switch
        that never completed is given up."""
        stale = [x for x, p in self.polls.items() if p.dpid == dp.id]
        if stale or self.waiting.pop(dp.id, None) is not None:
            for xid in stale:
                del self.polls[xid]
            self.count("stats_poll_lost")
        now = time.monotonic()
        bits = shard_bits(macs, int(spread_over / tick) if tick > 0 else 1)
        flows = _Poll(dp.id, "flow", now, bits=bits, spread=spread_over / (1 << bits), dp=dp)
        ports = _Poll(dp.id, "port", now)
        port_req = parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY)
        return self._register(dp, self._shard(dp, flows)) + self._register(dp, [(port_req, ports)])

    @staticmethod
    def _shard(dp: Any, poll: _Poll) -> list[tuple[Any, _Poll]]:
        """Source and destination counters of the poll's current shard."""
        return [
            (ofmsgs.kind_flows_request(dp, kind, poll.shard, poll.bits), poll)
            for kind in (pipeline.KIND_SRC, pipeline.KIND_DST)
        ]

    def due(self, now: float) -> list[tuple[Any, Any]]:
        """(connection, request) of every flow poll's next shard that is due at `now`
        (monotonic s), to send in order."""
        out = []
        for dpid, poll in list(self.waiting.items()):
            if now >= poll.sent + poll.shard * poll.spread:
                del self.waiting[dpid]
                out += [
                    (poll.dp, req) for req in self._register(poll.dp, self._shard(poll.dp, poll))
                ]
        return out

    def _register(self, dp: Any, reqs: list[tuple[Any, _Poll]]) -> list[Any]:
        for req, poll in reqs:
            dp.set_xid(req)
            poll.pending.add(req.xid)
            self.polls[req.xid] = poll
        return [req for req, _ in reqs]

    @staticmethod
    def _pair(poll: _Poll, samples: list[Counter], core: Any) -> None:
        """Hand each MAC to the core as soon as both its counters are in: the work of a
        poll is spread over its reply messages instead of piling up at the end."""
        ready: list[Counter] = []
        for sample in samples:
            kind, key = sample[0], sample[1]
            other = (pipeline.KIND_DST if kind == pipeline.KIND_SRC else pipeline.KIND_SRC, key)
            match = poll.half.pop(other, None)
            if match is None:
                poll.half[(kind, key)] = sample
            else:
                ready += (match, sample)
        if ready and core is not None:
            core.mac_counters(ready, time.time())

    def reply(self, msg: Any, core_of: Callable[[int], Any]) -> None:
        """One multipart reply message; the core gets each MAC's counters as soon as both
        are in. A flow poll's complete shard makes the next one wait for `due`."""
        started = time.process_time()
        poll = self.polls[msg.xid]
        if poll.kind == "port":
            poll.ports.update((p.port_no, (p.tx_bytes, p.rx_bytes)) for p in msg.body)
        else:
            self._pair(poll, counters(msg.body), core_of(poll.dpid))
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            poll.cpu += time.process_time() - started
            return
        del self.polls[msg.xid]
        poll.pending.discard(msg.xid)
        if poll.kind == "flow" and not poll.pending and poll.shard + 1 < 1 << poll.bits:
            poll.shard += 1
            poll.cpu += time.process_time() - started
            self.waiting[poll.dpid] = poll
            return
        core = core_of(poll.dpid)
        if not poll.pending and core is not None:
            if poll.kind == "port":
                core.port_stats(poll.ports, time.time())  # now: link rates (core/demand.py)
            else:
                self.last_seconds = time.monotonic() - poll.sent
            self.count("stats_replies")
        poll.cpu += time.process_time() - started
        if poll.kind == "flow" and not poll.pending:
            self.handled_seconds = poll.cpu

"""Microbenchmarks of the pure parts that scale with the number of MACs, run against one
source tree (the current one, or a git revision unpacked by bench/scale.py as the
named baseline), so old and new are timed by the same code in the same run.

    .venv/bin/python bench/scale_micro.py TREE N [N...]   # prints one JSON object

Times are CPU time of this process (the machine is shared), the best of 3 runs up to
1,000 MACs, one run above. Only APIs both trees have are used; where the new tree has a
faster path (packed flow-mods and packet-outs, lazy flow-stats parsing, sliced
failover) it is used, as the app uses it. Figures (milliseconds unless named otherwise):

- choose_us: one `BridgePlacement.choose_uplink` call, N MACs with loads on 2 uplinks.
- learn_us: one learn (`BridgeCore.packet_in` of a new MAC) plus packing its flow-mods
  into bytes, averaged over learning N MACs one after the other.
- failover_*: uplink 1 (N/2 MACs) goes down. `block`: the longest stretch the app
  cannot yield (old: the whole re-pin plus packing every message; new: the first call or
  one drained slice, each with its packing); `total`: all of it; `repin`: until every
  MAC is re-pinned in the placement (what REST shows). `onepiece`: the first piece when
  the same tree re-pins everything at once (`placement.repair` then its Output, as
  before the re-pin was sliced), on a copy of the same core: the baseline of `block`.
- stats_*: one poll's reply (2N flow entries in ~64 KiB messages, as OVS splits them)
  parsed by Ryu's message parser and turned into per-MAC loads; `msg_max`: the longest
  single message (what a packet-in arriving meanwhile waits), `total`: all messages.
"""

from __future__ import annotations

import copy
import gc
import json
import random
import struct
import sys
import time
from pathlib import Path

clock = time.process_time  # CPU time: the machine is shared, wall time is noisy
MSG_BYTES = 60 * 1024  # OVS splits multipart replies below 64 KiB


def mac(i: int) -> str:
    return "02:%02x:%02x:%02x:%02x:%02x" % (
        (i >> 32) & 255,
        (i >> 24) & 255,
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255,
    )


def run(n: int) -> dict:
    from ryu.ofproto import ofproto_parser, ofproto_protocol
    from ryu.ofproto import ofproto_v1_3 as ofp

    from slb_ryu.core import pipeline as pl
    from slb_ryu.core.bridge import BridgeCore, Limits
    from slb_ryu.core.placement import OFPP_LOCAL, Port
    from slb_ryu.openflow import learning_packets as lpk
    from slb_ryu.openflow import messages as ofmsgs

    new = hasattr(ofmsgs, "flow_mod_bytes")
    dp = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)

    def pack(out) -> int:
        """Bytes the app would write for `out` (as the tree's app builds them)."""
        size = 0
        for obj, command, spec in out.mods:
            if obj != "flow":
                continue
            if new:
                try:
                    size += len(ofmsgs.flow_mod_bytes(spec, command))
                    continue
                except getattr(ofmsgs, "Unpackable", ()):
                    pass  # as app.send: Ryu's serialiser for what the packer does not cover
            msg = ofmsgs.flow_mod(dp, spec, command)
            msg.serialize()
            size += len(msg.buf)
        for lp in out.learning:
            for data in lpk.learning_packets(lp.mac, lp.ips, lp.vlan):
                if new:
                    size += len(ofmsgs.packet_out_bytes(ofp.OFPP_CONTROLLER, lp.out_port, data))
                else:
                    msg = ofmsgs.packet_out(dp, ofp.OFPP_CONTROLLER, lp.out_port, data)
                    msg.serialize()
                    size += len(msg.buf)
        return size

    res: dict = {"n": n}
    core = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=0, packet_in_rate=20000))
    ports = [Port(OFPP_LOCAL, "hv"), Port(1, "up1"), Port(2, "up2"), Port(3, "vm")]
    core.connect(ports, [], [], {}, 0.0)

    # learn N MACs, one after the other
    t0 = clock()
    for i in range(n):
        pack(core.packet_in(pl.KIND_SRC_MISS, 3, mac(i), 0, None, 1.0))
    res["learn_us"] = (clock() - t0) / n * 1e6

    # choose_uplink with loads on every MAC
    rnd = random.Random(1)
    for entry in list(core.placement.macs.values()):
        entry.tx_bps, entry.rx_bps = rnd.random() * 1e6, rnd.random() * 1e5
    calls = max(20, min(2000, 200_000 // n))
    t0 = clock()
    for _ in range(calls):
        core.placement.choose_uplink()
    res["choose_us"] = (clock() - t0) / calls * 1e6

    # one stats poll: 2N entries (source and destination flows) as the switch sends them
    entries = []
    for spec in core.switch.flows.values():
        if pl.cookie_kind(spec.cookie) in (pl.KIND_SRC, pl.KIND_DST):
            entries.append(_stats_entry(ofmsgs.flow_mod(dp, spec), spec, ofp))
    messages = _messages(entries, ofp)
    if new:
        from slb_ryu.openflow import stats

        stats.install()
    longest = 0.0
    t0 = clock()
    samples: list = []
    poll = stats._Poll(1, "flow", 0.0) if new else None
    for data in messages:
        t1 = clock()
        length = len(data)
        msg = ofproto_parser.msg(dp, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, length, 1, data)
        if new:  # as StatsPoller.reply: each MAC goes to the core once both counters are in
            stats.StatsPoller._pair(poll, stats.counters(msg.body), core)
        else:  # the old app: collect everything, then one call at the end
            for stat in msg.body:
                age = stat.duration_sec + stat.duration_nsec / 1e9
                samples.append((ofmsgs.spec_from_stats(stat), stat.byte_count, age))
        longest = max(longest, clock() - t1)
    t1 = clock()
    if not new:
        core.flow_stats(samples, 10.0)
    end = clock()
    res["stats_msg_max_ms"] = max(longest, end - t1) * 1e3
    res["stats_total_ms"] = (end - t0) * 1e3
    res["stats_entries"] = len(entries)
    res["stats_messages"] = len(messages)

    res.update(_restart(core, ports, dp, new))
    res.update(_get_placement(core))

    # failover: uplink 1 goes down
    sliced = hasattr(core, "repinning")  # the re-pin itself comes in slices
    if sliced:  # the same failover re-pinned in one piece (as before), on a copy
        res["failover_onepiece_ms"] = _onepiece_failover(copy.deepcopy(core), pack, Port)
    on1 = sum(1 for e in core.placement.macs.values() if e.uplink == 1)
    t0 = clock()
    out = core.port_status("modify", Port(1, "up1", live=False), 20.0)
    repinned = clock()
    pack(out)
    block = clock() - t0
    total_learning = len(out.learning)
    while new and core.backlog:
        t1 = clock()
        out = core.next_slice(20.0)
        pack(out)
        total_learning += len(out.learning)
        block = max(block, clock() - t1)
        if sliced and core.repinning:
            repinned = clock()
    if sliced:
        assert core.placement.mac_count(1) == 0
    res["failover_macs"] = on1
    res["failover_learning"] = total_learning
    res["failover_repin_ms"] = (repinned - t0) * 1e3
    res["failover_block_ms"] = block * 1e3
    res["failover_total_ms"] = (clock() - t0) * 1e3
    return res


def _onepiece_failover(core, pack, Port) -> float:
    """ms of the first piece when the whole re-pin runs at once (placement.repair, then
    the moves' Output), as before the re-pin was sliced: the one-piece baseline."""
    t0 = clock()
    moves = core.placement.update_port(Port(1, "up1", live=False), 20.0)
    pack(core._apply(moves, 20.0))
    return (clock() - t0) * 1e3


class Stretches:
    """Longest stretch between two pauses (where the app yields to the event loop)."""

    def __init__(self) -> None:
        self.start = self.mark = clock()
        self.longest = 0.0

    def pause(self, *_: object) -> None:
        now = clock()
        self.longest = max(self.longest, now - self.mark)
        self.mark = now

    def done(self) -> tuple[float, float]:
        """(longest stretch, total) in ms."""
        self.pause()
        return self.longest * 1e3, (self.mark - self.start) * 1e3


def _restart(core, ports, dp, new: bool) -> dict:
    """A controller restart at N MACs: the handshake reads all our flows (~5 per MAC, as
    the switch sends them) and a new core adopts them. Each reply message is its own
    event (a pause between them); the new tree also pauses inside a message and between
    slices of the sync, the old one syncs in one piece."""
    from ryu.ofproto import ofproto_parser
    from ryu.ofproto import ofproto_v1_3 as ofp

    from slb_ryu.core.bridge import BridgeCore, Limits
    from slb_ryu.openflow import messages as ofmsgs

    specs = list(core.switch.flows.values())
    messages = _messages([_stats_entry(ofmsgs.flow_mod(dp, s), s, ofp) for s in specs], ofp)
    fresh = BridgeCore(1, ["up*"], limits=Limits(max_macs_per_port=0, packet_in_rate=20000))
    sliced = new and hasattr(fresh, "connect_steps")
    gc.collect()
    gc.freeze()  # what this process learned before stands for nothing in a new process
    timer = Stretches()
    if sliced:
        from slb_ryu.core.bridge import run_steps
        from slb_ryu.openflow import handshake

        collector = handshake.Collector(pause=timer.pause)
        frozen = [0]

        def pause() -> None:  # the app's pacer runs meanwhile: gc.freeze per 1,000 MACs
            timer.pause()
            if len(fresh.placement.macs) - frozen[0] >= 1000:
                gc.collect(1)
                gc.freeze()
                frozen[0] = len(fresh.placement.macs)

    flows: list = []
    ages: dict = {}
    for data in messages:
        msg = ofproto_parser.msg(dp, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, len(data), 1, data)
        if sliced:
            handshake._flows(collector, msg.body)
        else:
            for stat in msg.body:
                spec = ofmsgs.spec_from_stats(stat)
                flows.append(spec)
                ages[spec.key] = stat.duration_sec + stat.duration_nsec / 1e9
        timer.pause()
    if sliced:
        steps = fresh.connect_steps(ports, [], collector.flows, collector.ages, 30.0)
        out = run_steps(steps, pause)
    else:
        out = fresh.connect(ports, [], flows, ages, 30.0)
    block, total = timer.done()
    gc.unfreeze()
    assert len(fresh.placement.macs) == len(core.placement.macs) and not out.learning
    return {"restart_block_ms": block, "restart_total_ms": total, "restart_flows": len(specs)}


def _get_placement(core) -> dict:
    """One GET /slb/v1/placement through the REST controller (webob, no server) with
    the N MACs on one bridge; the new tree pauses between slices of rows."""
    from ryu.app.wsgi import WSGIApplication
    from webob import Request

    from slb_ryu.api import rest

    class App:
        bridges = {1: core}
        datapaths = {1: object()}

    wsgi = WSGIApplication()
    wsgi.register(rest.SlbRestController, {rest.APP_KEY: App()})
    timer = Stretches()
    if hasattr(rest, "pause"):
        rest.pause = timer.pause
    resp = Request.blank("/slb/v1/placement").get_response(wsgi)
    block, total = timer.done()
    assert resp.status_int == 200 and len(json.loads(resp.text)) == len(core.placement.macs)
    return {"placement_block_ms": block, "placement_total_ms": total}


def _stats_entry(mod, spec, ofp) -> bytes:
    """One ofp_flow_stats entry for `spec` (Ryu serialises match and instructions)."""
    body = bytearray()
    mod.match.serialize(body, 0)
    for inst in mod.instructions:
        inst.serialize(body, len(body))
    head = struct.pack(
        ofp.OFP_FLOW_STATS_0_PACK_STR,
        ofp.OFP_FLOW_STATS_0_SIZE + len(body),
        spec.table,
        30,
        0,
        spec.priority,
        0,
        0,
        0,
        spec.cookie,
        1000,
        1_000_000,
    )
    return head + bytes(body)


def _messages(entries: list[bytes], ofp) -> list[bytes]:
    """Multipart flow-stats replies of at most MSG_BYTES each."""
    out, chunk, size = [], [], 0
    for i, entry in enumerate(entries):
        chunk.append(entry)
        size += len(entry)
        if size + 200 >= MSG_BYTES or i == len(entries) - 1:
            flags = 0 if i == len(entries) - 1 else ofp.OFPMPF_REPLY_MORE
            body = b"".join(chunk)
            length = ofp.OFP_MULTIPART_REPLY_SIZE + len(body)
            head = struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, length, 1)
            out.append(head + struct.pack("!HH4x", ofp.OFPMP_FLOW, flags) + body)
            chunk, size = [], 0
    return out


def main(argv: list[str]) -> int:
    tree = Path(argv[0]).resolve()
    sys.path.insert(0, str(tree))
    import slb_ryu

    assert Path(slb_ryu.__file__).resolve().is_relative_to(tree), slb_ryu.__file__
    results = []
    for n in map(int, argv[1:]):
        runs = [run(n) for _ in range(3 if n <= 1000 else 1)]
        results.append({k: min(r[k] for r in runs) for k in runs[0]})  # best of the runs
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

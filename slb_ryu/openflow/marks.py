"""Reading the datapath's learning-in-progress marks (see core/marks.py for why).

One flow-stats request for table 5 and the marks' own cookie with a full cookie mask:
OVS finds such rules through its cookie index, so the request costs the marks present
(none, most of the time), not the fabric-seen flows that share the table. The entries
are read from the wire bytes like the counters of a stats poll (openflow/stats.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp

from slb_ryu.core import pipeline
from slb_ryu.core.marks import Mark
from slb_ryu.openflow import messages as ofmsgs
from slb_ryu.openflow import stats

OUTSTANDING_FOR = 5.0  # s: a request without a complete reply by then is given up
# Requests a switch may have unanswered: a mark lives ~2 s, and while the controller is
# behind (a learning burst) a reply can wait that long in the receive queue; asking again
# anyway (each reply stands for the table when OVS built it) means no mark slips between
# two reads. Seen live: one outstanding request at a time missed every lost copy.
MAX_OUTSTANDING = 4


def read_mark(buf: Any, offset: int) -> Mark | None:
    """(in_port, MAC, VLAN, age s) of one mark at `offset`; None for any other flow."""
    _len, table, sec, nsec, _prio, _idle, _hard, _flags, cookie, _pkts, _bytes = (
        stats.FLOW_STATS_HEAD.unpack_from(buf, offset)
    )
    if cookie != pipeline.COOKIE_PENDING_MARK or table != pipeline.TABLE_FABRIC_SEEN:
        return None
    in_port, src, _dst, vid = stats.read_match(buf, offset)
    if in_port is None or src is None:
        return None
    return in_port, bytes(src).hex(":"), pipeline.vlan_of(vid), sec + nsec / 1e9


def marks(body: Iterable[Any]) -> list[Mark]:
    """The marks in a flow-stats reply body (lazy entries, or Ryu's parsed ones)."""
    return stats.read_body(body, read_mark, _mark_from_ryu)


def _mark_from_ryu(stat: Any) -> Mark | None:
    if stat.cookie != pipeline.COOKIE_PENDING_MARK:
        return None
    fields = dict(stat.match.items())
    if "in_port" not in fields or "eth_src" not in fields:
        return None
    vid = fields.get("vlan_vid", 0)
    vid = vid[0] if isinstance(vid, tuple) else vid
    age = stat.duration_sec + stat.duration_nsec / 1e9
    return int(fields["in_port"]), str(fields["eth_src"]), pipeline.vlan_of(int(vid)), age


class MarkReader:
    """Outstanding mark requests by xid (at most MAX_OUTSTANDING per switch)."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[int, float]] = {}  # xid -> (dpid, sent monotonic)

    def owns(self, xid: int) -> bool:
        return xid in self.pending

    def request(self, dp: Any) -> Any | None:
        """The next request for `dp` (xid set), or None while MAX_OUTSTANDING are
        unanswered."""
        now = time.monotonic()
        waiting = 0
        for xid, (dpid, sent) in list(self.pending.items()):
            if dpid == dp.id:
                if now - sent >= OUTSTANDING_FOR:
                    del self.pending[xid]
                else:
                    waiting += 1
        if waiting >= MAX_OUTSTANDING:
            return None
        req = ofmsgs.marks_request(dp)
        dp.set_xid(req)
        self.pending[req.xid] = (dp.id, now)
        return req

    def reply(self, msg: Any) -> tuple[int, list[Mark]]:
        """(dpid, marks) of one reply message; the request is done at its last message."""
        dpid, _sent = self.pending[msg.xid]
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            del self.pending[msg.xid]
        return dpid, marks(msg.body)

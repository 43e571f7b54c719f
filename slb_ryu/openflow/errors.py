"""OpenFlow error messages an operator can read: type and code by name (from Ryu's
ofproto_v1_3 constants), and the message that caused the error, found by its xid.

The switch answers a bad flow/group/meter mod with OFPT_ERROR carrying the same xid, long
after `send()` returned. `SentMods` keeps a short description of the last few thousand
mods by (dpid, xid) so the warning can say "FLOW_MOD_FAILED/TABLE_FULL for flow add
table=1 priority=..." instead of "type=5 code=1".
"""

from __future__ import annotations

import collections
import struct

from ryu.ofproto import ofproto_v1_3 as ofp

# Error type -> prefix of its code constants (OpenFlow 1.3.5 section 7.4.4).
_CODE_PREFIX = {
    "HELLO_FAILED": "OFPHFC_",
    "BAD_REQUEST": "OFPBRC_",
    "BAD_ACTION": "OFPBAC_",
    "BAD_INSTRUCTION": "OFPBIC_",
    "BAD_MATCH": "OFPBMC_",
    "FLOW_MOD_FAILED": "OFPFMFC_",
    "GROUP_MOD_FAILED": "OFPGMFC_",
    "PORT_MOD_FAILED": "OFPPMFC_",
    "TABLE_MOD_FAILED": "OFPTMFC_",
    "QUEUE_OP_FAILED": "OFPQOFC_",
    "SWITCH_CONFIG_FAILED": "OFPSCFC_",
    "ROLE_REQUEST_FAILED": "OFPRRFC_",
    "METER_MOD_FAILED": "OFPMMFC_",
    "TABLE_FEATURES_FAILED": "OFPTFFC_",
}


def _names(prefix: str) -> dict[int, str]:
    return {
        getattr(ofp, n): n[len(prefix) :]
        for n in dir(ofp)
        if n.startswith(prefix) and isinstance(getattr(ofp, n), int)
    }


TYPES = _names("OFPET_")
CODES = {getattr(ofp, "OFPET_" + t): _names(p) for t, p in _CODE_PREFIX.items()}
MSG_TYPES = _names("OFPT_")


def error_name(err_type: int, code: int) -> str:
    """'FLOW_MOD_FAILED/TABLE_FULL'; unknown numbers stay numbers ('type 99/code 3')."""
    tname = TYPES.get(err_type, f"type {err_type}")
    cname = CODES.get(err_type, {}).get(code, f"code {code}")
    return f"{tname}/{cname}"


def offending_type(data: bytes) -> str | None:
    """Message type of the request the error quotes (its first bytes), e.g. 'FLOW_MOD'."""
    if len(data) < 2:
        return None
    _version, msg_type = struct.unpack_from("!BB", data)
    return MSG_TYPES.get(msg_type, f"type {msg_type}")


def describe_mod(obj: str, command: str, spec: object) -> str:
    """Short text for a mod ('flow add table=1 priority=100 cookie=0x... match=...')."""
    if obj == "flow":
        match = ",".join(f"{k}={v}" for k, v in getattr(spec, "match", ()))
        return (
            f"flow {command} table={spec.table} priority={spec.priority} "
            f"cookie={spec.cookie:#x} match={match or '*'}"
        )
    if obj == "group":
        return f"group {command} group_id={spec.group_id} type={spec.type}"
    if obj == "meter":
        return f"meter {command} meter_id={spec.meter_id} rate={spec.rate_pps}pps"
    return f"{obj} {command}"


class SentMods:
    """Bounded (dpid, xid) -> (obj, command, spec) of recently sent mods, oldest dropped
    first. Only references are kept; the text is made when an error needs it."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._sent: collections.OrderedDict[tuple[int, int], tuple] = collections.OrderedDict()

    def remember(self, dpid: int, xid: int, obj: str, command: str, spec: object) -> None:
        self._sent[(dpid, xid)] = (obj, command, spec)
        self._sent.move_to_end((dpid, xid))
        while len(self._sent) > self.size:
            self._sent.popitem(last=False)

    def lookup(self, dpid: int, xid: int) -> str | None:
        """Description of the mod sent to `dpid` with `xid`, if still remembered."""
        sent = self._sent.get((dpid, xid))
        return describe_mod(*sent) if sent else None

    def __len__(self) -> int:
        return len(self._sent)

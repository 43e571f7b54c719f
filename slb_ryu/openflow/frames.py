"""Parse the frames the switch sends to the controller, tolerating anything malformed."""

from __future__ import annotations

from dataclasses import dataclass

from ryu.lib.packet import arp, ethernet, packet, vlan

ETH_TYPE_ARP = 0x0806


@dataclass(frozen=True)
class Frame:
    src: str
    dst: str
    vlan: int  # outer 802.1Q VID, 0 when untagged
    ethertype: int  # inner EtherType after the tags
    arp_op: int | None = None
    arp_spa: str | None = None
    arp_tpa: str | None = None

    @property
    def is_gratuitous_arp(self) -> bool:
        return self.arp_op is not None and self.arp_spa == self.arp_tpa


def parse(data: bytes) -> Frame | None:
    """A `Frame`, or None for anything too short or not parseable as Ethernet."""
    if len(data) < 14:
        return None
    try:
        pkt = packet.Packet(data)
    except Exception:  # ryu.lib.packet raises assorted errors on truncated headers
        return None
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None:
        return None
    # Outer tag first, whether 802.1Q or 802.1ad (Ryu parses the latter as `svlan`, a
    # sibling class): OpenFlow's vlan_vid, and so our flows, see the outer one.
    tags = [p for p in pkt.protocols if isinstance(p, vlan._vlan)]
    vid = tags[0].vid if tags else 0
    ethertype = tags[-1].ethertype if tags else eth.ethertype
    frame = Frame(src=eth.src.lower(), dst=eth.dst.lower(), vlan=vid, ethertype=ethertype)
    req = pkt.get_protocol(arp.arp)
    if ethertype == ETH_TYPE_ARP and req is None:
        return None  # truncated ARP: ryu.lib.packet stops parsing silently
    if req is not None and isinstance(req.src_ip, str):
        frame = Frame(
            frame.src,
            frame.dst,
            frame.vlan,
            frame.ethertype,
            arp_op=req.opcode,
            arp_spa=req.src_ip,
            arp_tpa=req.dst_ip,
        )
    return frame


def untag(data: bytes) -> bytes:
    """Remove the outer 802.1Q tag (to re-inject a frame as it entered an access port)."""
    if len(data) >= 18 and data[12:14] == b"\x81\x00":
        return data[:12] + data[16:]
    return data

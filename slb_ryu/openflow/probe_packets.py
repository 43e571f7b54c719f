"""ARP requests that probe an uplink's path (core/probe.py).

Sent by packet-out straight out of one uplink, from that uplink's probe MAC, with
sender IP 0.0.0.0 (an RFC 5227 ARP probe): the target answers unicast to our probe MAC
but, unlike a normal request, adds no neighbour entry for an address we do not own.
802.1Q-tagged when the target lives on a tagged VLAN.
"""

from __future__ import annotations

from ryu.lib.packet import arp, ethernet, packet, vlan
from ryu.lib.packet import ether_types as ether

from slb_ryu.core.probe import ProbeRequest

BROADCAST = "ff:ff:ff:ff:ff:ff"
MIN_FRAME = 60  # Ethernet minimum without FCS; short frames are padded


def arp_probe(src_mac: str, target_ip: str, vid: int = 0) -> bytes:
    """ARP request 'who has target_ip' from `src_mac` (sender IP 0.0.0.0)."""
    payload = arp.arp(
        opcode=arp.ARP_REQUEST,
        src_mac=src_mac,
        src_ip="0.0.0.0",
        dst_mac="00:00:00:00:00:00",
        dst_ip=target_ip,
    )
    # A few frames per second: built with ryu.lib.packet (learning packets, thousands per
    # failover, are packed by hand in learning_packets.py and tested equal to this library).
    pkt = packet.Packet()
    if vid:
        pkt.add_protocol(ethernet.ethernet(BROADCAST, src_mac, ether.ETH_TYPE_8021Q))
        pkt.add_protocol(vlan.vlan(vid=vid, ethertype=ether.ETH_TYPE_ARP))
    else:
        pkt.add_protocol(ethernet.ethernet(BROADCAST, src_mac, ether.ETH_TYPE_ARP))
    pkt.add_protocol(payload)
    pkt.serialize()
    data = bytes(pkt.data)
    return data + b"\x00" * max(0, MIN_FRAME - len(data))


def probe_frame(request: ProbeRequest) -> bytes:
    """The frame of one planned probe."""
    return arp_probe(request.src_mac, request.target.ip, request.target.vlan)

"""Frames that make upstream switches re-learn a MAC on its new uplink.

A gratuitous ARP per known IPv4 address (hosts refresh their ARP caches too), or a
RARP when no address is known (what Open vSwitch's bond sends). Built with
`ryu.lib.packet`, 802.1Q-tagged when the MAC lives on a tagged VLAN.
"""

from __future__ import annotations

from collections.abc import Iterable

from ryu.lib.packet import arp, ethernet, packet, vlan
from ryu.lib.packet import ether_types as ether

BROADCAST = "ff:ff:ff:ff:ff:ff"
ETH_TYPE_RARP = 0x8035
MIN_FRAME = 60  # Ethernet minimum without FCS; short frames are padded


def _frame(src: str, ethertype: int, payload: arp.arp, vid: int) -> bytes:
    pkt = packet.Packet()
    if vid:
        pkt.add_protocol(ethernet.ethernet(BROADCAST, src, ether.ETH_TYPE_8021Q))
        pkt.add_protocol(vlan.vlan(vid=vid, ethertype=ethertype))
    else:
        pkt.add_protocol(ethernet.ethernet(BROADCAST, src, ethertype))
    pkt.add_protocol(payload)
    pkt.serialize()
    data = bytes(pkt.data)
    return data + b"\x00" * max(0, MIN_FRAME - len(data))


def gratuitous_arp(mac: str, ip: str, vid: int = 0) -> bytes:
    """ARP request announcing `ip` at `mac` (sender and target IP equal)."""
    payload = arp.arp(
        opcode=arp.ARP_REQUEST, src_mac=mac, src_ip=ip, dst_mac="00:00:00:00:00:00", dst_ip=ip
    )
    return _frame(mac, ether.ETH_TYPE_ARP, payload, vid)


def rarp(mac: str, vid: int = 0) -> bytes:
    """Reverse ARP request from `mac`, for a MAC whose IPv4 address is unknown."""
    payload = arp.arp(
        opcode=arp.ARP_REV_REQUEST, src_mac=mac, src_ip="0.0.0.0", dst_mac=mac, dst_ip="0.0.0.0"
    )
    return _frame(mac, ETH_TYPE_RARP, payload, vid)


def learning_packets(mac: str, ips: Iterable[str], vid: int = 0) -> list[bytes]:
    """All frames to send for one moved MAC."""
    addresses = sorted(ips)
    if not addresses:
        return [rarp(mac, vid)]
    return [gratuitous_arp(mac, ip, vid) for ip in addresses]

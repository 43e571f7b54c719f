"""Frames that make upstream switches re-learn a MAC on its new uplink.

A gratuitous ARP per known IPv4 address (hosts refresh their ARP caches too), or a
RARP when no address is known (what Open vSwitch's bond sends), 802.1Q-tagged when the
MAC lives on a tagged VLAN. Packed with `struct` rather than `ryu.lib.packet`: a
failover of 10,000 MACs sends 10,000 of them, and the bytes are the same (a unit test
compares both).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

BROADCAST = "ff:ff:ff:ff:ff:ff"
ETH_TYPE_ARP = 0x0806
ETH_TYPE_RARP = 0x8035
ETH_TYPE_8021Q = 0x8100
ARP_REQUEST = 1
ARP_REV_REQUEST = 3
MIN_FRAME = 60  # Ethernet minimum without FCS; short frames are padded

_BROADCAST = b"\xff" * 6
_ZERO_MAC = b"\x00" * 6
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # Ethernet/IPv4 ARP body, 28 bytes


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _frame(src: bytes, ethertype: int, payload: bytes, vid: int) -> bytes:
    if vid:
        head = _BROADCAST + src + struct.pack("!HHH", ETH_TYPE_8021Q, vid & 0xFFF, ethertype)
    else:
        head = _BROADCAST + src + struct.pack("!H", ethertype)
    data = head + payload
    return data + b"\x00" * max(0, MIN_FRAME - len(data))


def _arp(opcode: int, src: bytes, src_ip: str, dst: bytes, dst_ip: str) -> bytes:
    ip_src, ip_dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    return _ARP.pack(1, 0x0800, 6, 4, opcode, src, ip_src, dst, ip_dst)


def gratuitous_arp(mac: str, ip: str, vid: int = 0) -> bytes:
    """ARP request announcing `ip` at `mac` (sender and target IP equal)."""
    src = _mac(mac)
    return _frame(src, ETH_TYPE_ARP, _arp(ARP_REQUEST, src, ip, _ZERO_MAC, ip), vid)


def rarp(mac: str, vid: int = 0) -> bytes:
    """Reverse ARP request from `mac`, for a MAC whose IPv4 address is unknown."""
    src = _mac(mac)
    payload = _arp(ARP_REV_REQUEST, src, "0.0.0.0", src, "0.0.0.0")
    return _frame(src, ETH_TYPE_RARP, payload, vid)


def learning_packets(mac: str, ips: Iterable[str], vid: int = 0) -> list[bytes]:
    """All frames to send for one moved MAC."""
    addresses = sorted(ips)
    if not addresses:
        return [rarp(mac, vid)]
    return [gratuitous_arp(mac, ip, vid) for ip in addresses]

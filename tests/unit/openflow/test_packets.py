"""Learning packets and packet-in parsing, checked by parsing bytes back with ryu.lib.packet."""

from ryu.lib.packet import arp, ethernet, packet, vlan

from slb_ryu.openflow import frames, learning_packets

MAC = "02:00:00:00:01:01"


def parse(data):
    pkt = packet.Packet(data)
    return pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(vlan.vlan), pkt


def test_gratuitous_arp_per_ip_from_the_vm_mac():
    frames_ = learning_packets.learning_packets(MAC, ["10.0.0.12", "10.0.0.11"])
    assert len(frames_) == 2
    eth, tag, pkt = parse(frames_[0])
    req = pkt.get_protocol(arp.arp)
    assert eth.src == MAC and eth.dst == "ff:ff:ff:ff:ff:ff" and tag is None
    assert req.opcode == arp.ARP_REQUEST and req.src_ip == req.dst_ip == "10.0.0.11"
    assert req.src_mac == MAC
    assert len(frames_[0]) >= 60


def test_rarp_without_ip_and_vlan_tag():
    (data,) = learning_packets.learning_packets(MAC, [], vid=42)
    eth, tag, _ = parse(data)
    assert eth.ethertype == 0x8100 and tag.vid == 42
    assert tag.ethertype == learning_packets.ETH_TYPE_RARP
    assert data[16:18] == b"\x80\x35"  # RARP EtherType inside the 802.1Q tag
    opcode = int.from_bytes(data[18 + 6 : 18 + 8], "big")
    assert opcode == arp.ARP_REV_REQUEST


def test_parse_roundtrip_and_gratuitous_detection():
    frame = frames.parse(learning_packets.gratuitous_arp(MAC, "10.0.0.11", vid=7))
    assert frame.src == MAC and frame.vlan == 7 and frame.ethertype == 0x0806
    assert frame.arp_spa == "10.0.0.11" and frame.is_gratuitous_arp


def test_malformed_frames_are_none_not_exceptions():
    assert frames.parse(b"") is None
    assert frames.parse(b"\x00" * 13) is None
    garp = learning_packets.gratuitous_arp(MAC, "10.0.0.11")
    for cut in range(14, 42):
        assert frames.parse(garp[:cut]) is None  # truncated ARP: malformed, not half-parsed
    assert frames.parse(garp).arp_spa == "10.0.0.11"
    odd = bytes.fromhex("ffffffffffff020000000101ffff") + b"\x01" * 46
    assert frames.parse(odd).ethertype == 0xFFFF


def test_outer_tag_counts_for_qinq_like_openflow_vlan_vid():
    qinq = bytes.fromhex("ffffffffffff02000000010188a80064810000070800")
    frame = frames.parse(qinq + b"\x00" * 40)
    assert frame.vlan == 100 and frame.ethertype == 0x0800
    dot1q = bytes.fromhex("ffffffffffff020000000101810000c8810000070800")
    assert frames.parse(dot1q + b"\x00" * 40).vlan == 200


def test_untag_removes_only_an_outer_8021q_tag():
    tagged = learning_packets.gratuitous_arp(MAC, "10.0.0.11", vid=10)
    plain = learning_packets.gratuitous_arp(MAC, "10.0.0.11")
    assert frames.untag(tagged)[:42] == plain[:42]
    assert frames.untag(plain) == plain


def test_probe_is_an_arp_probe_from_the_uplink_probe_mac_tagged_per_vlan():
    from slb_ryu.core.probe import ProbeRequest, ProbeTarget, probe_mac
    from slb_ryu.openflow import probe_packets

    src = probe_mac(1, 2)
    eth, tag, pkt = parse(probe_packets.probe_frame(ProbeRequest(2, src, ProbeTarget("10.0.0.1"))))
    req = pkt.get_protocol(arp.arp)
    assert eth.src == src and eth.dst == "ff:ff:ff:ff:ff:ff" and tag is None
    assert req.opcode == arp.ARP_REQUEST and req.src_mac == src
    assert req.src_ip == "0.0.0.0" and req.dst_ip == "10.0.0.1"  # RFC 5227: learns nothing
    tagged = probe_packets.probe_frame(ProbeRequest(2, src, ProbeTarget("10.0.10.1", 10)))
    eth, tag, pkt = parse(tagged)
    assert eth.ethertype == 0x8100 and tag.vid == 10
    assert pkt.get_protocol(arp.arp).dst_ip == "10.0.10.1" and len(tagged) >= 60


def _ryu_frame(src, ethertype, payload, vid):
    """The former ryu.lib.packet builder: the reference the struct-packed frames must equal."""
    from ryu.lib.packet import ether_types

    pkt = packet.Packet()
    if vid:
        pkt.add_protocol(ethernet.ethernet("ff:ff:ff:ff:ff:ff", src, ether_types.ETH_TYPE_8021Q))
        pkt.add_protocol(vlan.vlan(vid=vid, ethertype=ethertype))
    else:
        pkt.add_protocol(ethernet.ethernet("ff:ff:ff:ff:ff:ff", src, ethertype))
    pkt.add_protocol(payload)
    pkt.serialize()
    data = bytes(pkt.data)
    return data + b"\x00" * max(0, 60 - len(data))


def test_struct_frames_equal_ryu_packet_library_bytes():
    for mac in (MAC, "fe:dc:ba:98:76:54"):
        for vid in (0, 1, 42, 4094):
            for ip in ("10.0.0.11", "192.168.255.1"):
                payload = arp.arp(
                    opcode=arp.ARP_REQUEST,
                    src_mac=mac,
                    src_ip=ip,
                    dst_mac="00:00:00:00:00:00",
                    dst_ip=ip,
                )
                want = _ryu_frame(mac, 0x0806, payload, vid)
                assert learning_packets.gratuitous_arp(mac, ip, vid) == want
            payload = arp.arp(
                opcode=arp.ARP_REV_REQUEST,
                src_mac=mac,
                src_ip="0.0.0.0",
                dst_mac=mac,
                dst_ip="0.0.0.0",
            )
            assert learning_packets.rarp(mac, vid) == _ryu_frame(mac, 0x8035, payload, vid)

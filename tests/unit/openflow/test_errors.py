"""OpenFlow error replies decoded to names and tied to the mod that caused them."""

from slb_ryu.core.pipeline import FlowSpec, GroupSpec, match
from slb_ryu.openflow import errors


def test_error_names_from_ryu_constants():
    assert errors.error_name(5, 1) == "FLOW_MOD_FAILED/TABLE_FULL"
    assert errors.error_name(6, 0) == "GROUP_MOD_FAILED/GROUP_EXISTS"
    assert errors.error_name(4, 6) == "BAD_MATCH/BAD_FIELD"
    assert errors.error_name(12, 1) == "METER_MOD_FAILED/METER_EXISTS"
    assert errors.error_name(99, 3) == "type 99/code 3"  # unknown: numbers, no crash
    assert errors.error_name(5, 999) == "FLOW_MOD_FAILED/code 999"


def test_offending_type_from_quoted_header():
    assert errors.offending_type(bytes([4, 14, 0, 8])) == "FLOW_MOD"
    assert errors.offending_type(bytes([4, 15])) == "GROUP_MOD"
    assert errors.offending_type(b"") is None


def test_sent_mods_describe_by_xid_and_stay_bounded():
    sent = errors.SentMods(size=2)
    flow = FlowSpec(1, 100, match(eth_src="02:00:00:00:00:01", in_port=3), 0xAB00)
    sent.remember(7, 10, "flow", "add", flow)
    sent.remember(7, 11, "group", "modify", GroupSpec(2, "ff", ()))
    assert sent.lookup(7, 10) == (
        "flow add table=1 priority=100 cookie=0xab00 match=eth_src=02:00:00:00:00:01,in_port=3"
    )
    assert sent.lookup(8, 10) is None  # xids are per switch
    sent.remember(7, 12, "flow", "delete", flow)
    assert len(sent) == 2 and sent.lookup(7, 10) is None  # oldest dropped
    assert sent.lookup(7, 11) == "group modify group_id=2 type=ff"

"""Fixtures shared by the tests that read flow-stats replies from their wire bytes."""

import pytest
from ryu.ofproto import ofproto_v1_3_parser as parser

from slb_ryu.openflow import stats


@pytest.fixture
def lazy_flow_stats():
    """Ryu keeps flow-stats reply entries lazy (stats.install) for the test, as in the app."""
    before = parser.OFPFlowStatsReply.cls_stats_body_cls
    stats.install()
    yield
    parser.OFPFlowStatsReply.cls_stats_body_cls = before

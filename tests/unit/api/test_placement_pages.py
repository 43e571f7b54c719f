"""GET /placement at scale: built in slices with a pause between them, paged with
`limit`/`after` (cursor in X-Next-After and Link), bad paging input answered with a 400.

Plain data: the fake app's real `BridgeCore`s plus one bridge (dpid 3) that learned
`BIG` MACs; `rest.pause` is replaced by a recorder, so no event loop is needed.
"""

from __future__ import annotations

import json
import urllib.parse

import pytest
from api_fake import MAC_A, MAC_B, MAC_C, Client, FakeApp, learn

from slb_ryu.api import rest, views
from slb_ryu.core.bridge import BridgeCore, Limits
from slb_ryu.core.placement import OFPP_LOCAL, Port

P = rest.PREFIX
BIG = 1000


def big_mac(i: int) -> str:
    return f"02:aa:00:00:{i >> 8:02x}:{i & 255:02x}"


@pytest.fixture
def app():
    app = FakeApp()
    core = BridgeCore(
        3, ["hv3-eth*"], app.event_log, limits=Limits(max_macs_per_port=0, packet_in_rate=10**6)
    )
    ports = [Port(OFPP_LOCAL, "hv3"), Port(1, "hv3-eth1"), Port(2, "hv3-eth2"), Port(3, "v31")]
    core.connect(ports, [], [], {}, 1000.0)
    for i in range(BIG):
        learn(core, 3, big_mac(i), 0, None, 1001.0)
    assert len(core.placement.macs) == BIG
    app.bridges[3] = core
    app.datapaths[3] = object()
    return app


@pytest.fixture
def pauses(monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(rest, "pause", calls.append)
    return calls


def get(client, query: str = ""):
    resp = client.get(f"{P}/placement" + (f"?{query}" if query else ""))
    assert resp.status_int == 200, resp.text
    assert resp.content_type == "application/json"
    return json.loads(resp.text), resp


def keys(rows):
    return [(r["dpid"], r["mac"], r["vlan"]) for r in rows]


def test_unpaged_answer_is_every_row_built_in_slices(app, pauses):
    rows, resp = get(Client(app))
    assert len(rows) == 5 + BIG
    assert keys(rows) == sorted(keys(rows))
    assert "X-Next-After" not in resp.headers and "Link" not in resp.headers
    # one pause per PLACEMENT_SLICE MACs visited, each a yield (sleep 0)
    assert len(pauses) == (5 + BIG) // views.PLACEMENT_SLICE and set(pauses) == {0}
    one = next(r for r in rows if r["mac"] == big_mac(7))
    assert one["bridge"] == "hv3" and one["port"] == "v31" and one["ips"] == []
    assert one["uplink"] in ("hv3-eth1", "hv3-eth2") and one["tx_bps"] == one["tx_bytes_per_s"]


def test_pages_follow_the_cursor_to_the_same_rows(app, pauses):
    client = Client(app)
    everything, _ = get(client)
    got, query, pages = [], "limit=300", 0
    while True:
        rows, resp = get(client, query)
        pages += 1
        got += rows
        if "X-Next-After" not in resp.headers:
            assert "Link" not in resp.headers
            break
        assert len(rows) == 300
        cursor = resp.headers["X-Next-After"]
        assert cursor == views.cursor_text((int(rows[-1]["dpid"], 16), rows[-1]["mac"], 0))
        link = resp.headers["Link"]
        assert link.startswith(f"<{P}/placement?") and link.endswith('>; rel="next"')
        query = urllib.parse.urlsplit(link[1 : link.index(">")]).query
        assert urllib.parse.parse_qs(query) == {"limit": ["300"], "after": [cursor]}
    assert got == everything and pages == 4  # 1005 rows: 300, 300, 300, 105


def test_a_page_that_ends_exactly_at_the_last_row_has_no_next(app, pauses):
    rows, resp = get(Client(app), "bridge=hv1&limit=4")
    assert len(rows) == 4 and "X-Next-After" not in resp.headers
    rows, resp = get(Client(app), "bridge=hv1&limit=3")
    assert keys(rows) == [("0000000000000001", MAC_A, 0)] + [
        ("0000000000000001", MAC_B, v) for v in (10, 20)
    ]
    assert resp.headers["X-Next-After"] == f"0000000000000001,{MAC_B},20"


def test_cursor_combines_with_filters(app, pauses):
    client = Client(app)
    rows, _ = get(client, f"after=0000000000000001,{MAC_B},10")
    assert keys(rows)[:3] == [
        ("0000000000000001", MAC_B, 20),
        ("0000000000000001", MAC_C, 30),
        ("0000000000000002", MAC_C, 0),
    ]
    rows, _ = get(client, f"mac={MAC_C}&after=0000000000000001,{MAC_C},30")
    assert keys(rows) == [("0000000000000002", MAC_C, 0)]
    on_eth1 = [r for r in get(client, "bridge=hv3")[0] if r["uplink"] == "hv3-eth1"]
    rows, resp = get(client, "uplink=hv3-eth1&limit=10")
    assert rows == on_eth1[:10] and resp.headers["X-Next-After"].endswith(f"{rows[-1]['mac']},0")
    rows, resp = get(client, f"after=0000000000000003,{big_mac(BIG - 1)},0")
    assert rows == [] and "X-Next-After" not in resp.headers
    rows, _ = get(client, "after=ffffffffffffffff,ff:ff:ff:ff:ff:ff,4094")
    assert rows == []


def test_a_mac_forgotten_between_slices_is_left_out():
    app = FakeApp()
    rows = views.placement_rows(app.bridges)
    first = next(rows)  # hv1's first row; hv2 not visited yet
    assert first[0] == (1, MAC_A, 0)
    del app.bridges[2].placement.macs[(MAC_C, 0)]
    rest_rows = [item for item in rows if item]
    assert [c for c, _ in rest_rows] == [(1, MAC_B, 10), (1, MAC_B, 20), (1, MAC_C, 30)]


def test_placement_json_is_a_json_array_one_row_per_line():
    items = [((1, "02:00:00:00:00:0%d" % i, 0), {"i": i}) for i in range(5)]
    stream = [items[0], None, items[1], items[2], None, items[3], items[4]]
    paused = []
    text, nxt = views.placement_json(iter(stream), None, lambda: paused.append(1))
    assert json.loads(text) == [{"i": i} for i in range(5)] and nxt is None
    assert len(text.splitlines()) == 7 and len(paused) == 2
    text, nxt = views.placement_json(iter(stream), 3)
    assert json.loads(text) == [{"i": 0}, {"i": 1}, {"i": 2}] and nxt == items[2][0]
    assert views.placement_json(iter([None]), 3) == ("[]\n", None)


@pytest.mark.parametrize(
    "query, words",
    [
        ("limit=0", ["limit must be an integer 1..10000", "'0'"]),
        ("limit=10001", ["1..10000"]),
        ("limit=-5", ["1..10000"]),
        ("limit=ten", ["1..10000", "'ten'"]),
        ("limit=", ["1..10000"]),
        ("after=", ["after must be a cursor 'DPID,MAC,VLAN'", "X-Next-After"]),
        ("after=junk", ["cursor 'DPID,MAC,VLAN'", "'junk'"]),
        (f"after=0000000000000001,{MAC_A}", ["cursor"]),
        (f"after=0000000000000001,{MAC_A},0,1", ["cursor"]),
        (f"after=0000000000000001,{MAC_A},4095", ["cursor"]),
        (f"after=0000000000000001,{MAC_A},-1", ["cursor"]),
        ("after=0000000000000001,zz,0", ["cursor"]),
        (f"after=nothex,{MAC_A},0", ["cursor"]),
        ("limit=1&limit=2", ["'limit' given more than once"]),
    ],
)
def test_bad_paging_input_is_a_400(app, query, words):
    resp = Client(app).get(f"{P}/placement?{query}")
    assert resp.status_int == 400, resp.text
    body = json.loads(resp.text)
    assert body["status"] == 400
    for word in words:
        assert word in body["error"], (word, body["error"])

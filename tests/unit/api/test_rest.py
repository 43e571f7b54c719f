"""REST API on the WSGI app in-process (webob Request.blank), against real BridgeCores.

Every response is checked against slb_ryu/openapi.yaml (jsonschema, draft 2020-12, the
dialect of OpenAPI 3.1); schemathesis and a raw hypothesis fuzzer drive every endpoint
with generated input and must find no 5xx.
"""

from __future__ import annotations

import json
import logging

import jsonschema
import pytest
import schemathesis
import yaml
from api_fake import MAC_A, MAC_B, MAC_C, UNKNOWN_MAC, Client, FakeApp, wsgi_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from slb_ryu import __version__
from slb_ryu.api import request as rest_input
from slb_ryu.api import rest
from slb_ryu.api import views as rest_views
from slb_ryu.core.errors import Conflict, NotFound
from slb_ryu.core.placement import Port

P = rest.PREFIX
DOC = yaml.safe_load(rest_views.OPENAPI_PATH.read_text())
DOC["info"]["version"] = __version__  # filled in from the package metadata when served
REGISTRY = Registry().with_resource(
    "urn:slb-openapi", Resource.from_contents(DOC, default_specification=DRAFT202012)
)


def response_schema(method: str, template: str, status: int) -> dict:
    op = DOC["paths"][template][method.lower()]
    assert str(status) in op["responses"], f"{method} {template}: {status} is not documented"
    spec = op["responses"][str(status)]
    if "$ref" in spec:
        spec = DOC["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
    return next(iter(spec["content"].values()))["schema"]


def checked(resp, method: str, template: str, status: int = 200):
    """Assert the status, validate the JSON body against the document; return it."""
    assert resp.status_int == status, resp.text
    assert resp.content_type == "application/json"
    body = json.loads(resp.text)
    schema = response_schema(method, template, status)
    if "$ref" in schema:
        schema = {"$ref": "urn:slb-openapi" + schema["$ref"]}
    else:
        schema = _rebase(schema)
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(body)
    return body


def _rebase(node):
    if isinstance(node, dict):
        return {
            k: ("urn:slb-openapi" + v if k == "$ref" and v.startswith("#") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def err(resp, status: int, *words: str) -> str:
    """An error answer: status, JSON {"error", "status"}, message containing `words`."""
    assert resp.status_int == status, resp.text
    body = json.loads(resp.text)
    assert body["status"] == status and isinstance(body["error"], str), body
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body["error"]


@pytest.fixture
def client():
    return Client()


def place(client, mac, **params):
    resp = client.get(f"{P}/placement/{mac}" + (("?" + _qs(params)) if params else ""))
    return checked(resp, "GET", "/placement/{mac}")


def _qs(params):
    import urllib.parse

    return urllib.parse.urlencode(params)


# ---- the document -------------------------------------------------------------------------


def test_openapi_document_is_valid_and_served_as_json_and_yaml(client):
    validate_spec(DOC)
    served = checked(client.get(f"{P}/openapi.json"), "GET", "/openapi.json")
    assert served == DOC
    resp = client.get(f"{P}/openapi.yaml")
    assert resp.status_int == 200 and resp.content_type == "application/yaml"
    assert yaml.safe_load(resp.text) == DOC


# ---- reads --------------------------------------------------------------------------------


def test_bridges_and_health(client):
    rows = checked(client.get(f"{P}/bridges"), "GET", "/bridges")
    assert [(r["dpid"], r["name"]) for r in rows] == [
        ("0000000000000001", "hv1"),
        ("0000000000000002", "hv2"),
    ]
    assert rows[0]["uplinks"] == ["hv1-eth1", "hv1-eth2"] and rows[0]["macs"] == 4
    assert rows[0]["connected"] and rows[0]["synced"]
    health = checked(client.get(f"{P}/health"), "GET", "/health")
    assert health["status"] == "ok" and health["problems"] == []
    assert health["bridges"]["0000000000000001"]["synced"] is True
    assert health["counters"]["learn"] == 5


def test_health_degraded_when_a_bridge_is_gone_or_has_no_live_uplink(client):
    del client.app.datapaths[2]
    for port in client.app.bridges[1].placement.uplinks:
        port.live = False
    health = checked(client.get(f"{P}/health"), "GET", "/health")
    assert health["status"] == "degraded"
    assert "bridge hv2 is not connected" in health["problems"]
    assert "bridge hv1 has no usable uplink" in health["problems"]


def test_path_probing_in_uplinks_bridges_and_health(client):
    from slb_ryu.core.probe import ProbeTarget

    core = client.app.bridges[1]
    port = core.placement.ports[1]
    port.path_dead, port.path, port.last_reply = True, "dead", 1234.5
    core.placement.ports[2].path = "up"
    core.unreachable = (ProbeTarget("10.0.0.201", 10),)
    rows = checked(client.get(f"{P}/uplinks?bridge=hv1"), "GET", "/uplinks")
    by = {r["name"]: r for r in rows}
    assert by["hv1-eth1"]["path"] == "dead" and by["hv1-eth1"]["last_reply"] == 1234.5
    assert not by["hv1-eth1"]["usable"] and by["hv1-eth1"]["live"]
    assert by["hv1-eth2"]["path"] == "up"
    bridges = checked(client.get(f"{P}/bridges"), "GET", "/bridges")
    assert next(b for b in bridges if b["name"] == "hv1")["path_dead_uplinks"] == ["hv1-eth1"]
    health = checked(client.get(f"{P}/health"), "GET", "/health")
    assert health["status"] == "degraded"
    assert (
        "uplink hv1-eth1 of bridge hv1 is path-dead (probes unanswered or BFD down)"
        in health["problems"]
    )
    assert any("probe target 10.0.0.201@10 is unreachable" in p for p in health["problems"])


def test_uplinks_state_speed_load_counters(client):
    core = client.app.bridges[1]
    core.entry(MAC_A, 0).tx_bps = 1000.0
    core.entry(MAC_A, 0).rx_bps = 250.0
    core.placement.ports[1].tx_bytes = 123456
    core.placement.ports[1].rx_bytes = 654321
    core.placement.ports[2].live = False
    rows = checked(client.get(f"{P}/uplinks"), "GET", "/uplinks")
    by = {(r["bridge"], r["name"]): r for r in rows}
    eth1, eth2 = by[("hv1", "hv1-eth1")], by[("hv1", "hv1-eth2")]
    uplink_a = core.placement.port_name(core.entry(MAC_A, 0).uplink)
    row_a = by[("hv1", uplink_a)]
    assert row_a["tx_bytes_per_s"] == 1000.0 and row_a["rx_bytes_per_s"] == 250.0
    assert row_a["tx_bps"] == 1000.0 and row_a["rx_bps"] == 250.0  # deprecated aliases
    rates = {"tx_bytes_per_s": 0, "rx_bytes_per_s": 0, "tx_bps": 0, "rx_bps": 0}
    assert eth1 | rates == {
        "dpid": "0000000000000001",
        "bridge": "hv1",
        "name": "hv1-eth1",
        "port_no": 1,
        "live": True,
        "held": False,
        "drained": False,
        "usable": True,
        "active": True,
        "speed_bps": 10_000_000_000,
        "macs": eth1["macs"],
        **rates,
        "tx_bytes": 123456,
        "rx_bytes": 654321,
        "next_rebalance_in_s": 7.5,
        "path": "off",
        "last_reply": None,
    }
    assert not eth2["live"] and not eth2["active"]
    assert eth1["macs"] + eth2["macs"] == 4
    only_hv2 = checked(client.get(f"{P}/uplinks?bridge=hv2"), "GET", "/uplinks")
    assert {r["name"] for r in only_hv2} == {"hv2-eth1", "hv2-eth2"}
    err(client.get(f"{P}/uplinks?bridge=hv9"), 404, "no bridge 'hv9'", "hv1 (0000000000000001)")


def test_placement_entries_have_every_field(client):
    rows = checked(client.get(f"{P}/placement"), "GET", "/placement")
    assert len(rows) == 5
    a = next(r for r in rows if r["mac"] == MAC_A)
    assert a["dpid"] == "0000000000000001" and a["bridge"] == "hv1" and a["vlan"] == 0
    assert a["port"] == "v11" and a["ips"] == ["10.0.0.11"] and a["pinned"] is False
    assert a["since"] == 1001.0 and a["uplink"] in ("hv1-eth1", "hv1-eth2")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("bridge=hv2", [(MAC_C, 0)]),
        ("bridge=0000000000000002", [(MAC_C, 0)]),
        ("bridge=0x2", [(MAC_C, 0)]),
        ("bridge=2", [(MAC_C, 0)]),
        ("mac=02-00-00-00-01-02", [(MAC_B, 10), (MAC_B, 20)]),
        ("mac=02:00:00:00:01:0A", []),
        ("vlan=20", [(MAC_B, 20)]),
        ("bridge=hv1&mac=" + MAC_C, [(MAC_C, 30)]),
    ],
)
def test_placement_filters(client, query, expected):
    rows = checked(client.get(f"{P}/placement?{query}"), "GET", "/placement")
    assert [(r["mac"], r["vlan"]) for r in rows] == expected


def test_placement_uplink_filter(client):
    core = client.app.bridges[1]
    rows = checked(client.get(f"{P}/placement?uplink=hv1-eth2"), "GET", "/placement")
    want = sorted(k for k, e in core.placement.macs.items() if e.uplink == 2)
    assert sorted((r["mac"], r["vlan"]) for r in rows) == want and want


@pytest.mark.parametrize(
    "query, status, words",
    [
        ("vlan=abc", 400, ["vlan parameter must be an integer 0..4094", "'abc'"]),
        ("vlan=5000", 400, ["0..4094"]),
        ("vlan=-1", 400, ["0..4094"]),
        ("mac=zz", 400, ["not a MAC address: 'zz'"]),
        ("bridge=nope", 404, ["no bridge 'nope'"]),
        ("uplink=hv7-eth1", 404, ["no uplink 'hv7-eth1'", "hv1-eth1"]),
        ("bridge=hv2&uplink=hv1-eth1", 404, ["no uplink 'hv1-eth1'"]),
        ("colour=red", 400, ["unknown query parameter 'colour'", "allowed: bridge, mac"]),
        ("vlan=1&vlan=2", 400, ["'vlan' given more than once"]),
        ("bridge=%ff", 400, ["not valid UTF-8"]),
    ],
)
def test_placement_bad_queries(client, query, status, words):
    resp = client.get(f"{P}/placement?{query}")
    checked(resp, "GET", "/placement", status)
    err(resp, status, *words)


def test_one_mac_on_every_bridge_and_vlan(client):
    rows = place(client, MAC_C)
    assert [(r["bridge"], r["vlan"]) for r in rows] == [("hv1", 30), ("hv2", 0)]
    assert [r["vlan"] for r in place(client, MAC_B.upper().replace(":", "-"))] == [10, 20]
    assert [r["bridge"] for r in place(client, MAC_C, bridge="hv2")] == ["hv2"]
    resp = client.get(f"{P}/placement/{UNKNOWN_MAC}")
    checked(resp, "GET", "/placement/{mac}", 404)
    err(resp, 404, f"MAC {UNKNOWN_MAC} is not known on any bridge")
    err(client.get(f"{P}/placement/{MAC_C}?vlan=7"), 404, "bridge hv1 VLAN 30", "bridge hv2 VLAN 0")
    resp = client.get(f"{P}/placement/not-a-mac")
    checked(resp, "GET", "/placement/{mac}", 400)
    err(resp, 400, "not a MAC address: 'not-a-mac'")


def test_events_since_limit_type(client):
    log = client.app.event_log
    all_events = checked(client.get(f"{P}/events"), "GET", "/events")
    assert [e["seq"] for e in all_events] == [e["seq"] for e in log.events]
    first = all_events[0]
    assert first["dpid"] == "0000000000000001" and first["bridge"] == "hv1"
    assert first["type"] == "learn" and first["mac"] == MAC_A
    last2 = checked(client.get(f"{P}/events?limit=2"), "GET", "/events")
    assert [e["seq"] for e in last2] == [e["seq"] for e in all_events[-2:]]
    after = checked(client.get(f"{P}/events?since=2&limit=2"), "GET", "/events")
    assert [e["seq"] for e in after] == [3, 4]
    assert checked(client.get(f"{P}/events?since=999"), "GET", "/events") == []
    learns = checked(client.get(f"{P}/events?type=learn,nothing"), "GET", "/events")
    assert {e["type"] for e in learns} == {"learn"} and len(learns) == 5
    err(client.get(f"{P}/events?since=-1"), 400, "since must be an integer")
    err(client.get(f"{P}/events?limit=0"), 400, "limit must be an integer 1..")
    err(client.get(f"{P}/events?since=1e3"), 400, "'1e3'")


def test_config_redacts_the_token():
    client = Client(FakeApp(api_token="s3cret"), token="s3cret")
    cfg = checked(client.get(f"{P}/config"), "GET", "/config")
    assert cfg["api_token"] == "<redacted>" and "s3cret" not in json.dumps(cfg)
    assert cfg["uplinks"] == ["hv1-eth*", "hv2-eth*"] and cfg["api_read_only"] is False
    plain = checked(Client().get(f"{P}/config"), "GET", "/config")
    assert plain["api_token"] is None


def test_wrong_method_unknown_path_and_head(client):
    resp = client.request("DELETE", f"{P}/placement")
    checked(resp, "GET", "/placement", 405)
    assert resp.headers["Allow"] == "GET, HEAD"
    err(resp, 405, "method DELETE not allowed on /slb/v1/placement")
    resp = client.get(f"{P}/placement/{MAC_A}/move")
    err(resp, 405, "use POST")
    assert resp.headers["Allow"] == "POST"
    for path in (f"{P}/nothing", f"{P}", f"{P}/", f"{P}/placement/{MAC_A}/x/y"):
        err(client.get(path), 404, "no such endpoint", "openapi.json")
    err(client.post(f"{P}/nothing"), 404, "no such endpoint: POST")
    head = client.request("HEAD", f"{P}/uplinks")
    assert head.status_int == 200 and head.body == b""


def test_unexpected_exception_is_a_logged_json_500(client, caplog):
    def broken(dpid, fn):
        raise RuntimeError("boom")

    client.app.act = broken
    with caplog.at_level(logging.ERROR, logger="slb_ryu.api.rest"):
        resp = client.post(f"{P}/placement/{MAC_A}/move", {"uplink": "hv1-eth2"})
    err(resp, 500, "internal error handling POST /slb/v1/placement/")
    assert "boom" not in resp.text
    assert any("RuntimeError: boom" in (r.exc_text or "") for r in caplog.records)


# ---- writes -------------------------------------------------------------------------------


def other_uplink(client, mac=MAC_A, vlan=0, dpid=1):
    core = client.app.bridges[dpid]
    return "hv1-eth2" if core.entry(mac, vlan).uplink == 1 else "hv1-eth1"


def test_move_installs_flows_sends_learning_packets_and_logs(client):
    target = other_uplink(client)
    before = client.app.event_log.seq
    resp = client.post(f"{P}/placement/{MAC_A}/move", {"uplink": target})
    result = checked(resp, "POST", "/placement/{mac}/move")
    assert result["moved"] and result["to"] == target and result["from"] != target
    assert result["learning_packets"] == 1  # one GARP: the MAC has one known IP
    assert result["placement"]["uplink"] == target and result["placement"]["pinned"] is False
    core = client.app.bridges[1]
    assert core.placement.port_name(core.entry(MAC_A, 0).uplink) == target
    ((dpid, out),) = client.app.sent
    assert dpid == 1 and out.mods
    (lp,) = out.learning
    assert lp.mac == MAC_A and lp.ips == ("10.0.0.11",)
    assert core.placement.port_name(lp.out_port) == target
    moves = [e for e in client.app.event_log.events if e["seq"] > before and e["type"] == "move"]
    assert moves and moves[0]["reason"] == "manual" and moves[0]["to"] == target
    # The same move again: nothing to do, nothing sent.
    again = checked(
        client.post(f"{P}/placement/{MAC_A}/move", {"uplink": target}),
        "POST",
        "/placement/{mac}/move",
    )
    assert not again["moved"] and again["learning_packets"] == 0


def test_move_with_pin_then_unpin_then_pin(client):
    target = other_uplink(client)
    result = checked(
        client.post(f"{P}/placement/{MAC_A}/move", {"uplink": target, "pin": True}),
        "POST",
        "/placement/{mac}/move",
    )
    assert result["placement"]["pinned"] is True
    assert client.app.bridges[1].entry(MAC_A, 0).pinned
    res = checked(client.post(f"{P}/placement/{MAC_A}/unpin"), "POST", "/placement/{mac}/unpin")
    assert res["pinned"] is False and res["changed"] is True
    assert not client.app.bridges[1].entry(MAC_A, 0).pinned
    res = checked(client.post(f"{P}/placement/{MAC_A}/pin", {}), "POST", "/placement/{mac}/pin")
    assert res["pinned"] is True and res["changed"] is True and res["placement"]["uplink"] == target
    res = checked(client.post(f"{P}/placement/{MAC_A}/pin"), "POST", "/placement/{mac}/pin")
    assert res["changed"] is False
    types = [e["type"] for e in client.app.event_log.events]
    assert types[-2:] == ["unpin", "pin"]


def test_ambiguous_mac_needs_a_qualifier(client):
    resp = client.post(f"{P}/placement/{MAC_B}/move", {"uplink": "hv1-eth1"})
    checked(resp, "POST", "/placement/{mac}/move", 409)
    err(resp, 409, "several bridges/VLANs", "bridge hv1 VLAN 10", "bridge hv1 VLAN 20", '"vlan"')
    res = checked(
        client.post(f"{P}/placement/{MAC_B}/move", {"uplink": "hv1-eth1", "vlan": 20}),
        "POST",
        "/placement/{mac}/move",
    )
    assert res["placement"]["vlan"] == 20 and res["placement"]["uplink"] == "hv1-eth1"
    # Across bridges: the uplink name says which bridge is meant ...
    res = checked(
        client.post(f"{P}/placement/{MAC_C}/move", {"uplink": "hv2-eth2"}),
        "POST",
        "/placement/{mac}/move",
    )
    assert res["placement"]["bridge"] == "hv2"
    # ... pin has no uplink: it needs bridge (name or dpid) or vlan.
    err(client.post(f"{P}/placement/{MAC_C}/pin"), 409, "bridge hv1 VLAN 30", "bridge hv2 VLAN 0")
    for sel in ({"bridge": "hv2"}, {"dpid": 2}, {"dpid": "0x2"}, {"bridge": "0000000000000002"}):
        res = checked(
            client.post(f"{P}/placement/{MAC_C}/pin", sel), "POST", "/placement/{mac}/pin"
        )
        assert res["placement"]["bridge"] == "hv2", sel
    res = checked(
        client.post(f"{P}/placement/{MAC_C}/pin", {"vlan": 30}), "POST", "/placement/{mac}/pin"
    )
    assert res["placement"]["bridge"] == "hv1"


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{not json", 400, ["request body is not valid JSON"]),
        (b"\xff\xfe", 400, ["not UTF-8"]),
        (b"[1, 2]", 400, ["must be a JSON object, got list"]),
        (b"   ", 400, ["not valid JSON"]),
        ({}, 400, ["missing required field(s): uplink"]),
        ({"uplink": 5}, 400, ["uplink must be a non-empty string, got 5"]),
        ({"uplink": ""}, 400, ["uplink must be a non-empty string"]),
        ({"uplink": "hv1-eth2", "pin": "yes"}, 400, ["pin must be true or false, got 'yes'"]),
        ({"uplink": "hv1-eth2", "vlan": "0"}, 400, ["vlan must be an integer 0..4094"]),
        ({"uplink": "hv1-eth2", "vlan": 4095}, 400, ["0..4094"]),
        ({"uplink": "hv1-eth2", "vlan": True}, 400, ["vlan must be an integer"]),
        ({"uplink": "hv1-eth2", "colour": 1}, 400, ["unknown field(s) 'colour'"]),
        ({"uplink": "hv1-eth2", "dpid": "0xzz"}, 400, ["dpid '0xzz' is not a datapath id"]),
        ({"uplink": "hv1-eth2", "dpid": -1}, 400, ["not a datapath id"]),
        ({"uplink": "hv1-eth2", "dpid": 2**64}, 400, ["not a datapath id"]),
        ({"uplink": "hv1-eth2", "bridge": ["hv1"]}, 400, ["bridge must be a bridge name"]),
        ({"uplink": "hv1-eth2", "dpid": 9}, 404, ["no bridge with dpid 0000000000000009"]),
        ({"uplink": "hv1-eth2", "bridge": "hv9"}, 404, ["no bridge 'hv9'"]),
        ({"uplink": "hv1-eth2", "bridge": "hv1", "dpid": 2}, 400, ["disagree"]),
        ({"uplink": "hv1-eth2", "vlan": 99}, 404, ["not on VLAN 99", "bridge hv1 VLAN 0"]),
        (
            {"uplink": "hv1-eth9"},
            404,
            ["'hv1-eth9' is not an uplink of bridge hv1", "uplinks: hv1-eth1, hv1-eth2"],
        ),
        ({"uplink": "v12"}, 400, ["'v12' is not an uplink", "uplinks: hv1-eth1, hv1-eth2"]),
        ({"uplink": "hv2-eth1"}, 404, ["'hv2-eth1' is not an uplink of bridge hv1"]),
    ],
)
def test_move_bad_input(client, body, status, words):
    kw = {"raw": body} if isinstance(body, bytes) else {"body": body}
    resp = client.request("POST", f"{P}/placement/{MAC_A}/move", **kw)
    checked(resp, "POST", "/placement/{mac}/move", status)
    err(resp, status, *words)
    assert client.app.sent == []


def test_move_unknown_mac_bad_mac_dead_uplink_disconnected_bridge(client):
    err(
        client.post(f"{P}/placement/{UNKNOWN_MAC}/move", {"uplink": "hv1-eth1"}),
        404,
        f"MAC {UNKNOWN_MAC} is not known on any bridge",
    )
    err(
        client.post(f"{P}/placement/01:02/move", {"uplink": "hv1-eth1"}),
        400,
        "not a MAC address: '01:02'",
    )
    target = other_uplink(client)
    core = client.app.bridges[1]
    core.placement.port_by_name(target).live = False
    resp = client.post(f"{P}/placement/{MAC_A}/move", {"uplink": target})
    checked(resp, "POST", "/placement/{mac}/move", 409)
    err(resp, 409, f"uplink {target} is down")
    core.placement.port_by_name(target).live = True
    del client.app.datapaths[1]
    err(
        client.post(f"{P}/placement/{MAC_A}/move", {"uplink": target}),
        409,
        "bridge hv1 is not connected/synced",
    )
    assert client.app.sent == []


def test_pin_and_unpin_errors(client):
    for action in ("pin", "unpin"):
        resp = client.post(f"{P}/placement/{UNKNOWN_MAC}/{action}")
        checked(resp, "POST", f"/placement/{{mac}}/{action}", 404)
        err(resp, 404, "is not known on any bridge")
        err(
            client.post(f"{P}/placement/{MAC_A}/{action}", {"uplink": "x"}),
            400,
            "unknown field(s) 'uplink'",
        )
        err(client.post(f"{P}/placement/{MAC_B}/{action}"), 409, "several")


def test_core_errors_map_to_4xx_and_bugs_to_500(client, caplog):
    """The core's domain errors map to statuses in one place; any other exception from
    the core is a bug: a logged 500, never disguised as a 404."""

    def vanished(dpid, fn):
        raise NotFound("MAC 02:00:00:00:01:01 is not known on VLAN 0 of bridge hv1")

    client.app.act = vanished
    err(client.post(f"{P}/placement/{MAC_A}/pin"), 404, "is not known on VLAN 0")

    def refused(dpid, fn):
        raise Conflict("uplink hv1-eth2 is down: cannot move it there")

    client.app.act = refused
    err(client.post(f"{P}/placement/{MAC_A}/move", {"uplink": "hv1-eth2"}), 409, "is down")

    def bug(dpid, fn):
        raise KeyError("internal")

    client.app.act = bug
    err(client.post(f"{P}/placement/{MAC_A}/pin"), 500, "internal error")
    assert "KeyError" in caplog.text


def test_move_to_a_down_uplink_is_409_from_the_core(client):
    core = client.app.bridges[1]
    other = other_uplink(client)
    port = core.placement.port_by_name(other)
    core.port_status("modify", Port(port.port_no, other, live=False), 2000.0)
    err(
        client.post(f"{P}/placement/{MAC_A}/move", {"uplink": other}),
        409,
        f"uplink {other} is down",
    )


def test_rebalance(client):
    client.post(f"{P}/placement/{MAC_A}/move", {"uplink": other_uplink(client)})
    res = checked(client.post(f"{P}/rebalance"), "POST", "/rebalance")
    assert res["bridges"] == ["0000000000000001", "0000000000000002"]
    assert res["moves"][0]["dpid"] == "0000000000000001" and res["moves"][0]["type"] == "move"
    res = checked(client.post(f"{P}/rebalance", {"bridge": "hv2"}), "POST", "/rebalance")
    assert res == {"bridges": ["0000000000000002"], "moves": []}
    assert client.app.rebalance_calls == [None, 2]
    err(client.post(f"{P}/rebalance", {"bridge": "hv9"}), 404, "no bridge 'hv9'")
    err(client.post(f"{P}/rebalance", {"force": True}), 400, "unknown field(s) 'force'")
    del client.app.datapaths[2]
    err(client.post(f"{P}/rebalance", {"bridge": "hv2"}), 409, "not connected")


# ---- safe by default ----------------------------------------------------------------------

WRITES = [
    (f"{P}/placement/{MAC_A}/move", {"uplink": "hv1-eth2"}),
    (f"{P}/placement/{MAC_A}/pin", None),
    (f"{P}/placement/{MAC_A}/unpin", None),
    (f"{P}/rebalance", None),
]


@pytest.mark.parametrize("path, body", WRITES)
def test_token_required_for_writes_when_configured(path, body):
    client = Client(FakeApp(api_token="s3cret"))
    for header in (None, "Bearer wrong", "Basic s3cret", "Bearer", "bearer s3cret-and-more"):
        headers = {"Authorization": header} if header else {}
        resp = client.request("POST", path, body=body, headers=headers)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        err(resp, 401, "bearer token", "Authorization: Bearer")
    assert client.app.sent == [] and client.app.rebalance_calls == []
    # Auth comes before input checks: an unauthenticated caller learns nothing.
    err(client.post(f"{P}/placement/zz/move", {"x": 1}), 401, "missing bearer token")
    ok = client.request("POST", path, body=body, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_int == 200, ok.text
    ok = client.request("POST", path, body=body, headers={"Authorization": "bearer  s3cret "})
    assert ok.status_int == 200, ok.text
    # Reads need no token.
    assert client.get(f"{P}/placement").status_int == 200


@pytest.mark.parametrize("path, body", WRITES)
def test_read_only_refuses_writes(path, body):
    client = Client(FakeApp(api_read_only=True, api_token="t"), token="t")
    resp = client.post(path, body)
    checked(resp, "POST", path.replace(MAC_A, "{mac}").removeprefix(P), 403)
    err(resp, 403, "read-only", "api_read_only")
    assert client.app.sent == [] and client.app.rebalance_calls == []
    assert client.get(f"{P}/uplinks").status_int == 200


def test_body_too_large(client):
    resp = client.request("POST", f"{P}/rebalance", raw=b" " * (rest_input.MAX_BODY + 1))
    checked(resp, "POST", "/rebalance", 413)


# ---- fuzzing ------------------------------------------------------------------------------

FUZZ_APP = FakeApp()
SCHEMA = schemathesis.openapi.from_wsgi(f"{P}/openapi.json", wsgi_app(FUZZ_APP))


@SCHEMA.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis_finds_no_5xx_and_no_contract_violation(case):
    """Positive and negative cases for every operation; all default checks (no server
    error, documented status and content type, response schema, valid data accepted,
    invalid data rejected, unsupported methods answered 405)."""
    case.call_and_validate()


FUZZ_CLIENT = Client(FakeApp())
SEGMENTS = st.sampled_from(
    [
        "slb",
        "v1",
        "placement",
        "uplinks",
        "events",
        "move",
        "pin",
        "unpin",
        "rebalance",
        "bridges",
        "config",
        "health",
        "metrics",
        "openapi.json",
        MAC_A,
        MAC_B,
        MAC_C,
        "",
    ]
) | st.text(min_size=0, max_size=12)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
    segments=st.lists(SEGMENTS, min_size=0, max_size=5),
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3),
    body=st.one_of(
        st.none(),
        st.binary(max_size=64),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=8,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {},
            optional={
                "uplink": st.sampled_from(["hv1-eth1", "hv1-eth2", "hv2-eth1", "v11", "x"]),
                "pin": st.booleans(),
                "vlan": st.integers(-2, 5000),
                "bridge": st.sampled_from(["hv1", "hv2", "1", "0x2", "zz"]) | st.integers(),
                "dpid": st.integers(-1, 3) | st.text(max_size=5),
            },
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_raw_fuzz_never_5xx(method, segments, query, body):
    import urllib.parse

    path = "/" + "/".join(["slb", "v1"] + [urllib.parse.quote(s, safe="") for s in segments])
    if query:
        path += "?" + urllib.parse.urlencode(query)
    resp = FUZZ_CLIENT.request(method, path, raw=body)
    assert resp.status_int < 500, resp.text
    if resp.status_int >= 400 and method != "HEAD":
        body = json.loads(resp.text)
        assert set(body) == {"error", "status"} and body["status"] == resp.status_int


def test_drain_moves_macs_off_and_undrain_returns_the_uplink(client):
    core = client.app.bridges[1]
    on_eth1 = [e.key for e in core.placement.macs.values() if e.uplink == 1]
    res = checked(
        client.post(f"{P}/uplinks/hv1-eth1/drain", {"bridge": "hv1"}),
        "POST",
        "/uplinks/{name}/drain",
    )
    assert res["drained"] and res["changed"] and res["uplink"] == "hv1-eth1"
    assert sorted((m["mac"], m["vlan"]) for m in res["moves"]) == sorted(on_eth1)
    assert all(m["reason"] == "drain" and m["to"] == "hv1-eth2" for m in res["moves"])
    assert res["learning_packets"] == len(on_eth1)
    assert all(e.uplink == 2 for e in core.placement.macs.values())
    rows = {r["name"]: r for r in checked(client.get(f"{P}/uplinks?bridge=hv1"), "GET", "/uplinks")}
    assert rows["hv1-eth1"]["drained"] and not rows["hv1-eth1"]["usable"]
    assert rows["hv1-eth2"]["active"] and not rows["hv1-eth1"]["active"]
    health = checked(client.get(f"{P}/health"), "GET", "/health")
    assert health["bridges"]["0000000000000001"]["drained_uplinks"] == ["hv1-eth1"]
    assert health["status"] == "ok"  # maintenance is not a fault
    again = client.post(f"{P}/uplinks/hv1-eth1/drain", {"bridge": "hv1"})
    assert again.json["changed"] is False and again.json["moves"] == []
    err(client.post(f"{P}/uplinks/hv1-eth2/drain", {"bridge": "hv1"}), 409, "no usable uplink")
    err(client.post(f"{P}/placement/{MAC_A}/move", {"uplink": "hv1-eth1"}), 409, "drained")
    res = client.post(f"{P}/uplinks/hv1-eth1/undrain", {"bridge": "hv1"}).json
    assert not res["drained"] and res["changed"] and res["moves"] == []
    kinds = [e["type"] for e in client.app.event_log.events]
    assert kinds.index("uplink-drained") < kinds.index("uplink-undrained")


def test_drain_bad_input(client):
    err(client.post(f"{P}/uplinks/eth9/drain"), 404, "no uplink 'eth9'", "hv1-eth1")
    err(client.post(f"{P}/uplinks/v11/drain"), 404, "no uplink 'v11'")
    err(client.post(f"{P}/uplinks/hv1-eth1/drain", {"bridge": "hv2"}), 404, "on bridge hv2")
    err(client.post(f"{P}/uplinks/hv1-eth1/drain", {"force": 1}), 400, "unknown field(s)")
    err(client.get(f"{P}/uplinks/hv1-eth1/drain"), 405, "use POST")

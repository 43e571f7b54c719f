"""Every REST write attempt is logged with the client's address and the outcome, and
counted; refused ones at WARNING. Reads are not logged."""

from __future__ import annotations

import logging

from api_fake import MAC_A, Client, FakeApp
from webob import Request

P = "/slb/v1"


def audit_lines(caplog) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "slb_ryu.events" and ": rest-" in r.getMessage()
    ]


def test_accepted_and_refused_writes_are_logged_reads_are_not(caplog):
    caplog.set_level(logging.DEBUG, "slb_ryu.events")
    client = Client(FakeApp(api_token="s3cret"), token="s3cret")
    uplink = client.app.bridges[1].entry(MAC_A, 0).uplink
    target = "hv1-eth2" if uplink == 1 else "hv1-eth1"
    path = f"{P}/placement/{MAC_A}/pin"
    assert client.request("POST", path, headers={"X-Forwarded-For": "x"}).status_int == 200
    assert client.request("POST", f"{P}/rebalance", token="wrong").status_int == 401
    client.get(f"{P}/uplinks")
    move = client.post(f"{P}/placement/{MAC_A}/move", {"uplink": target})
    assert move.status_int == 200
    lines = audit_lines(caplog)
    assert lines[0] == (
        logging.INFO,
        f"controller: rest-write client=- forwarded_for=x method=POST path={path} status=200",
    )
    assert lines[1][0] == logging.WARNING
    assert lines[1][1].startswith("controller: rest-refused client=- method=POST")
    assert "status=401" in lines[1][1]
    assert lines[2][1].startswith(f'controller: rest-write body="{{"uplink": "{target}"}}"')
    assert len(lines) == 3  # the GET is not audited
    counters = client.app.event_log.counters
    assert (counters["rest-write"], counters["rest-refused"]) == (2, 1)
    assert not [e for e in client.app.event_log.events if e["type"].startswith("rest-")]


def test_the_peer_address_is_logged(caplog):
    caplog.set_level(logging.INFO, "slb_ryu.events")
    client = Client()
    req = Request.blank(f"{P}/placement/{MAC_A}/unpin", method="POST")
    req.remote_addr = "192.0.2.7"
    assert req.get_response(client.wsgi).status_int == 200
    (line,) = audit_lines(caplog)
    assert line[1].startswith("controller: rest-write client=192.0.2.7 method=POST"), line

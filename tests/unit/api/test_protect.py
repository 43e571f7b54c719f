"""REST request checks (Host, Content-Type, Origin) and the connection cap, without a server."""

import socket

import pytest

from slb_ryu.api import protect


def env(method="GET", host="127.0.0.1:8080", ctype=None, origin=None):
    e = {"REQUEST_METHOD": method, "PATH_INFO": "/slb/v1/health"}
    if host is not None:
        e["HTTP_HOST"] = host
    if ctype is not None:
        e["CONTENT_TYPE"] = ctype
    if origin is not None:
        e["HTTP_ORIGIN"] = origin
    return e


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:8080", "localhost", "LOCALHOST:8080", "[::1]:8080", "::1",
     "127.0.0.2:80", "10.1.2.3:8080"],
)  # fmt: skip
def test_loopback_and_the_configured_host_are_allowed(host):
    assert protect.refusal(env(host=host), "10.1.2.3") is None


@pytest.mark.parametrize("host", ["evil.test", "evil.test:8080", "10.9.9.9", "[fe80::1]:80"])
def test_foreign_hosts_are_refused_with_421(host):
    status, message = protect.refusal(env(host=host), "127.0.0.1")
    assert status == 421 and "DNS rebinding" in message


def test_a_wildcard_bind_accepts_ip_literals_but_not_foreign_names():
    assert protect.refusal(env(host="192.0.2.7:8080"), "0.0.0.0") is None
    assert protect.refusal(env(host="evil.test"), "0.0.0.0")[0] == 421


def test_no_host_header_passes():
    assert protect.refusal(env(host=None), "127.0.0.1") is None


@pytest.mark.parametrize("ctype", [None, "", "text/plain", "application/x-www-form-urlencoded"])
def test_writes_need_json_content_type(ctype):
    status, message = protect.refusal(env("POST", ctype=ctype), "127.0.0.1")
    assert status == 415 and "application/json" in message


def test_json_writes_pass_and_reads_need_no_content_type():
    assert protect.refusal(env("POST", ctype="application/json; charset=utf-8"), "") is None
    assert protect.refusal(env("GET"), "127.0.0.1") is None


@pytest.mark.parametrize("origin", ["http://evil.test", "null", "https://evil.test:8080"])
def test_cross_site_writes_are_refused_even_as_json(origin):
    assert protect.refusal(env("POST", ctype="application/json", origin=origin), "")[0] == 403


def test_same_origin_write_passes():
    e = env("POST", ctype="application/json", origin="http://127.0.0.1:8080")
    assert protect.refusal(e, "127.0.0.1") is None


def test_guard_answers_refusals_as_json_and_counts_them():
    calls, counted = [], []

    def app(environ, start_response):
        calls.append(environ)
        start_response("200 OK", [])
        return [b"ok"]

    guarded = protect.guard(app, "127.0.0.1", counted.append)
    statuses = []
    body = b"".join(guarded(env(host="evil.test"), lambda s, h: statuses.append(s)))
    assert statuses == ["421 Misdirected Request"] and b'"status": 421' in body
    assert counted == ["rest_refused_421"] and not calls
    assert b"".join(guarded(env(), lambda s, h: statuses.append(s))) == b"ok"


def test_capped_listener_closes_the_oldest_connection_beyond_the_cap():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    listener = protect.CappedListener(server, limit=2)
    clients = [socket.create_connection(server.getsockname()) for _ in range(3)]
    accepted = [listener.accept()[0] for _ in range(3)]
    try:
        assert listener.evicted == 1 and len(listener.open) == 2
        clients[0].settimeout(2)
        assert clients[0].recv(1) == b""  # the oldest was shut down
        accepted[1].close()
        extra = socket.create_connection(server.getsockname())
        accepted.append(listener.accept()[0])  # a closed one frees its slot: no eviction
        assert listener.evicted == 1
        extra.close()
    finally:
        for s in clients + accepted + [server]:
            s.close()

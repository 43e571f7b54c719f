"""The REST server cannot be used against the operator: request checks and connection limits.

Ryu's `hub.WSGIServer` calls `eventlet.wsgi.server(sock, app, log)`: no socket
timeout, a pool of 1,024 green threads, and `pool.spawn` blocks once they are taken,
so 1,100 idle TCP connections stop the REST API and /metrics for as long as they are
held. `install()` replaces the `serve_forever` of Ryu's WSGI server class with one
that:

- closes a connection idle or stalled for `SOCKET_TIMEOUT` seconds (each socket
  operation, and the keep-alive wait between requests);
- keeps at most `MAX_CONNECTIONS` open: accepting one more closes the oldest first
  (a legitimate request is short; whoever holds a connection longest goes), so new
  requests are always accepted, never queued behind a full pool;
- wraps the application in `guard`: every request's `Host` must be a loopback name
  or the configured `wsapi_host` (DNS rebinding: 421), every write (POST, PUT, PATCH,
  DELETE) needs `Content-Type: application/json` (a cross-site form or `text/plain`
  POST cannot set it without a CORS preflight, which we never grant: 415), and a
  write with a foreign `Origin` is refused (403).

docs/security.md describes the threat model and these defaults.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

LOG = logging.getLogger("slb_ryu.protect")

SOCKET_TIMEOUT = 10.0  # seconds a REST connection may stay idle or stalled
MAX_CONNECTIONS = 256  # open REST connections at most; one more closes the oldest
BACKLOG = 1024  # pending connections the kernel queues before our accept loop takes them
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]
_counter: list[Callable[[str], None]] = []  # the app's EventLog.count, once it exists


def count_with(counter: Callable[[str], None]) -> None:
    """Count refusals with `counter` (the app passes its EventLog.count)."""
    _counter[:] = [counter]


def _count(name: str) -> None:
    for counter in _counter:
        counter(name)


# ---- request checks (pure) ---------------------------------------------------------------


def host_name(value: str) -> str:
    """The host part of a `Host` header value: lower case, no port, no IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a bare IPv6 literal, or a name without port


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def host_allowed(host: str, wsapi_host: str) -> bool:
    """Loopback names and addresses, and the address the REST server is bound to.

    Bound to a wildcard (0.0.0.0 / ::), any IP literal and this machine's own names
    are accepted too: a DNS-rebinding attack always carries the attacker's domain name.
    """
    name = host_name(host)
    bound = host_name(wsapi_host or "")
    ip = _ip(name)
    if name in LOOPBACK_NAMES or (ip is not None and ip.is_loopback) or name == bound:
        return True
    if bound in WILDCARDS:
        return ip is not None or name in {socket.gethostname().lower(), socket.getfqdn().lower()}
    return False


def refusal(environ: dict, wsapi_host: str) -> tuple[int, str] | None:
    """(status, message) when the request must be refused, None when it may pass."""
    method = environ.get("REQUEST_METHOD", "GET").upper()
    host = environ.get("HTTP_HOST")
    if host is not None and not host_allowed(host, wsapi_host):
        return 421, (
            f"Host {host!r} is not served here: use 127.0.0.1, localhost or the configured "
            "wsapi_host (foreign names are refused against DNS rebinding)"
        )
    if method not in WRITE_METHODS:
        return None
    origin = environ.get("HTTP_ORIGIN")
    if origin and origin != "null":
        origin_host = urlsplit(origin).netloc
        if not origin_host or not host_allowed(origin_host, wsapi_host):
            return 403, f"cross-site write refused (Origin {origin!r})"
    elif origin == "null":
        return 403, "cross-site write refused (Origin null)"
    ctype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        return 415, (
            f"writes need 'Content-Type: application/json' (got {ctype or 'none'!r}); "
            "send a JSON body, '{}' when there is nothing to say"
        )
    return None


def guard(app: WsgiApp, wsapi_host: str, counter: Callable[[str], None] | None = None) -> WsgiApp:
    """WSGI middleware applying `refusal` to every request; refusals are JSON errors."""

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        refused = refusal(environ, wsapi_host)
        if refused is None:
            return app(environ, start_response)
        status, message = refused
        if counter is not None:
            counter(f"rest_refused_{status}")
        LOG.warning(
            "REST %s %s refused (%d): %s",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            status,
            message,
        )
        body = json.dumps({"error": message, "status": status}).encode()
        reason = {403: "Forbidden", 415: "Unsupported Media Type", 421: "Misdirected Request"}
        start_response(
            f"{status} {reason[status]}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return guarded


# ---- connection cap ----------------------------------------------------------------------


class CappedListener:
    """A listening socket whose `accept` keeps at most `limit` connections open.

    eventlet.wsgi.server only calls accept(), getsockname() and close() on it.
    """

    def __init__(self, sock: Any, limit: int = MAX_CONNECTIONS) -> None:
        self.sock = sock
        self.limit = limit
        self.open: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.evicted = 0

    def accept(self) -> tuple[Any, Any]:
        conn, addr = self.sock.accept()
        for key in [k for k, c in self.open.items() if _closed(c)]:
            del self.open[key]
        while len(self.open) >= self.limit:
            _, oldest = self.open.popitem(last=False)
            self.evicted += 1
            try:
                oldest.shutdown(socket.SHUT_RDWR)  # wakes its reader with EOF
            except OSError:
                pass
        self.open[id(conn)] = conn
        return conn, addr

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _closed(conn: Any) -> bool:
    try:
        return conn.fileno() < 0
    except OSError:
        return True


def install(conf: Any) -> None:
    """Make Ryu's WSGI server use `guard`, socket timeouts and `CappedListener`."""
    import eventlet.wsgi
    from ryu.app import wsgi as ryu_wsgi
    from ryu.lib import hub

    def serve_forever(self: Any) -> None:
        host = str(getattr(conf, "wsapi_host", "127.0.0.1") or "")
        app = guard(self.handle, host, _count)
        try:  # Ryu listens with eventlet's backlog of 50: a burst of connects overflows it
            self.server.listen(BACKLOG)
        except OSError:
            pass
        eventlet.wsgi.server(
            CappedListener(self.server, MAX_CONNECTIONS),
            app,
            log=hub.LoggingWrapper(),  # as Ryu's own serve_forever
            max_size=MAX_CONNECTIONS + 64,  # never blocks: the listener caps first
            socket_timeout=SOCKET_TIMEOUT,
            keepalive=SOCKET_TIMEOUT,
        )

    ryu_wsgi.WSGIServer.serve_forever = serve_forever

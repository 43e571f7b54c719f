"""Ryu's OpenFlow listener, made safe: loopback by default, and TLS that keeps working.

Ryu 4.34 listens on 0.0.0.0, so anyone who can reach the host can claim to be a
bridge. `listen_on_loopback` makes 127.0.0.1 the default (`--ofp-listen-host` or
`ofp_listen_host` in [DEFAULT] still choose another address).

Ryu 4.34's TLS server (`hub.StreamServer` with an `ssl_ctx`) pops the certificate
arguments from a shared dict on the *first* connection: every later connection is
wrapped without a certificate and fails ("no shared cipher"), so a bridge that ever
reconnects, or a stray plain-TCP probe before it, leaves TLS dead until a restart.
`fix_tls_server` builds one server context up front (TLS 1.2 minimum, client
certificates required when `--ca-certs` is given) and wraps every connection with it,
bounded by a handshake timeout.
"""

from __future__ import annotations

import logging
from typing import Any

LOG = logging.getLogger("slb_ryu.listener")
LISTEN_HOST = "127.0.0.1"
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds a client has to complete the TLS handshake


def listen_on_loopback(conf: Any) -> None:
    """Make Ryu's OpenFlow listener default to loopback (Ryu's own default is 0.0.0.0)."""
    try:
        conf.set_default("ofp_listen_host", LISTEN_HOST)
    except Exception:  # noqa: BLE001 - oslo NoSuchOptError: Ryu's controller not imported
        LOG.warning("cannot set the default OpenFlow listen host to %s", LISTEN_HOST)


def tls_context(cert: str, key: str, ca_certs: str | None) -> Any:
    """The server context for every OpenFlow TLS connection."""
    import ssl  # eventlet's green ssl once ryu-manager has monkey-patched

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca_certs:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(ca_certs)
    return ctx


def fix_tls_server(conf: Any) -> None:
    """Replace Ryu's OpenFlow server loop when TLS is configured (see module doc)."""
    from ryu.controller import controller
    from ryu.lib import hub

    original = controller.OpenFlowController.server_loop

    def server_loop(self: Any, tcp_port: int, ssl_port: int) -> None:
        if conf.ctl_privkey is None or conf.ctl_cert is None:
            return original(self, tcp_port, ssl_port)
        ctx = tls_context(conf.ctl_cert, conf.ctl_privkey, conf.ca_certs)
        if not conf.ca_certs:
            LOG.warning("OpenFlow TLS without --ca-certs: any client certificate is accepted")

        def handle(sock: Any, addr: Any) -> None:
            sock.settimeout(TLS_HANDSHAKE_TIMEOUT)
            try:
                tls = ctx.wrap_socket(sock, server_side=True)
            except OSError as exc:  # ssl.SSLError is an OSError
                LOG.warning("OpenFlow TLS handshake from %s failed: %s", addr, exc)
                sock.close()
                return
            controller.datapath_connection_factory(tls, addr)

        hub.StreamServer((conf.ofp_listen_host, ssl_port), handle).serve_forever()

    controller.OpenFlowController.server_loop = server_loop

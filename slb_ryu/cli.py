"""slb-ctl: the operator's command line for a running slb-ryu controller (its REST API).

    slb-ctl uplinks                         uplinks per bridge (like ovs-appctl bond/show)
    slb-ctl placement [--uplink X] [--mac M] [--bridge B] [--vlan V]
    slb-ctl move MAC UPLINK [--pin] [--vlan V] [--bridge B]
    slb-ctl pin MAC | unpin MAC [--vlan V] [--bridge B]
    slb-ctl rebalance [--bridge B]
    slb-ctl drain UPLINK | undrain UPLINK [--bridge B]
    slb-ctl events [--follow] [--since N] [--limit N] [--type T]
    slb-ctl bridges | health | config
    slb-ctl --version

An uplink is usable when it is up and not out of service (OUT): OVS-style flap damping
holds an uplink that keeps bouncing ("held") for [slb] flap_hold seconds after it
settles; `drain` takes one out for maintenance ("drained") until `undrain`.

Readable tables by default, `--json` for scripts. The controller is `--url` or $SLB_URL
(default http://127.0.0.1:8080), the token for write commands `--token` or $SLB_TOKEN.

Exit status: 0 ok, 1 the controller refused (its message is shown), 2 usage error,
3 the controller cannot be reached (or did not answer with JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO

from slb_ryu import __version__

DEFAULT_URL = "http://127.0.0.1:8080"
API = "/slb/v1"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class CtlError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ---- HTTP ------------------------------------------------------------------------------


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """(status, parsed JSON, or the text when it is not JSON); 4xx/5xx are returned, not
    raised. Unreachable servers raise OSError (urllib's URLError is one)."""
    headers = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, params: dict | None = None, body: Any = None) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.url + API + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {}
        if self.token and method != "GET":
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            status, payload = http_json(method, url, body, headers, self.timeout)
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            raise CtlError(
                f"cannot reach the slb-ryu controller at {self.url}: {reason} "
                "(is ryu-manager running? set --url or $SLB_URL)",
                EXIT_UNREACHABLE,
            ) from None
        if status >= 400:
            if isinstance(payload, dict) and "error" in payload:
                message = payload["error"]
            else:
                message = str(payload or "").strip()[:200] or f"HTTP {status}"
            hint = " (give the token with --token or $SLB_TOKEN)" if status == 401 else ""
            raise CtlError(f"{method} {path}: HTTP {status}: {message}{hint}", EXIT_REFUSED)
        if isinstance(payload, str):
            raise CtlError(
                f"{url} did not answer with JSON (is this an slb-ryu controller?)",
                EXIT_UNREACHABLE,
            )
        return payload


# ---- formatting ------------------------------------------------------------------------


def human_rate(bytes_per_s: float) -> str:
    """Bytes/s as bits/s with a unit, like link speeds are quoted."""
    bits = float(bytes_per_s) * 8
    for unit, scale in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bits >= scale:
            return f"{bits / scale:.1f} {unit}"
    return f"{bits:.0f} b/s"


def human_speed(bits_per_s: int) -> str:
    if not bits_per_s:
        return "?"
    for unit, scale in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bits_per_s >= scale:
            value = bits_per_s / scale
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{bits_per_s} b/s"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def human_age(since: float, now: float | None = None) -> str:
    seconds = max(0, int((now if now is not None else time.time()) - since))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def format_uplinks(rows: list[dict]) -> str:
    if not rows:
        return "no bridges connected yet"
    out = []
    for bridge, dpid in dict.fromkeys((r["bridge"], r["dpid"]) for r in rows):
        ups = [r for r in rows if r["dpid"] == dpid]
        out.append(f"---- {bridge} (dpid {dpid}) ----")
        out.append(
            table(
                [
                    "UPLINK",
                    "PORT",
                    "STATE",
                    "PATH",
                    "OUT",
                    "USABLE",
                    "ACTIVE",
                    "SPEED",
                    "MACS",
                    "TX LOAD",
                    "RX LOAD",
                    "TX BYTES",
                    "RX BYTES",
                    "LAST REPLY",
                ],
                [
                    [
                        r["name"],
                        r["port_no"],
                        "up" if r["live"] else "DOWN",
                        {"dead": "DEAD"}.get(r.get("path", "off"), r.get("path", "off")),
                        "drained" if r.get("drained") else "held" if r.get("held") else "",
                        "yes" if r.get("usable", r["live"]) else "NO",
                        "active" if r["active"] else "",
                        human_speed(r.get("speed_bps", 0)),
                        r["macs"],
                        human_rate(r.get("tx_bytes_per_s", r.get("tx_bps", 0))),
                        human_rate(r.get("rx_bytes_per_s", r.get("rx_bps", 0))),
                        human_bytes(r.get("tx_bytes", 0)),
                        human_bytes(r.get("rx_bytes", 0)),
                        # Path probing: age of the last probe reply through it.
                        human_age(r["last_reply"]) + " ago" if r.get("last_reply") else "",
                    ]
                    for r in ups
                ],
            )
        )
        nxt = ups[0].get("next_rebalance_in_s")
        out.append("next rebalance: " + ("off" if nxt is None else f"in {nxt:.0f} s"))
        out.append("")
    return "\n".join(out).rstrip()


def format_placement(rows: list[dict], now: float | None = None) -> str:
    if not rows:
        return "no MACs placed (match)"
    return table(
        ["BRIDGE", "MAC", "VLAN", "PORT", "UPLINK", "PINNED", "TX LOAD", "RX LOAD", "SINCE", "IPS"],
        [
            [
                r["bridge"] or r["dpid"],
                r["mac"],
                r["vlan"],
                r["port"],
                r["uplink"],
                "pinned" if r.get("pinned") else "",
                human_rate(r.get("tx_bps", 0)),
                human_rate(r.get("rx_bps", 0)),
                human_age(r["since"], now) if r.get("since") else "",
                ",".join(r.get("ips") or []),
            ]
            for r in rows
        ],
    )


def format_event(event: dict) -> str:
    """One line: seq, local time, type, bridge, MAC/VLAN, from -> to (reason), the rest."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.get("time", 0)))
    rest = {k: v for k, v in event.items() if k not in ("seq", "time", "type", "dpid")}
    parts = [str(rest.pop("bridge", event.get("dpid", "")))]
    if "mac" in rest:
        parts.append(f"{rest.pop('mac')} vlan {rest.pop('vlan', 0)}")
    if "from" in rest or "to" in rest:
        parts.append(f"{rest.pop('from', None) or '-'} -> {rest.pop('to', None) or '-'}")
    reason = rest.pop("reason", None)
    if reason and reason != event.get("type"):
        parts.append(f"({reason})")
    parts += [f"{key}={rest[key]}" for key in sorted(rest)]
    return f"{event.get('seq', ''):>6} {when} {event.get('type', '?'):<17} " + " ".join(parts)


def format_bridges(rows: list[dict]) -> str:
    if not rows:
        return "no bridges connected yet"
    return table(
        ["BRIDGE", "DPID", "CONNECTED", "SYNCED", "UPLINKS", "ACTIVE", "MACS"],
        [
            [
                r["name"],
                r["dpid"],
                "yes" if r["connected"] else "NO",
                "yes" if r["synced"] else "no",
                ",".join(
                    u if u in r.get("live_uplinks", r["uplinks"]) else f"{u}(down)"
                    for u in r["uplinks"]
                ),
                r.get("active_uplink") or "-",
                r["macs"],
            ]
            for r in rows
        ],
    )


def format_health(h: dict) -> str:
    lines = [f"status: {h['status']}  (slb-ryu {h.get('version', '?')}, up {h.get('uptime_s')}s)"]
    lines += [f"  problem: {p}" for p in h.get("problems", [])]
    for dpid, b in sorted(h.get("bridges", {}).items()):
        lines.append(
            f"  {b.get('name') or dpid} ({dpid}): connected={b['connected']} synced={b['synced']}"
            f" live uplinks {b['live_uplinks']}/{b['uplinks']}"
        )
    counters = h.get("counters", {})
    if counters:
        lines.append("  counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    return "\n".join(lines)


def format_move(result: dict) -> str:
    row = result["placement"]
    pinned = " (pinned)" if row.get("pinned") else ""
    if not result["moved"]:
        return f"{row['mac']} vlan {row['vlan']} already on {row['uplink']}{pinned}"
    return (
        f"moved {row['mac']} vlan {row['vlan']} on {row['bridge']}: {result['from']} -> "
        f"{result['to']}{pinned}; {result['learning_packets']} learning packet(s) sent"
    )


def format_pin(result: dict) -> str:
    row = result["placement"]
    state = "pinned to" if result["pinned"] else "unpinned, on"
    note = "" if result["changed"] else " (unchanged)"
    return f"{row['mac']} vlan {row['vlan']} on {row['bridge']}: {state} {row['uplink']}{note}"


def format_drain(result: dict) -> str:
    state = "drained" if result["drained"] else "in service"
    head = f"{result['uplink']} on {result['bridge'] or result['dpid']}: {state}"
    if not result["changed"]:
        return head + " (it already was)"
    lines = [head + f", {len(result['moves'])} MAC(s) moved"]
    lines += [format_event(m) for m in result["moves"]]
    if not result["drained"]:
        lines.append("it takes load back at the next rebalance")
    return "\n".join(lines)


def format_rebalance(result: dict) -> str:
    moves = result.get("moves", [])
    if not moves:
        return f"rebalance on {', '.join(result.get('bridges', [])) or 'no bridge'}: no moves"
    lines = [f"rebalance: {len(moves)} move(s)"]
    lines += [format_event(m) for m in moves]
    return "\n".join(lines)


# ---- commands --------------------------------------------------------------------------


def selector(args: argparse.Namespace) -> dict:
    body: dict[str, Any] = {}
    if getattr(args, "vlan", None) is not None:
        body["vlan"] = args.vlan
    if getattr(args, "bridge", None) is not None:
        body["bridge"] = args.bridge
    return body


def emit(args: argparse.Namespace, out: TextIO, data: Any, text: str) -> None:
    if args.json:
        out.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    else:
        out.write(text + "\n")


def run(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    cmd = args.command
    if cmd == "uplinks":
        rows = client.call("GET", "/uplinks", {"bridge": args.bridge})
        emit(args, out, rows, format_uplinks(rows))
    elif cmd == "placement":
        params = {"uplink": args.uplink, "mac": args.mac, "bridge": args.bridge, "vlan": args.vlan}
        rows = client.call("GET", "/placement", params)
        emit(args, out, rows, format_placement(rows))
    elif cmd == "bridges":
        rows = client.call("GET", "/bridges")
        emit(args, out, rows, format_bridges(rows))
    elif cmd == "health":
        data = client.call("GET", "/health")
        emit(args, out, data, format_health(data))
    elif cmd == "config":
        data = client.call("GET", "/config")
        text = "\n".join(f"{k} = {json.dumps(v)}" for k, v in sorted(data.items()))
        emit(args, out, data, text)
    elif cmd == "move":
        body = {"uplink": args.uplink, **selector(args)}
        if args.pin:
            body["pin"] = True
        result = client.call("POST", f"/placement/{_quote(args.mac)}/move", body=body)
        emit(args, out, result, format_move(result))
    elif cmd in ("pin", "unpin"):
        result = client.call("POST", f"/placement/{_quote(args.mac)}/{cmd}", body=selector(args))
        emit(args, out, result, format_pin(result))
    elif cmd == "rebalance":
        result = client.call("POST", "/rebalance", body=selector(args))
        emit(args, out, result, format_rebalance(result))
    elif cmd in ("drain", "undrain"):
        path = f"/uplinks/{_quote(args.uplink)}/{cmd}"
        result = client.call("POST", path, body=selector(args))
        emit(args, out, result, format_drain(result))
    elif cmd == "events":
        return run_events(args, client, out)
    return EXIT_OK


def run_events(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    params = {"since": args.since, "limit": args.limit, "type": args.type}
    events = client.call("GET", "/events", params)
    if args.json and not args.follow:
        emit(args, out, events, "")
        return EXIT_OK
    last = args.since or 0

    def show(batch: list[dict]) -> None:
        for event in batch:
            out.write((json.dumps(event, sort_keys=True) if args.json else format_event(event)))
            out.write("\n")
        out.flush()

    show(events)
    if events:
        last = max(last, max(e.get("seq", 0) for e in events))
    if not args.follow:
        if not events and not args.json:
            out.write("no events\n")
        return EXIT_OK
    polls = 0
    try:
        while args.max_polls is None or polls < args.max_polls:
            time.sleep(args.interval)
            polls += 1
            batch = client.call("GET", "/events", {"since": last, "type": args.type})
            show(batch)
            if batch:
                last = max(last, max(e.get("seq", 0) for e in batch))
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _quote(mac: str) -> str:
    return urllib.parse.quote(mac, safe="")


# ---- argument parsing ------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slb-ctl",
        description="See and steer an slb-ryu controller over its REST API.",
        epilog="exit status: 0 ok, 1 refused by the controller, 2 usage, 3 unreachable",
    )
    p.add_argument(
        "--url",
        default=os.environ.get("SLB_URL", DEFAULT_URL),
        help="controller REST address (default $SLB_URL or %(default)s)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SLB_TOKEN"),
        help="bearer token for write commands (default $SLB_TOKEN)",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of tables")
    p.add_argument("--version", action="version", version=f"slb-ctl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def vlan_bridge(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--vlan", type=int, help="VLAN (when the MAC is on several)")
        sp.add_argument("--bridge", help="bridge name or dpid (when the MAC is on several)")

    sp = sub.add_parser("uplinks", help="uplinks: state, speed, load, MACs (like bond/show)")
    sp.add_argument("--bridge", help="only this bridge (name or dpid)")
    sp = sub.add_parser("placement", help="which uplink each (MAC, VLAN) uses")
    sp.add_argument("--uplink", help="only MACs on this uplink")
    sp.add_argument("--mac", help="only this MAC")
    sp.add_argument("--bridge", help="only this bridge (name or dpid)")
    sp.add_argument("--vlan", type=int, help="only this VLAN")
    sub.add_parser("bridges", help="managed bridges and their connection state")
    sub.add_parser("health", help="controller health")
    sub.add_parser("config", help="effective configuration")
    sp = sub.add_parser("move", help="move a MAC to an uplink (learning packets follow)")
    sp.add_argument("mac")
    sp.add_argument("uplink")
    sp.add_argument("--pin", action="store_true", help="pin it there (the rebalancer leaves it)")
    vlan_bridge(sp)
    sp = sub.add_parser("pin", help="pin a MAC to the uplink it is on")
    sp.add_argument("mac")
    vlan_bridge(sp)
    sp = sub.add_parser("unpin", help="let the rebalancer move a MAC again")
    sp.add_argument("mac")
    vlan_bridge(sp)
    sp = sub.add_parser(
        "drain", help="take an uplink out of service for maintenance (its MACs move off)"
    )
    sp.add_argument("uplink")
    sp.add_argument("--bridge", help="bridge name or dpid (when the name is on several)")
    sp = sub.add_parser("undrain", help="return a drained uplink to service")
    sp.add_argument("uplink")
    sp.add_argument("--bridge", help="bridge name or dpid (when the name is on several)")
    sp = sub.add_parser("rebalance", help="rebalance now")
    sp.add_argument("--bridge", help="only this bridge (name or dpid)")
    sp = sub.add_parser("events", help="recent events (moves, failovers, learning packets ...)")
    sp.add_argument("--since", type=int, help="only events after this sequence number")
    sp.add_argument("--limit", type=int, help="at most this many")
    sp.add_argument("--type", help="only these types, comma-separated (e.g. move,uplink-down)")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    sp.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls with --follow"
    )
    sp.add_argument("--max-polls", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    client = Client(args.url, args.token, args.timeout)
    try:
        return run(args, client, out)
    except CtlError as exc:
        print(f"slb-ctl: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Per-uplink counts and loads are kept incrementally; they must always equal a recount.

A hypothesis test drives random sequences of everything that can change a MAC's uplink
or load (learn, forget, move, stats, link down/up, port delete, recovery, direct field
writes as rebalance or REST do) and compares the tallies with a full scan after each
step; it also checks that the O(uplinks) `choose_uplink` picks what the former full-scan
version picked.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from slb_ryu.core.placement import (
    LOAD_UNITS,
    OFPP_LOCAL,
    BridgePlacement,
    MacEntry,
    Port,
    load_units,
)

UPLINKS = (1, 2, 3)
LOCALS = (4, 5, 6)


def fresh(speeds: dict[int, int]) -> BridgePlacement:
    bp = BridgePlacement(1, ["u*"])
    ports = [Port(OFPP_LOCAL, "br")]
    ports += [Port(u, f"u{u}", speed_bps=speeds.get(u, 0)) for u in UPLINKS]
    ports += [Port(p, f"vm{p}") for p in LOCALS]
    bp.set_ports(ports, now=0.0)
    return bp


def scan_choose(bp: BridgePlacement, exclude: int | None = None) -> int | None:
    """The former choose_uplink: a scan of every MAC per call (the reference), with the
    loads summed in the same integer units (the one intended difference)."""
    candidates = [p for p in bp.usable_uplinks if p.port_no != exclude]
    if not candidates:
        return None
    counts = {p.port_no: 0 for p in candidates}
    loads = {p.port_no: 0 for p in candidates}
    for entry in bp.macs.values():
        if entry.uplink in counts:
            counts[entry.uplink] += 1
            loads[entry.uplink] += load_units(entry)

    def weight(p: Port) -> float:
        return float(p.speed_bps) if p.speed_bps > 0 else 1.0

    return min(
        candidates,
        key=lambda p: (
            loads[p.port_no] / LOAD_UNITS / weight(p),
            counts[p.port_no] / weight(p),
            p.port_no,
        ),
    ).port_no


def check(bp: BridgePlacement) -> None:
    assert bp.tallies() == bp.recount()
    counts, loads = bp.recount()
    for uplink in UPLINKS:
        assert bp.mac_count(uplink) == counts.get(uplink, 0)
        assert bp.uplink_load(uplink) == loads.get(uplink, 0) / LOAD_UNITS
        assert [e.uplink for e in bp.macs_on(uplink)] == [uplink] * bp.mac_count(uplink)


MACS = st.integers(0, 11)
LOAD = st.sampled_from([0.0, 1.0, 1500.0, 1e6, 1e9, 0.1, 0.0004, 1e15 / 3, float("nan")])
OPS = st.one_of(
    st.tuples(st.just("learn"), MACS, st.sampled_from([0, 10]), st.sampled_from(LOCALS)),
    st.tuples(st.just("forget"), MACS),
    st.tuples(st.just("move"), MACS, st.sampled_from(UPLINKS)),
    st.tuples(st.just("load"), MACS, LOAD, LOAD),
    st.tuples(st.just("assign"), MACS, st.sampled_from(UPLINKS + (9,))),
    st.tuples(st.just("link"), st.sampled_from(UPLINKS), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from(LOCALS + UPLINKS)),
    st.tuples(st.just("recover"), MACS, st.sampled_from(LOCALS), st.sampled_from(UPLINKS)),
    st.tuples(st.just("reconnect"), st.just(0)),
)


def mac(i: int) -> str:
    return f"02:00:00:00:00:{i:02x}"


def some_entry(bp: BridgePlacement, i: int) -> MacEntry | None:
    keys = sorted(bp.macs)
    return bp.macs[keys[i % len(keys)]] if keys else None


def apply(bp: BridgePlacement, op: tuple, now: float) -> None:
    kind = op[0]
    if kind == "learn":
        bp.learn(mac(op[1]), op[2], op[3], now)
    elif kind == "forget":
        entry = some_entry(bp, op[1])
        if entry is not None:
            bp.forget(entry.mac, entry.vlan)
    elif kind == "move":
        entry = some_entry(bp, op[1])
        if entry is not None and bp.ports.get(op[2]) is not None and bp.ports[op[2]].usable:
            bp.move(entry.mac, entry.vlan, op[2], now, "manual")
    elif kind == "load":
        entry = some_entry(bp, op[1])
        if entry is not None:
            entry.tx_bps, entry.rx_bps = op[2], op[3]
    elif kind == "assign":  # what a caller outside placement may do (rebalance, tests)
        entry = some_entry(bp, op[1])
        if entry is not None:
            entry.uplink = op[2]
    elif kind == "link":
        port = bp.ports.get(op[1])
        name = f"u{op[1]}"
        bp.update_port(Port(op[1], name, live=op[2], speed_bps=port.speed_bps if port else 0), now)
    elif kind == "delete":
        bp.delete_port(op[1], now)
    elif kind == "recover":
        bp.recover([MacEntry(mac(op[1]), 0, op[2], op[3], since=now, tx_bps=7.0)])
    elif kind == "reconnect":
        bp.set_ports(list(bp.ports.values()), now)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(OPS, max_size=60), speeds=st.sampled_from([{}, {1: 10, 2: 1, 3: 1}]))
def test_incremental_tallies_equal_a_recount(ops, speeds):
    bp = fresh(speeds)
    for step, op in enumerate(ops):
        apply(bp, op, float(step))
        check(bp)
        assert bp.choose_uplink() == scan_choose(bp)
        assert bp.choose_uplink(exclude=1) == scan_choose(bp, exclude=1)


def test_forgotten_entry_no_longer_touches_the_tallies():
    bp = fresh({})
    bp.learn(mac(1), 0, 4, 0.0)
    entry = bp.macs[(mac(1), 0)]
    bp.forget(mac(1), 0)
    entry.tx_bps, entry.uplink = 5.0, 2
    assert bp.tallies() == ({}, {})


def test_failover_visits_only_the_dead_uplinks_macs_heaviest_first():
    bp = fresh({})
    for i in range(6):
        bp.learn(mac(i), 0, 4, 0.0)
    on1 = bp.macs_on(1)
    for load, entry in zip((10.0, 30.0, 20.0), on1, strict=False):
        entry.tx_bps = load
    moves = bp.update_port(Port(1, "u1", live=False), 1.0)
    assert [m.mac for m in moves] == [e.mac for e in sorted(on1, key=lambda e: -e.tx_bps)]
    assert bp.mac_count(1) == 0 and bp.mac_count(2) + bp.mac_count(3) == 6
    check(bp)

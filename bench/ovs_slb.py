"""A faithful re-implementation of Open vSwitch's balance-slb rebalancing, for comparison.

Modelled on Open vSwitch as shipped today: ofproto/bond.c at tag v3.1.0 (Debian 12's OVS;
`git show v3.1.0:ofproto/bond.c`), whose rebalancing dates from commit 298d4151f
("bond: Fix broken rebalancing after link state changes", Ilya Maximets, July 2021,
first released in v2.16.0 and unchanged since). Line numbers below are v3.1.0's.

- Buckets. `hash_mac(dl_src, vlan, basis) & BOND_MASK` (l. 1957/1964, BOND_MASK = 0xff)
  picks one of 256 `bond_entry`s; buckets, not MACs, are assigned to members, so two MACs
  in one bucket always share a member. A bucket with no member gets one on first lookup
  from `get_enabled_member()`: round robin over the enabled members.
- Load. `bond_account()` adds the *transmitted* bytes of a flow to its bucket's
  `tx_bytes`. Received traffic and link speed are not considered.
- `bond_rebalance()` (l. 1330-1438), once per rebalance interval:
  * all 256 buckets are sorted by tx_bytes, descending (`qsort(hashes, ...,
    compare_bond_entries)`, l. 1361; glibc's qsort is a merge sort, so ties keep bucket
    order), then pushed onto their member's `entries` list when tx_bytes != 0: each
    member's list is heaviest first;
  * enabled members go into `bals` in descending tx_bytes (`insert_bal`, l. 1286: inserted
    before the first member it strictly exceeds);
  * loop while `bals` has >= 2 members: from = front, to = back;
    `if (overload < to->tx_bytes >> 5 || overload < 100000) break;` (l. 1393);
  * `choose_entries_to_migrate(from, to->tx_bytes, hashes)` (l. 1223-1282): 0 if `from`
    has <= 1 entry (l. 1238); else with `ideal_delta = (from + to) / 2 - to` and
    `migration_threshold = ideal_delta / 10` (l. 1235), walk the sorted entries taking
    every one with `delta + e->tx_bytes <= ideal_delta` (l. 1245, greedy fill of the
    midpoint, heaviest first) and stop once `ideal_delta - delta < migration_threshold`
    (l. 1250). Nothing fits: take the lightest entry alone (`ovs_list_back`, l. 1262).
    Commit only if `new_low = MIN(from - delta, to + delta)` satisfies `new_low > to &&
    new_low - to >= migration_threshold` (l. 1269);
  * found: every chosen entry is shifted (`bond_shift_load`), removed from `from`'s list
    (never added to `to`'s: a bucket moves at most once per run), and both members are
    re-sorted. Not found: `from` leaves `bals`;
  * finally every bucket's tx_bytes is halved (l. 1432): an EWMA with weight 1/2 per run.

History (labelled row only): before 2.16, `choose_entry_to_migrate()` took the *first*
single entry of an unsorted list that improved the pair by >= 10% of the ideal delta
(`OvsSlbBond(..., legacy=True)`). 298d4151f replaced it because a returning member never
got load back once the buckets were many and small.

Hash: OVS's `hash_mac()` (lib/packets.h l. 331) = `hash_uint64_basis(((uint64_t) vlan <<
48) | mac, basis)`, implemented here with the portable murmur-based `hash_add`/
`hash_finish` of lib/hash.h (SSE4.2 builds use CRC32; equally uniform).
"""

from __future__ import annotations

from collections.abc import Iterable

BOND_MASK = 0xFF
BOND_BUCKETS = BOND_MASK + 1
_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _mhash_add(h: int, data: int) -> int:
    data = (data * 0xCC9E2D51) & _M32
    data = _rot(data, 15)
    data = (data * 0x1B873593) & _M32
    h ^= data
    h = _rot(h, 13)
    return (h * 5 + 0xE6546B64) & _M32


def _mhash_finish(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def hash_mac(mac: str, vlan: int, basis: int = 0) -> int:
    """OVS `hash_mac()`: murmur of the 64-bit word (vlan << 48 | mac)."""
    x = ((vlan & 0xFFFF) << 48) | int(mac.replace(":", ""), 16)
    h = _mhash_add(basis & _M32, x & _M32)
    h = _mhash_add(h, (x >> 32) & _M32)
    return _mhash_finish(h ^ 8)


def bucket_of(mac: str, vlan: int, basis: int = 0) -> int:
    return hash_mac(mac, vlan, basis) & BOND_MASK


class OvsSlbBond:
    """256 buckets over `members` (port numbers), rebalanced like `bond_rebalance()`.

    `legacy`: the pre-2.16 one-entry, first-fit rule (historical comparison only)."""

    def __init__(self, members: Iterable[int], basis: int = 0, legacy: bool = False) -> None:
        self.members = list(members)
        self.enabled = {m: True for m in self.members}
        self.basis = basis
        self.legacy = legacy
        self.member_of: list[int | None] = [None] * BOND_BUCKETS
        self.tx_bytes = [0] * BOND_BUCKETS
        self._rr = 0  # get_enabled_member() round robin position

    def _next_enabled(self) -> int | None:
        enabled = [m for m in self.members if self.enabled[m]]
        if not enabled:
            return None
        member = enabled[self._rr % len(enabled)]
        self._rr += 1
        return member

    def lookup(self, bucket: int) -> int | None:
        """choose_output_member() for SLB: assign a member to a new or orphaned bucket."""
        member = self.member_of[bucket]
        if member is None or not self.enabled[member]:
            member = self.member_of[bucket] = self._next_enabled()
        return member

    def account(self, bucket: int, n_bytes: int) -> None:
        """bond_account(): transmitted bytes of a flow in this bucket."""
        self.tx_bytes[bucket] += n_bytes

    def rebalance(self) -> list[tuple[int, int, int]]:
        """One bond_rebalance() run; returns the (bucket, from, to) shifts it made."""
        load = {m: 0 for m in self.members}
        entries: dict[int, list[int]] = {m: [] for m in self.members}
        order = range(BOND_BUCKETS)
        if not self.legacy:  # qsort by tx_bytes descending (stable: ties by index)
            order = sorted(order, key=lambda b: -self.tx_bytes[b])
        for b in order:
            member = self.member_of[b]
            if member is not None and self.tx_bytes[b]:
                load[member] += self.tx_bytes[b]
                entries[member].append(b)

        bals: list[int] = []
        for m in self.members:
            if self.enabled[m]:
                _insert_bal(bals, m, load)

        shifts: list[tuple[int, int, int]] = []
        while len(bals) >= 2:
            src, dst = bals[0], bals[-1]
            overload = (load[src] - load[dst]) & _M64
            if overload < load[dst] >> 5 or overload < 100000:
                break
            if self.legacy:
                one = _choose_entry_to_migrate(self.tx_bytes, entries[src], load[src], load[dst])
                chosen = [] if one is None else [one]
            else:
                chosen = _choose_entries_to_migrate(
                    self.tx_bytes, entries[src], load[src], load[dst]
                )
            if not chosen:
                bals.remove(src)
                continue
            for bucket in chosen:
                delta = self.tx_bytes[bucket]
                load[src] -= delta
                load[dst] += delta
                self.member_of[bucket] = dst
                entries[src].remove(bucket)
                shifts.append((bucket, src, dst))
                bals.remove(src)
                _insert_bal(bals, src, load)
                bals.remove(dst)
                _insert_bal(bals, dst, load)

        for b in range(BOND_BUCKETS):
            self.tx_bytes[b] //= 2
        return shifts


def _choose_entries_to_migrate(
    tx_bytes: list[int], entries: list[int], from_tx: int, to_tx: int
) -> list[int]:
    """choose_entries_to_migrate() of OVS >= 2.16 (v3.1.0 bond.c l. 1223-1282)."""
    if len(entries) <= 1:
        return []  # "carries no more than one MAC hash"
    ideal_delta = ((from_tx + to_tx) // 2 - to_tx) & _M64
    threshold = ideal_delta // 10
    delta = 0
    chosen: list[int] = []
    for b in entries:  # heaviest first
        if delta + tx_bytes[b] <= ideal_delta:
            chosen.append(b)
            delta += tx_bytes[b]
        if ideal_delta - delta < threshold:
            break
    if not chosen:
        chosen = [entries[-1]]  # "Lets try closest one": the lightest
        delta = tx_bytes[entries[-1]]
    new_low = min((from_tx - delta) & _M64, to_tx + delta)
    if new_low > to_tx and new_low - to_tx >= threshold:
        return chosen
    return []


def _choose_entry_to_migrate(
    tx_bytes: list[int], entries: list[int], from_tx: int, to_tx: int
) -> int | None:
    """Pre-2.16 choose_entry_to_migrate(): first fit in bucket order (history only)."""
    if len(entries) <= 1:
        return None
    for b in entries:
        delta = tx_bytes[b]
        ideal = (from_tx + to_tx) // 2
        new_low = min((from_tx - delta) & _M64, to_tx + delta)
        if new_low > to_tx and new_low - to_tx >= (ideal - to_tx) // 10:
            return b
    return None


def _insert_bal(bals: list[int], member: int, load: dict[int, int]) -> None:
    """insert_bal(): keep descending tx_bytes; a member goes after those it does not exceed."""
    for i, other in enumerate(bals):
        if load[member] > load[other]:
            bals.insert(i, member)
            return
    bals.append(member)

"""A faithful re-implementation of Open vSwitch's balance-slb rebalancing, for comparison.

Source: ofproto/bond.c of openvswitch/ovs (the 2.14-era "member" version; the logic is
unchanged from the older "slave" version): `bond_rebalance()`, `choose_entry_to_migrate()`,
`bond_shift_load()`, `insert_bal()`, and lib/packets.h + lib/hash.h for `hash_mac()`.

What OVS does, and we reproduce (integer arithmetic on uint64 byte counts, as in C):

- Buckets. `hash_mac(dl_src, vlan, basis) & BOND_MASK` picks one of 256 `bond_entry`s
  (BOND_MASK = 0xff); buckets, not MACs, are assigned to members, so two MACs in one
  bucket always share a member. A bucket with no member gets one on first lookup from
  `get_enabled_member()`: round robin over the enabled members.
- Load. `bond_account()` adds the *transmitted* bytes of a flow to its bucket's
  `tx_bytes`. Received traffic and link speed are not considered.
- `bond_rebalance()`, once per rebalance interval:
  * each member's tx_bytes = the sum of its buckets' tx_bytes; its `entries` list holds
    its buckets with tx_bytes != 0, in bucket-index order (`ovs_list_push_back`);
  * enabled members go into `bals` in descending tx_bytes (`insert_bal`: inserted
    before the first member it strictly exceeds, so ties keep insertion order);
  * loop while `bals` has >= 2 members: from = front, to = back,
    `overload = from->tx_bytes - to->tx_bytes;`
    `if (overload < to->tx_bytes >> 5 || overload < 100000) break;`
    ("less than ~3%, or less than ~1Mbps. No point in rebalancing.");
  * `choose_entry_to_migrate(from, to->tx_bytes)`: NULL if `from` has <= 1 entry
    (`ovs_list_is_short`); else the *first* entry in list order with
    `delta = e->tx_bytes; ideal = (from + to) / 2;`
    `new_low = MIN(from - delta, to + delta);`
    `if (new_low > to && new_low - to >= (ideal - to) / 10) return e;`
    ("the improvement exceeds 10% of current traffic deviation from the ideal split").
    The list is not sorted ("I don't know of a reason to prefer to shift away small
    hashes or large hashes"), so this is first fit, not heaviest fit;
  * found: `bond_shift_load()` moves the bucket (from -= delta, to += delta), removes it
    from `from`'s list (not added to `to`'s: it moves at most once per run), and both
    members are re-sorted (`reinsert_bal`). Not found: `from` leaves `bals`.
  * finally every bucket's tx_bytes is halved (`e->tx_bytes /= 2`): an EWMA with weight
    1/2 per run.

Each accepted entry is committed on its own: there is no run-level "commit only if the
run improves by 10%" check; the 10%-of-the-ideal-delta rule is per entry (above).
BRIEF section 3 says "move the heaviest buckets that do not overshoot the midpoint"; the
stored source does neither (first fit, and `new_low > to` allows passing the midpoint as
long as `from` stays above `to`'s old load). We follow the source. `enabled` members
only are balanced; buckets of a disabled member stay until their next lookup.

Hash: OVS's `hash_mac()` = `hash_uint64_basis(((uint64_t) vlan << 48) | mac, basis)`,
implemented here with the portable murmur-based `hash_add`/`hash_finish` of lib/hash.h
(builds with SSE4.2 use CRC32 instead; the bucket distribution is equally uniform).
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
    """256 buckets over `members` (port numbers), rebalanced like `bond_rebalance()`."""

    def __init__(self, members: Iterable[int], basis: int = 0) -> None:
        self.members = list(members)
        self.enabled = {m: True for m in self.members}
        self.basis = basis
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
        for b in range(BOND_BUCKETS):
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
            bucket = self._choose_entry_to_migrate(entries[src], load[src], load[dst])
            if bucket is not None:
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
            else:
                bals.remove(src)

        for b in range(BOND_BUCKETS):
            self.tx_bytes[b] //= 2
        return shifts

    def _choose_entry_to_migrate(self, entries: list[int], from_tx: int, to_tx: int) -> int | None:
        if len(entries) <= 1:
            return None  # "carries no more than one MAC hash"
        for b in entries:
            delta = self.tx_bytes[b]
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

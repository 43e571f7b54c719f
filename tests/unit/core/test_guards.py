"""Flap hold and the grat-ARP lock, with an explicit clock."""

from slb_ryu.core.guards import AnnounceLock, FlapGuard


def test_flap_guard_holds_after_limit_within_window_and_needs_quiet():
    guard = FlapGuard(limit=3, window=10.0, hold=5.0)
    assert not guard.link_down(1, 0.0)
    assert not guard.link_down(1, 1.0)
    assert guard.link_down(1, 2.0)
    assert not guard.quiet(1, 6.0)
    assert guard.quiet(1, 7.0)
    assert guard.quiet(2, 0.0)  # never flapped


def test_flaps_spread_over_more_than_the_window_do_not_hold():
    guard = FlapGuard(limit=3, window=10.0, hold=5.0)
    assert not any(guard.link_down(1, t) for t in (0.0, 6.0, 12.0, 18.0))


def test_announce_lock_expires():
    lock = AnnounceLock(seconds=5.0)
    key = ("02:00:00:00:00:01", 0)
    assert not lock.locked(key, 0.0)
    lock.announce(key, 10.0)
    assert lock.locked(key, 14.9)
    assert not lock.locked(key, 15.0)
    lock.forget(key)
    assert not lock.locked(key, 11.0)


def test_announce_lock_prunes_expired_keys():
    lock = AnnounceLock(5.0)
    for i in range(100):
        lock.announce(i, float(i))
    lock.prune(100.0)
    assert len(lock) == 4 and lock.locked(99, 100.0) and not lock.locked(90, 100.0)

"""The leases behind leader election: at most one holder, takeover after expiry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from newsletter.runtime import Runtime
from newsletter.store import db, leases

T0 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def _acquire(context: Runtime, owner: str, now: datetime, seconds: float = 30) -> bool:
    with db.transaction(context.sessions, immediate=True) as session:
        return leases.acquire(session, "scheduler", owner, now, seconds)


def _holder(context: Runtime, now: datetime) -> str | None:
    with db.transaction(context.sessions) as session:
        info = leases.holder(session, "scheduler", now)
        return None if info is None else info.owner


def test_the_first_process_takes_a_free_lease(any_context: Runtime) -> None:
    assert _acquire(any_context, "a", T0)
    assert _holder(any_context, T0) == "a"


def test_a_second_process_cannot_take_a_held_lease(any_context: Runtime) -> None:
    assert _acquire(any_context, "a", T0)
    assert not _acquire(any_context, "b", T0 + timedelta(seconds=29))
    assert _holder(any_context, T0 + timedelta(seconds=29)) == "a"


def test_the_holder_extends_its_own_lease(any_context: Runtime) -> None:
    assert _acquire(any_context, "a", T0)
    assert _acquire(any_context, "a", T0 + timedelta(seconds=20))
    # still held at 45 s because the renewal at 20 s pushed expiry to 50 s
    assert not _acquire(any_context, "b", T0 + timedelta(seconds=45))


def test_another_process_takes_over_once_the_lease_expires(any_context: Runtime) -> None:
    assert _acquire(any_context, "a", T0)
    assert _acquire(any_context, "b", T0 + timedelta(seconds=30))
    assert _holder(any_context, T0 + timedelta(seconds=31)) == "b"
    with db.transaction(any_context.sessions) as session:
        # the old holder learns it lost the lease and cannot renew it back
        assert not leases.renew(session, "scheduler", "a", T0 + timedelta(seconds=31), 30)


def test_an_expired_lease_has_no_holder(any_context: Runtime) -> None:
    assert _acquire(any_context, "a", T0)
    assert _holder(any_context, T0 + timedelta(seconds=30)) is None


def test_release_frees_the_lease_only_for_its_owner(any_context: Runtime) -> None:
    assert _acquire(any_context, "a", T0)
    with db.transaction(any_context.sessions) as session:
        assert not leases.release(session, "scheduler", "b")
    assert _holder(any_context, T0) == "a"
    with db.transaction(any_context.sessions) as session:
        assert leases.release(session, "scheduler", "a")
    assert _acquire(any_context, "b", T0 + timedelta(seconds=1))


def _race(context: Runtime, now: datetime, contenders: int = 6) -> list[str]:
    """Owners that believe they won when `contenders` threads acquire at the same moment."""
    winners: list[str] = []
    barrier = threading.Barrier(contenders)

    def contend(owner: str) -> None:
        barrier.wait()
        if _acquire(context, owner, now):
            winners.append(owner)

    threads = [threading.Thread(target=contend, args=(f"p{i}",)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


def test_processes_racing_for_a_lease_get_exactly_one_holder(any_context: Runtime) -> None:
    for moment in (T0, T0 + timedelta(minutes=5)):  # a free lease, then an expired one
        winners = _race(any_context, moment)
        assert len(winners) == 1
        assert _holder(any_context, moment) == winners[0]

"""Claiming deliveries with leases, on SQLite and PostgreSQL: what is due, who holds it,
expired leases taken again, and concurrent claimers that never share a delivery."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from newsletter.planning import planner
from newsletter.readers import subscriptions
from newsletter.runtime import Runtime
from newsletter.store import claims, db
from newsletter.store import deliveries as deliveries_mod
from newsletter.store.claims import ClaimedDelivery
from newsletter.store.models import Delivery, DeliveryAttempt, Edition, Subscriber
from tests.delivery_helpers import NOW, add_papers, add_readers, configured

LEASE = 60.0


def planned(context: Runtime, readers: int) -> Runtime:
    ctx = configured(context, matching={"semantic": "off"})
    add_papers(ctx, 12)
    add_readers(ctx, readers)
    planner.plan_edition(ctx, NOW)
    return ctx


def claim(
    ctx: Runtime,
    owner: str,
    now: datetime = NOW,
    limit: int = 100,
    ignore_schedule: bool = False,
) -> list[ClaimedDelivery]:
    with db.transaction(ctx.sessions, immediate=True) as session:
        claimed, _ = claims.claim_batch(
            session, owner, now, LEASE, limit, ignore_schedule=ignore_schedule
        )
        return claimed


def rows(ctx: Runtime) -> list[Delivery]:
    with db.transaction(ctx.sessions) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_a_claim_leases_due_deliveries_to_its_owner(any_context: Runtime) -> None:
    ctx = planned(any_context, 5)
    claimed = claim(ctx, "worker-a", limit=3)
    assert len(claimed) == 3
    leased = [r for r in rows(ctx) if r.status == "sending"]
    assert {r.id for r in leased} == {c.id for c in claimed}
    assert {r.lease_owner for r in leased} == {"worker-a"}
    assert {r.leased_until for r in leased} == {NOW + timedelta(seconds=LEASE)}
    assert {c.email for c in claimed} <= {f"reader{i:05d}@example.org" for i in range(5)}


def test_a_held_lease_is_not_claimed_again_until_it_expires(any_context: Runtime) -> None:
    ctx = planned(any_context, 4)
    first = claim(ctx, "worker-a")
    assert len(first) == 4
    assert claim(ctx, "worker-b", NOW + timedelta(seconds=LEASE - 1)) == []
    retaken = claim(ctx, "worker-b", NOW + timedelta(seconds=LEASE + 1))
    assert sorted(c.id for c in retaken) == sorted(c.id for c in first)
    assert {r.lease_owner for r in rows(ctx)} == {"worker-b"}


def test_a_claim_takes_expired_leases_and_queued_deliveries_in_due_order_up_to_its_limit(
    any_context: Runtime,
) -> None:
    ctx = planned(any_context, 5)
    ids = [r.id for r in rows(ctx)]
    claim(ctx, "worker-a", limit=2)  # the first two, whose leases then expire
    retaken = claim(ctx, "worker-b", NOW + timedelta(seconds=LEASE + 1), limit=3)
    assert [c.id for c in retaken] == ids[:3]
    assert [r.lease_owner for r in rows(ctx)] == ["worker-b"] * 3 + [None] * 2


def test_the_old_owner_cannot_record_a_retry_on_a_retaken_delivery(
    any_context: Runtime,
) -> None:
    ctx = planned(any_context, 1)
    (mine,) = claim(ctx, "worker-a")
    claim(ctx, "worker-b", NOW + timedelta(seconds=LEASE + 1))
    with db.transaction(ctx.sessions) as session:
        deliveries_mod.mark_retry(
            session, mine, "worker-a", "451 later", NOW + timedelta(hours=1), NOW
        )
    (row,) = rows(ctx)
    assert (row.status, row.lease_owner, row.attempts) == ("sending", "worker-b", 0)


def test_deliveries_not_yet_due_wait_unless_the_schedule_is_ignored(
    any_context: Runtime,
) -> None:
    ctx = planned(any_context, 3)
    before_due = datetime.fromisoformat("2026-11-23T07:59:00+00:00")  # Monday 08:00 UTC due
    assert claim(ctx, "worker-a", before_due) == []
    assert len(claim(ctx, "worker-a", before_due, ignore_schedule=True)) == 3


def test_a_retry_waits_for_its_backoff_even_for_send_now(any_context: Runtime) -> None:
    ctx = planned(any_context, 1)
    (mine,) = claim(ctx, "worker-a")
    later = NOW + timedelta(minutes=5)
    with db.transaction(ctx.sessions) as session:
        deliveries_mod.mark_retry(session, mine, "worker-a", "451 later", later, NOW)
    assert claim(ctx, "worker-a", NOW + timedelta(minutes=1), ignore_schedule=True) == []
    assert len(claim(ctx, "worker-a", later)) == 1


def test_an_unsubscribed_reader_is_skipped_not_claimed(any_context: Runtime) -> None:
    ctx = planned(any_context, 3)
    subscriptions.unsubscribe(ctx, "reader00001@example.org")
    with db.transaction(ctx.sessions, immediate=True) as session:
        claimed, skipped = claims.claim_batch(session, "worker-a", NOW, LEASE, 10)
    assert len(claimed) == 2 and skipped == 1
    assert "reader00001@example.org" not in {c.email for c in claimed}
    assert sorted(r.status for r in rows(ctx)) == ["sending", "sending", "skipped"]


def test_a_paused_edition_gives_out_nothing(any_context: Runtime) -> None:
    ctx = planned(any_context, 3)
    with db.transaction(ctx.sessions) as session:
        session.execute(update(Edition).values(status="paused", paused_reason="test"))
    assert claim(ctx, "worker-a") == []


def test_released_deliveries_can_be_claimed_at_once(any_context: Runtime) -> None:
    ctx = planned(any_context, 3)
    claimed = claim(ctx, "worker-a")
    with db.transaction(ctx.sessions) as session:
        claims.release(session, "worker-a", [c.id for c in claimed])
    assert {r.status for r in rows(ctx)} == {"queued"}
    assert len(claim(ctx, "worker-b")) == 3


def test_two_claimers_at_once_never_get_the_same_delivery(any_context: Runtime) -> None:
    ctx = planned(any_context, 150)
    claimers = [Runtime(ctx.settings) for _ in range(3)]  # own engines, own sessions
    start = threading.Barrier(len(claimers))
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(name: str, claimer: Runtime) -> None:
        mine: list[int] = []
        try:
            start.wait()
            while batch := claim(claimer, name, limit=7):
                mine.extend(c.id for c in batch)
        except BaseException as exc:  # reported below with the thread's name
            errors.append(exc)
        got[name] = mine

    threads = [
        threading.Thread(target=work, args=(f"worker-{n}", c)) for n, c in enumerate(claimers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for claimer in claimers:
        claimer.close()
    assert not errors, errors
    everything = [i for ids in got.values() for i in ids]
    assert len(everything) == len(set(everything)) == 150
    owners = {r.id: r.lease_owner for r in rows(ctx)}
    for name, ids in got.items():
        assert all(owners[i] == name for i in ids)


def test_recorded_sent_marks_read_back_as_the_store_keeps_them(any_context: Runtime) -> None:
    """The recorder runs its statements through the driver: times, flags and the
    ended run of hard bounces must read back as SQLAlchemy would have written them."""
    ctx = planned(any_context, 3)
    first, second, third = claim(ctx, "worker-a")
    with db.transaction(ctx.sessions) as session:
        session.execute(
            update(Subscriber).where(Subscriber.id == second.subscriber_id).values(hard_bounces=2)
        )
    second = dataclasses.replace(second, hard_bounces=2)
    at = NOW + timedelta(seconds=1.5)
    recorder = deliveries_mod.SentRecorder(ctx.engine)
    recorder.record([deliveries_mod.SentMark(first, "<one@example.org>", at)])
    recorder.record([deliveries_mod.SentMark(second, "<two@example.org>", at)])
    recorder.close()
    with db.transaction(ctx.sessions) as session:
        sent = {d.id: d for d in session.scalars(select(Delivery))}
        attempts = list(session.scalars(select(DeliveryAttempt)))
        bounces = session.scalar(
            select(Subscriber.hard_bounces).where(Subscriber.id == second.subscriber_id)
        )
    assert [(sent[d.id].status, sent[d.id].message_id) for d in (first, second, third)] == [
        ("sent", "<one@example.org>"),
        ("sent", "<two@example.org>"),
        ("sending", None),
    ]
    assert sent[first.id].sent_at == at and sent[first.id].attempts == first.attempts + 1
    assert sent[first.id].lease_owner is None and sent[first.id].leased_until is None
    assert sorted((a.delivery_id, a.at, a.ok, a.permanent) for a in attempts) == [
        (first.id, at, True, False),
        (second.id, at, True, False),
    ]
    assert bounces == 0


def test_a_failed_record_keeps_none_of_its_marks(any_context: Runtime) -> None:
    ctx = planned(any_context, 2)
    first, second = claim(ctx, "worker-a")
    gone = dataclasses.replace(second, id=second.id + 1_000_000, edition_id=-1)  # breaks a key
    recorder = deliveries_mod.SentRecorder(ctx.engine)
    with pytest.raises(Exception):  # noqa: B017 - the driver's own integrity error
        recorder.record(
            [
                deliveries_mod.SentMark(first, "<one@example.org>", NOW),
                deliveries_mod.SentMark(gone, "<two@example.org>", NOW),
            ]
        )
    recorder.record([deliveries_mod.SentMark(second, "<two@example.org>", NOW)])  # reconnects
    recorder.close()
    assert [(d.status, d.message_id) for d in rows(ctx)] == [
        ("sending", None),
        ("sent", "<two@example.org>"),
    ]

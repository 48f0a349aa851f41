"""Storing a plan, on SQLite and PostgreSQL: papers another plan gave a reader since the
planner read the history are left out of this one, everything else is kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import db, editions, plans
from newsletter.store.models import Delivery, DeliveryPaper, Edition, Paper, Subscriber
from newsletter.store.plans import PlannedDelivery, PlannedPaper
from tests.delivery_helpers import NOW, add_papers, add_readers, configured


def sent(ctx: Runtime, key: str) -> dict[str, list[int]]:
    """Each reader's papers in the edition `key`, in their planned order."""
    with db.transaction(ctx.sessions) as session:
        found: dict[str, list[int]] = {}
        query = (
            select(Subscriber.email, DeliveryPaper.paper_id)
            .join(Delivery, Delivery.id == DeliveryPaper.delivery_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(Edition, Edition.id == Delivery.edition_id)
            .where(Edition.key == key)
            .order_by(Subscriber.email, DeliveryPaper.position)
        )
        for email, paper_id in session.execute(query):
            found.setdefault(email, []).append(paper_id)
        return found


def test_papers_another_plan_gave_a_reader_meanwhile_are_left_out_and_the_rest_kept(
    any_context: Runtime,
) -> None:
    ctx = configured(any_context, matching={"semantic": "off"})
    add_papers(ctx, 12)
    add_readers(ctx, 2)
    first = planner.plan_edition(ctx, NOW).edition.key
    given = sent(ctx, first)
    assert len(given) == 2 and all(given.values())
    with db.transaction(ctx.sessions) as session:
        readers = {e: i for e, i in session.execute(select(Subscriber.email, Subscriber.id))}
        papers = list(session.scalars(select(Paper.id).order_by(Paper.id)))
        later = NOW + timedelta(days=7)
        edition, _ = editions.ensure_edition(session, "2026-W49", NOW, later, later)
        # As a plan that read the history before the first plan committed would:
        # each reader's list starts with a paper the first plan gave them.
        plan = [
            PlannedDelivery(
                readers[email],
                "digest",
                later,
                tuple(
                    PlannedPaper(p, 1.0, "Matched your topic: Memory")
                    for p in [given[email][0]] + [p for p in papers if p not in given[email]]
                ),
            )
            for email in sorted(readers)
        ]
        assert plans.insert_deliveries(session, edition.id, plan, later) == 2
    again = sent(ctx, "2026-W49")
    for email, papers_given in given.items():
        assert again[email] == [p for p in papers if p not in papers_given]
    assert sent(ctx, first) == given


def test_readers_another_planner_created_deliveries_for_meanwhile_get_no_second_set(
    any_context: Runtime,
) -> None:
    ctx = configured(any_context, matching={"semantic": "off"})
    add_papers(ctx, 12)
    add_readers(ctx, 3)
    with db.transaction(ctx.sessions) as session:
        readers = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        papers = list(session.scalars(select(Paper.id).order_by(Paper.id)))
        later = NOW + timedelta(days=7)
        edition, _ = editions.ensure_edition(session, "2026-W49", NOW, later, later)

    def plan(firsts: list[int]) -> list[PlannedDelivery]:
        return [
            PlannedDelivery(
                reader,
                "digest",
                later,
                (PlannedPaper(first, 1.0, "Matched your topic: Memory"),),
            )
            for reader, first in zip(readers, firsts, strict=True)
        ]

    # The second planner read no deliveries for the first two readers, and chose others.
    with db.transaction(ctx.sessions) as session:
        assert plans.insert_deliveries(session, edition.id, plan(papers[:3])[:2], later) == 2
    with db.transaction(ctx.sessions) as session:
        assert plans.insert_deliveries(session, edition.id, plan(papers[3:6]), later) == 1
    assert list(sent(ctx, "2026-W49").values()) == [[papers[0]], [papers[1]], [papers[5]]]

"""Planning an edition: week keys and windows, per-reader due times, choosing papers,
idempotence under repetition and under concurrent planners (SQLite and PostgreSQL)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from newsletter.delivery import dispatch
from newsletter.errors import InvalidInput
from newsletter.matching import Interest, Match
from newsletter.planning import planner as planner_mod
from newsletter.planning import selection
from newsletter.planning import weeks as weeks_mod
from newsletter.runtime import Runtime
from newsletter.sources.records import PaperRecord
from newsletter.store import db
from newsletter.store.models import (
    Delivery,
    DeliveryPaper,
    Edition,
    EditionPaper,
    Paper,
    Subscriber,
)
from newsletter.store.papers import upsert_papers
from newsletter.store.subscribers import add_subscriber
from tests.conftest import CliResult
from tests.delivery_helpers import IN_WINDOW, NOW, add_papers, add_readers, configured

WORDS_ONLY = {"semantic": "off"}  # fast, and the same with or without the model
BERLIN, TOKYO, NEW_YORK = (ZoneInfo(z) for z in ("Europe/Berlin", "Asia/Tokyo", "America/New_York"))


def words_only(context: Runtime, **sections: Any) -> Runtime:
    return configured(context, matching=WORDS_ONLY, **sections)


def add_reader(ctx: Runtime, email: str, **kwargs: Any) -> int:
    with db.transaction(ctx.sessions) as session:
        return add_subscriber(session, email, status="active", **kwargs).id


def due_times(ctx: Runtime) -> dict[str, datetime]:
    with db.transaction(ctx.sessions) as session:
        rows = session.execute(select(Subscriber.email, Delivery.next_attempt_at).join(Delivery))
        return {email: due for email, due in rows}


def picks(ctx: Runtime, email: str, key: str | None = None) -> list[DeliveryPaper]:
    """The papers planned for a reader, in position order (of one edition if `key`)."""
    with db.transaction(ctx.sessions) as session:
        query = (
            select(DeliveryPaper)
            .join(Delivery, Delivery.id == DeliveryPaper.delivery_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(Edition, Edition.id == Delivery.edition_id)
            .where(Subscriber.email == email)
            .order_by(Edition.id, DeliveryPaper.position)
        )
        if key is not None:
            query = query.where(Edition.key == key)
        return list(session.scalars(query))


def counts(ctx: Runtime) -> tuple[int, ...]:
    with db.transaction(ctx.sessions) as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Edition, Delivery, DeliveryPaper, EditionPaper)
        )


# --- edition keys and windows ---------------------------------------------------------


def test_the_edition_key_is_the_iso_week_in_the_digest_time_zone() -> None:
    assert weeks_mod.edition_key(NOW, ZoneInfo("UTC")) == "2026-W48"
    # Sunday 23:30 UTC is already Monday in Berlin: the next week there.
    late_sunday = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert weeks_mod.edition_key(late_sunday, ZoneInfo("UTC")) == "2026-W48"
    assert weeks_mod.edition_key(late_sunday, BERLIN) == "2026-W49"
    # ISO years: 31 December 2026 is in week 53, 1 January 2027 still is.
    assert (
        weeks_mod.edition_key(datetime(2027, 1, 1, 12, tzinfo=UTC), ZoneInfo("UTC")) == "2026-W53"
    )


@pytest.mark.parametrize("key", ["2026-48", "2026-W60", "2025-W53", "W48-2026", ""])
def test_a_malformed_or_impossible_edition_key_is_refused_by_name(key: str) -> None:
    with pytest.raises(InvalidInput, match="not an edition key"):
        weeks_mod.parse_key(key)


def test_the_window_is_the_days_before_the_send_instant(context: Runtime) -> None:
    config = words_only(context, digest={"window_days": 7}).settings.digest
    schedule = weeks_mod.schedule_for(config, "2026-W48")
    assert schedule.scheduled_for == schedule.window_end == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert schedule.window_start == datetime(2026, 11, 16, 8, tzinfo=UTC)
    assert weeks_mod.week_dates(config, schedule.window_start, schedule.window_end) == (
        date(2026, 11, 16),
        date(2026, 11, 23),
    )


def test_an_edition_ends_its_window_when_it_is_planned_ahead_or_late() -> None:
    schedule = weeks_mod.EditionSchedule(
        "2026-W48",
        datetime(2026, 11, 16, 8, tzinfo=UTC),
        datetime(2026, 11, 23, 8, tzinfo=UTC),
        datetime(2026, 11, 23, 8, tzinfo=UTC),
    )
    ahead = datetime(2026, 11, 22, 18, tzinfo=UTC)  # planned 14 h early, for Tokyo's morning
    midweek = datetime(2026, 11, 25, 12, tzinfo=UTC)  # send-now or a late scheduler
    assert weeks_mod.planned_window(schedule, None, ahead, 7) == (schedule.window_start, ahead)
    assert weeks_mod.planned_window(schedule, None, midweek, 7) == (schedule.window_start, midweek)
    # A week after its send instant the next edition takes over.
    months_later = datetime(2027, 3, 1, tzinfo=UTC)
    assert weeks_mod.planned_window(schedule, None, months_later, 7)[1] == datetime(
        2026, 11, 30, 8, tzinfo=UTC
    )


def test_an_edition_continues_where_the_previous_window_stopped() -> None:
    schedule = weeks_mod.EditionSchedule(
        "2026-W49",
        datetime(2026, 11, 23, 8, tzinfo=UTC),
        datetime(2026, 11, 30, 8, tzinfo=UTC),
        datetime(2026, 11, 30, 8, tzinfo=UTC),
    )
    previous_end = datetime(2026, 11, 22, 18, tzinfo=UTC)
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert weeks_mod.planned_window(schedule, previous_end, now, 7)[0] == previous_end
    # An edition planned long ago does not drag in months of papers.
    months_ago = datetime(2026, 9, 1, tzinfo=UTC)
    assert weeks_mod.planned_window(schedule, months_ago, now, 7)[0] == schedule.window_start


def test_a_paper_listed_after_an_early_planning_goes_out_the_next_week(context: Runtime) -> None:
    ctx = words_only(context, digest={"timezone": "Europe/Berlin"})
    add_reader(ctx, "ada@example.org", topics=["llms"])
    send_w48 = weeks_mod.schedule_for(ctx.settings.digest, "2026-W48").scheduled_for
    add_papers(ctx, 3, listed_at=send_w48 - timedelta(days=2))
    planner_mod.plan_edition(ctx, send_w48 - timedelta(hours=14), key="2026-W48")
    late = PaperRecord(
        "arxiv:2611.99999",
        "A late paper on large language model scaling",
        "json",
        abstract="We study large language model scaling.",
        listed_at=send_w48 - timedelta(hours=2),
    )
    with db.transaction(ctx.sessions) as session:
        upsert_papers(session, [late])
    planner_mod.plan_edition(ctx, send_w48 + timedelta(days=7, minutes=1), key="2026-W49")
    titles = [paper_title(ctx, p.paper_id) for p in picks(ctx, "ada@example.org", "2026-W49")]
    assert titles == ["A late paper on large language model scaling"]
    assert len(picks(ctx, "ada@example.org", "2026-W48")) == 1  # one of the three is on LLMs


def paper_title(ctx: Runtime, paper_id: int) -> str:
    with db.transaction(ctx.sessions) as session:
        return str(session.get_one(Paper, paper_id).title)


# --- per-reader due times -------------------------------------------------------------


def plan_week_with_readers(
    context: Runtime, zones: dict[str, str | None], when: datetime, **digest_config: Any
) -> dict[str, datetime]:
    ctx = words_only(context, digest={"skip_empty": False, **digest_config})
    for email, zone in zones.items():
        add_reader(ctx, email, topics=["llms"], timezone=zone)
    planner_mod.plan_edition(ctx, when)
    return due_times(ctx)


def test_readers_in_tokyo_and_berlin_are_both_due_at_eight_in_their_morning(
    context: Runtime,
) -> None:
    due = plan_week_with_readers(
        context,
        {"tokyo@example.org": "Asia/Tokyo", "berlin@example.org": "Europe/Berlin"},
        NOW,
    )
    monday_eight = datetime(2026, 11, 23, 8, 0)
    assert due["tokyo@example.org"].astimezone(TOKYO).replace(tzinfo=None) == monday_eight
    assert due["berlin@example.org"].astimezone(BERLIN).replace(tzinfo=None) == monday_eight
    assert due["tokyo@example.org"] == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert due["berlin@example.org"] == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def test_a_reader_without_a_zone_or_with_an_unknown_one_gets_the_digest_zone(
    context: Runtime,
) -> None:
    due = plan_week_with_readers(
        context,
        {"none@example.org": None, "bogus@example.org": "Mars/Olympus_Mons"},
        NOW,
        timezone="Asia/Tokyo",
    )
    # Digest zone Tokyo: NOW (Wednesday noon UTC) is in W48 there too.
    assert set(due.values()) == {datetime(2026, 11, 22, 23, 0, tzinfo=UTC)}


# (weekday, the Sunday a change happens, UTC hour the week before, on the day, after)
DST_WEEKENDS = [
    pytest.param("Europe/Berlin", date(2026, 3, 29), (7, 6, 6), id="europe-spring"),
    pytest.param("Europe/Berlin", date(2026, 10, 25), (6, 7, 7), id="europe-autumn"),
    pytest.param("America/New_York", date(2026, 3, 8), (13, 12, 12), id="us-spring"),
    pytest.param("America/New_York", date(2026, 11, 1), (12, 13, 13), id="us-autumn"),
]


@pytest.mark.parametrize(("zone", "sunday", "utc_hours"), DST_WEEKENDS)
def test_due_times_stay_at_eight_local_across_the_clock_change_weekends(
    context: Runtime, zone: str, sunday: date, utc_hours: tuple[int, int, int]
) -> None:
    """Sunday editions on the week before, the change day itself, and the week after."""
    ctx = words_only(context, digest={"skip_empty": False, "weekday": "sunday"})
    add_reader(ctx, "reader@example.org", topics=["llms"], timezone=zone)
    local = ZoneInfo(zone)
    for week, hour in zip((-1, 0, 1), utc_hours, strict=True):
        day = sunday + timedelta(weeks=week)
        planner_mod.plan_edition(ctx, datetime.combine(day, time(0, 0), tzinfo=UTC))
        key = weeks_mod.edition_key(datetime.combine(day, time(12), tzinfo=UTC), ZoneInfo("UTC"))
        with db.transaction(ctx.sessions) as session:
            due = session.scalar(
                select(Delivery.next_attempt_at).join(Edition).where(Edition.key == key)
            )
        assert due is not None
        assert due == datetime.combine(day, time(hour), tzinfo=UTC), key
        assert due.astimezone(local).time() == time(8, 0) and due.astimezone(local).date() == day


def test_a_send_time_skipped_by_the_spring_change_resolves_forward() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026; it is sent at 03:30 CEST.
    instant = weeks_mod.send_instant("2026-W13", 6, time(2, 30), BERLIN)
    assert instant == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert instant.astimezone(BERLIN).time() == time(3, 30)
    # 02:30 happens twice on 25 October 2026: the first one (still CEST) counts.
    repeated = weeks_mod.send_instant("2026-W43", 6, time(2, 30), BERLIN)
    assert repeated == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


# --- choosing papers ------------------------------------------------------------------


def test_a_reader_gets_at_most_max_papers_best_first_with_the_matched_interest(
    context: Runtime,
) -> None:
    ctx = words_only(context, digest={"max_papers": 4})
    add_papers(ctx, 30)
    add_reader(ctx, "ada@example.org", topics=["llms"], interests=["image segmentation"])
    plan = planner_mod.plan_edition(ctx, NOW)
    assert (plan.planned, plan.digests, plan.quiet) == (1, 1, 0)
    chosen = picks(ctx, "ada@example.org")
    assert len(chosen) == 4
    assert [p.position for p in chosen] == [1, 2, 3, 4]
    scores = [p.score for p in chosen]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    with db.transaction(ctx.sessions) as session:
        titles = {p.id: p.title for p in session.scalars(select(Paper))}
    for pick in chosen:
        title = titles[pick.paper_id]
        expected = (
            "Matched your topic: Large language models"
            if "language model" in title
            else "Matched your interest: image segmentation"
        )
        assert "memory" not in title and pick.reason == expected, (title, pick.reason)


def test_a_reader_who_picked_nothing_gets_the_weeks_most_trending_papers(
    context: Runtime,
) -> None:
    ctx = words_only(context, digest={"max_papers": 5})
    add_papers(ctx, 12)
    add_reader(ctx, "ada@example.org")
    plan = planner_mod.plan_edition(ctx, NOW)
    assert (plan.planned, plan.digests, plan.without_papers) == (1, 1, 0)
    chosen = picks(ctx, "ada@example.org")
    with db.transaction(ctx.sessions) as session:
        upvotes = {p.id: p.upvotes for p in session.scalars(select(Paper))}
    assert [upvotes[p.paper_id] for p in chosen] == [11, 10, 9, 8, 7]
    assert {p.reason for p in chosen} == {"Trending this week"}


def test_the_general_digest_skips_papers_the_reader_already_got(context: Runtime) -> None:
    ctx = words_only(context, digest={"max_papers": 3})
    add_papers(ctx, 12)
    with db.transaction(ctx.sessions) as session:
        papers = list(session.scalars(select(Paper)))
        by_upvotes = [p.id for p in sorted(papers, key=lambda p: -p.upvotes)]
        reader = selection.Reader(1, (), ())
        chosen = selection.choose_for(
            session, ctx.settings, [reader], papers, {1: set(by_upvotes[:2])}
        )
    assert [p.paper_id for p in chosen[1]] == by_upvotes[2:5]


def test_a_paper_two_interests_match_comes_once_under_the_interest_it_scored_best() -> None:
    llms, video = Interest("topic:llms", "LLMs", "LLMs"), Interest("text:video", "video", "video")
    ranked = {
        "topic:llms": [Match(1, 0.9, 0.5, "x"), Match(2, 0.5, 0.5, "x")],
        "text:video": [Match(2, 0.7, 0.6, "x"), Match(3, 0.1, 0.4, "x")],
    }
    keys = ("topic:llms", "text:video")
    readers = [(7, [llms, video], keys), (8, [llms, video], keys)]
    chosen = selection.merge_ranked(ranked, readers, {8: {1}}, 2, lambda seen: ())
    assert [(p.paper_id, p.reason) for p in chosen[7]] == [
        (1, "Matched your topic: LLMs"),
        (2, "Matched your interest: video"),
    ]
    assert [p.paper_id for p in chosen[8]] == [2, 3]  # reader 8 already got paper 1


def test_a_paper_already_sent_to_a_reader_is_never_chosen_for_them_again(
    context: Runtime,
) -> None:
    # Two-week windows overlap: the second edition sees the first week's papers again.
    ctx = words_only(context, digest={"max_papers": 3, "window_days": 14})
    add_papers(ctx, 30)
    add_reader(ctx, "ada@example.org", topics=["llms"])
    planner_mod.plan_edition(ctx, NOW)
    add_reader(ctx, "newcomer@example.org", topics=["llms"])
    planner_mod.plan_edition(ctx, NOW + timedelta(days=7))
    first = {p.paper_id for p in picks(ctx, "ada@example.org", "2026-W48")}
    second = {p.paper_id for p in picks(ctx, "ada@example.org", "2026-W49")}
    newcomer = {p.paper_id for p in picks(ctx, "newcomer@example.org", "2026-W49")}
    assert len(first) == len(second) == 3 and not first & second
    assert newcomer == first  # the best ones, which only the newcomer has not had


def test_with_skip_empty_a_reader_with_no_matching_paper_gets_no_delivery(
    context: Runtime,
) -> None:
    ctx = words_only(context)
    add_papers(ctx, 12)
    add_reader(ctx, "ada@example.org", topics=["llms"])
    add_reader(ctx, "odd@example.org", interests=["quantum chromodynamics on the lattice"])
    plan = planner_mod.plan_edition(ctx, NOW)
    assert (plan.planned, plan.digests, plan.quiet, plan.without_papers) == (1, 1, 0, 1)
    assert set(due_times(ctx)) == {"ada@example.org"}


def test_without_skip_empty_that_reader_gets_a_quiet_week_note(context: Runtime) -> None:
    ctx = words_only(context, digest={"skip_empty": False})
    add_papers(ctx, 12)
    add_reader(ctx, "ada@example.org", topics=["llms"])
    add_reader(ctx, "odd@example.org", interests=["quantum chromodynamics on the lattice"])
    plan = planner_mod.plan_edition(ctx, NOW)
    assert (plan.planned, plan.digests, plan.quiet, plan.without_papers) == (2, 1, 1, 0)
    with db.transaction(ctx.sessions) as session:
        kinds = dict(session.execute(select(Subscriber.email, Delivery.kind).join(Delivery)).all())
    assert kinds == {"ada@example.org": "digest", "odd@example.org": "quiet"}
    assert picks(ctx, "odd@example.org") == []


def test_planning_records_the_editions_general_selection_by_upvotes(context: Runtime) -> None:
    ctx = words_only(context)
    add_papers(ctx, 30)
    add_papers(ctx, 5, IN_WINDOW - timedelta(days=10))  # before the window: not in it
    add_readers(ctx, 1)
    planner_mod.plan_edition(ctx, NOW)
    with db.transaction(ctx.sessions) as session:
        rows = session.execute(
            select(EditionPaper.position, Paper.upvotes, Paper.listed_at)
            .join(Paper)
            .order_by(EditionPaper.position)
        ).all()
    assert [r.position for r in rows] == list(range(1, 31))
    assert [r.upvotes for r in rows] == list(range(29, -1, -1))
    assert all(r.listed_at >= datetime(2026, 11, 16, 8, tzinfo=UTC) for r in rows)


# --- idempotence ----------------------------------------------------------------------


def test_planning_twice_creates_nothing_new(any_context: Runtime) -> None:
    ctx = words_only(any_context, digest={"skip_empty": False})
    add_papers(ctx, 20)
    add_readers(ctx, 5)
    add_reader(ctx, "quiet@example.org")  # no topics, nothing to match: a quiet note
    first = planner_mod.plan_edition(ctx, NOW)
    before = counts(ctx)
    second = planner_mod.plan_edition(ctx, NOW + timedelta(hours=1))
    assert first.created_edition and first.planned == 6
    assert not second.created_edition and second.planned == 0
    assert counts(ctx) == before and before[:2] == (1, 6)


def test_two_planners_at_once_create_each_delivery_once(any_context: Runtime) -> None:
    ctx = words_only(any_context, digest={"max_papers": 3})
    add_papers(ctx, 20)
    add_readers(ctx, 60)
    planners = [Runtime(ctx.settings) for _ in range(2)]  # own engines, own sessions
    start = threading.Barrier(len(planners))
    results: list[planner_mod.PlanResult] = []
    errors: list[BaseException] = []

    def plan(planner: Runtime) -> None:
        try:
            start.wait()
            results.append(planner_mod.plan_edition(planner, NOW))
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=plan, args=(p,)) for p in planners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for planner in planners:
        planner.close()
    assert not errors, errors
    assert sorted(r.created_edition for r in results) == [False, True]
    assert sum(r.planned for r in results) == 60
    editions, deliveries, papers, _ = counts(ctx)
    assert (editions, deliveries, papers) == (1, 60, 180)


# --- embeddings survive rolled-back plans ---------------------------------------------

HAS_MODEL = importlib.util.find_spec("sentence_transformers") is not None


def stored_embeddings(ctx: Runtime) -> list[bool]:
    with db.transaction(ctx.sessions) as session:
        return [e is not None for e in session.scalars(select(Paper.embedding))]


def current_week_papers(context: Runtime, count: int = 6) -> None:
    """Papers inside the window of the real current week (the CLI plans for now)."""
    schedule = weeks_mod.current_schedule(context.settings.digest, datetime.now(UTC))
    add_papers(context, count, schedule.window_end - timedelta(days=1))


@pytest.mark.skipif(not HAS_MODEL, reason="sentence-transformers (semantic extra) not installed")
def test_a_dry_run_keeps_the_paper_embeddings_it_computed(
    context: Runtime, config_file: Callable[..., Path], run_cli: Callable[..., CliResult]
) -> None:
    current_week_papers(context)
    add_readers(context, 2)
    assert stored_embeddings(context) == [False] * 6
    path = config_file(matching={"semantic": "auto"})
    result = run_cli("--config", str(path), "send-now", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "nothing was sent or recorded" in result.stdout
    assert stored_embeddings(context) == [True] * 6
    assert counts(context)[:2] == (0, 0)  # the plan itself was rolled back
    assert planner_mod.embed_window(context) == 0  # the next run does not embed again


@pytest.mark.skipif(not HAS_MODEL, reason="sentence-transformers (semantic extra) not installed")
def test_a_dry_run_through_the_service_keeps_the_paper_embeddings(context: Runtime) -> None:
    add_papers(context, 6)
    add_readers(context, 2)
    dispatch.send_now(context, dry_run=True, clock=lambda: NOW)
    assert stored_embeddings(context) == [True] * 6


def test_without_the_model_planning_matches_by_words(context: Runtime) -> None:
    ctx = configured(context, matching={"semantic": "off"}, digest={"max_papers": 2})
    add_papers(ctx, 9)
    add_readers(ctx, 3)
    plan = planner_mod.plan_edition(ctx, NOW)
    assert plan.digests == 3
    assert stored_embeddings(ctx) == [False] * 9
    assert all(len(picks(ctx, f"reader{i:05d}@example.org")) == 2 for i in range(3))

"""`newsletter status`: the next run, the current edition's progress, earlier totals."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import update

from newsletter import status
from newsletter.delivery import drain as drain_mod
from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.scheduler import Scheduler
from newsletter.store import db, leases
from newsletter.store import editions as editions_mod
from newsletter.store.models import Delivery, Subscriber
from newsletter.store.subscribers import add_subscriber
from tests.conftest import CliResult
from tests.delivery_helpers import add_papers, add_readers, configured
from tests.scheduler_support import add_reader

BERLIN = {"timezone": "Europe/Berlin", "weekday": "monday", "time": "08:00"}
W49_FIRE = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)  # plans 2026-W49 (Monday 07:00 UTC)
W48_FIRE = W49_FIRE - timedelta(days=7)


def _planned(context: Runtime, server: CaptureServer, fire: datetime, readers: int) -> Runtime:
    ctx = configured(context, server, digest=BERLIN)
    add_papers(ctx, listed_at=fire - timedelta(days=2))
    add_readers(ctx, readers)
    Scheduler(ctx, clock=lambda: fire).plan_week()
    return ctx


def test_before_any_edition_it_says_when_the_first_is_planned(context: Runtime) -> None:
    ctx = configured(context, digest=BERLIN)
    report = status.report(ctx, now=datetime(2026, 11, 25, tzinfo=UTC))
    assert report.next_run == W49_FIRE
    assert (report.next_edition, report.next_send) == (
        "2026-W49",
        datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
    )
    assert report.current is None and report.leader is None


def test_it_counts_sent_and_later_deliveries_of_the_current_edition(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = _planned(context, smtp_server, W49_FIRE, readers=3)
    add_reader(ctx, "newyork@example.org", "America/New_York")
    Scheduler(ctx, clock=lambda: W49_FIRE).plan_week()  # picks up the new reader
    berlin_morning = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)  # New York still asleep
    drain_mod.drain(ctx, drain_mod.DrainOptions(), clock=lambda: berlin_morning)
    report = status.report(ctx, now=berlin_morning)
    assert report.current is not None
    assert report.current.key == "2026-W49" and report.current.status == "sending"
    tally = report.current.tally
    assert (tally.planned, tally.sent, tally.due_later, tally.failed) == (4, 3, 1, 0)
    assert report.next_edition == "2026-W50"


def test_it_says_why_an_edition_is_paused_and_what_failed(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = _planned(context, smtp_server, W49_FIRE, readers=3)
    with db.transaction(ctx.sessions) as session:
        edition = editions_mod.get_edition(session, "2026-W49")
        assert edition is not None
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition.id)
            .values(status="failed", last_error="550 5.1.1 no such user")
        )
        editions_mod.pause_edition(session, edition.id, "3 of the last 3 attempts failed")
    report = status.report(ctx, now=W49_FIRE)
    assert report.current is not None
    assert report.current.status == "paused"
    assert report.current.paused_reason == "3 of the last 3 attempts failed"
    assert report.current.failure_reasons == (("550 5.1.1 no such user", 3),)


def test_earlier_editions_are_totalled_newest_first(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = _planned(context, smtp_server, W48_FIRE, readers=2)
    add_papers(ctx, listed_at=W49_FIRE - timedelta(days=2))
    Scheduler(ctx, clock=lambda: W49_FIRE).plan_week()
    report = status.report(ctx, now=W49_FIRE)
    assert report.current is not None and report.current.key == "2026-W49"
    assert [(e.key, e.tally.planned) for e in report.recent] == [("2026-W48", 2)]


def test_it_names_the_process_that_leads(context: Runtime) -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    with db.transaction(context.sessions) as session:
        leases.acquire(session, status.LEASE_NAME, "host:42:abc", now, 30)
    report = status.report(context, now=now + timedelta(seconds=10))
    assert report.leader is not None and report.leader.owner == "host:42:abc"


def test_the_status_command_prints_json(
    run_cli: Callable[..., CliResult],
    config_file: Callable[..., Path],
    context: Runtime,
    smtp_server: CaptureServer,
) -> None:
    path = config_file(digest=BERLIN)
    _planned(context, smtp_server, W49_FIRE, readers=2)
    with time_machine.travel(W49_FIRE + timedelta(hours=1), tick=False):
        result = run_cli("--config", str(path), "status", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["next_edition"] == "2026-W50"
    assert data["current"]["key"] == "2026-W49"
    assert (data["current"]["planned"], data["current"]["due_later"]) == (2, 2)
    assert data["recent"] == [] and data["leader"] is None


def test_the_status_command_prints_tables(
    run_cli: Callable[..., CliResult],
    config_file: Callable[..., Path],
    context: Runtime,
    smtp_server: CaptureServer,
) -> None:
    path = config_file(digest=BERLIN)
    _planned(context, smtp_server, W49_FIRE, readers=2)
    with time_machine.travel(W49_FIRE + timedelta(hours=1), tick=False):
        result = run_cli("--config", str(path), "status")
    assert result.exit_code == 0, result.stderr
    assert "Next run: 2026-12-06 18:00 UTC plans 2026-W50" in result.stdout
    assert "Edition 2026-W49: sending" in result.stdout


def test_status_without_a_schema_is_a_one_line_error(
    run_cli: Callable[..., CliResult], config_file: Callable[..., Path]
) -> None:
    config = config_file()
    (config.parent / "store.db").touch()  # a database file, but no schema in it
    result = run_cli("--config", str(config), "status")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: the database has no schema yet: run `newsletter init`"


# --- weeks not planned, and editions that planned nobody ---------------------------------

MONDAY_W49 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
W49_LAST_READER = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # Monday 08:00 at UTC-12


def test_an_unplanned_edition_is_overdue_while_a_reader_is_still_due(
    run_cli: Callable[..., CliResult], config_file: Callable[..., Path], context: Runtime
) -> None:
    path = config_file(digest=BERLIN)
    with time_machine.travel(MONDAY_W49 + timedelta(hours=2), tick=False):
        report = status.report(configured(context, digest=BERLIN))
        result = run_cli("--config", str(path), "status")
    assert report.overdue is not None and report.overdue.key == "2026-W49"
    assert report.overdue.deadline == W49_LAST_READER + timedelta(hours=6)
    assert report.skipped == ()
    assert result.exit_code == 0, result.stderr
    assert (
        "Overdue: edition 2026-W49 was due to be planned at 2026-11-29 18:00 UTC and is not; "
        "a scheduler plans it as soon as it leads, until 2026-12-01 02:00 UTC"
    ) in " ".join(result.stdout.split())


def test_the_status_command_says_which_week_was_skipped_and_when_the_next_is_planned(
    run_cli: Callable[..., CliResult], config_file: Callable[..., Path], context: Runtime
) -> None:
    path = config_file(digest=BERLIN)
    with time_machine.travel(W49_LAST_READER + timedelta(hours=6, minutes=1), tick=False):
        text = run_cli("--config", str(path), "status")
        data = json.loads(run_cli("--config", str(path), "status", "--json").stdout)
    note = (
        "edition 2026-W49 was not planned: its last send time passed at 2026-11-30 20:00 UTC "
        "(more than the 6 h grace); the next is 2026-W50, planned at 2026-12-06 18:00 UTC"
    )
    assert text.exit_code == 0, text.stderr
    assert f"Skipped: {note}." in " ".join(text.stdout.split())
    assert data["overdue"] is None
    assert [(s["key"], s["note"]) for s in data["skipped"]] == [("2026-W49", note)]


def test_a_week_skipped_between_two_editions_is_listed(
    context: Runtime, smtp_server: CaptureServer
) -> None:
    ctx = _planned(context, smtp_server, W48_FIRE, readers=2)
    w50_fire = W49_FIRE + timedelta(days=7)
    add_papers(ctx, listed_at=w50_fire - timedelta(days=2))
    Scheduler(ctx, clock=lambda: w50_fire).plan_week()
    report = status.report(ctx, now=w50_fire + timedelta(hours=1))
    assert report.current is not None and report.current.key == "2026-W50"
    assert [e.key for e in report.recent] == ["2026-W48"]
    assert [week.key for week, _ in report.skipped] == ["2026-W49"]


def _pause_everyone(ctx: Runtime) -> None:
    with db.transaction(ctx.sessions) as session:
        session.execute(update(Subscriber).values(paused=True))


def _unsubscribe_everyone(ctx: Runtime) -> None:
    with db.transaction(ctx.sessions) as session:
        session.execute(update(Subscriber).values(status="unsubscribed"))


NO_READER = "there is no active reader (or every active reader has paused their digest)"
EMPTY_CASES: dict[str, tuple[Callable[[Runtime], None], str]] = {
    "no-reader": (_unsubscribe_everyone, NO_READER),
    "all-paused": (_pause_everyone, NO_READER),
    "no-paper": (
        lambda ctx: None,
        # planned ahead, at Sunday 18:00 UTC: the window ends then
        "no paper was listed in the window of edition 2026-W49 (2026-11-23 07:00 UTC to "
        "2026-11-29 18:00 UTC); the newest was 2026-11-12 18:00 UTC: run `newsletter ingest`",
    ),
}


@pytest.mark.parametrize("case", EMPTY_CASES.values(), ids=EMPTY_CASES.keys())
def test_it_names_why_an_edition_planned_nobody(
    context: Runtime, case: tuple[Callable[[Runtime], None], str]
) -> None:
    arrange, reason = case
    ctx = configured(context, digest=BERLIN, matching={"semantic": "off"})
    add_papers(ctx, listed_at=W49_FIRE - timedelta(days=17))  # two windows back
    add_readers(ctx, 2)
    arrange(ctx)
    Scheduler(ctx, clock=lambda: W49_FIRE).plan_week()
    report = status.report(ctx, now=W49_FIRE)
    assert report.current is not None and report.current.tally.planned == 0
    assert report.current.empty_reason == reason


def test_it_says_nothing_matched_when_readers_and_papers_were_there(context: Runtime) -> None:
    ctx = configured(context, digest=BERLIN, matching={"semantic": "off"})
    add_papers(ctx, listed_at=W49_FIRE - timedelta(days=2))
    with db.transaction(ctx.sessions) as session:
        add_subscriber(session, "x@example.org", status="active", interests=["ornithology"])
    Scheduler(ctx, clock=lambda: W49_FIRE).plan_week()
    report = status.report(ctx, now=W49_FIRE)
    assert report.current is not None and report.current.tally.planned == 0
    assert report.current.empty_reason == (
        "none of the 30 papers listed in the window of edition 2026-W49 (2026-11-23 07:00 UTC "
        "to 2026-11-29 18:00 UTC) matched any reader's topics and interests, and "
        "digest.skip_empty is on"
    )


def test_earlier_editions_show_their_pause_reason_and_why_they_sent_nothing(
    run_cli: Callable[..., CliResult],
    config_file: Callable[..., Path],
    context: Runtime,
    smtp_server: CaptureServer,
) -> None:
    path = config_file(digest=BERLIN)
    ctx = configured(context, smtp_server, digest=BERLIN)
    add_readers(ctx, 2)
    Scheduler(ctx, clock=lambda: W48_FIRE - timedelta(days=7)).plan_week()  # W47: no paper
    add_papers(ctx, listed_at=W48_FIRE - timedelta(days=2))
    Scheduler(ctx, clock=lambda: W48_FIRE).plan_week()
    with db.transaction(ctx.sessions) as session:
        edition = editions_mod.get_edition(session, "2026-W48")
        assert edition is not None
        editions_mod.pause_edition(session, edition.id, "the relay refused 2 of 2")
    add_papers(ctx, listed_at=W49_FIRE - timedelta(days=2))
    Scheduler(ctx, clock=lambda: W49_FIRE).plan_week()
    with time_machine.travel(W49_FIRE + timedelta(hours=1), tick=False):
        text = run_cli("--config", str(path), "status", "--editions", "3")
        data = json.loads(run_cli("--config", str(path), "status", "--json").stdout)
    assert text.exit_code == 0, text.stderr
    assert "2026-W48: paused: the relay refused 2 of 2." in text.stdout
    assert (
        "2026-W47: sent nothing: no paper was listed in the window of edition 2026-W47"
        in text.stdout
    )
    recent = {e["key"]: e for e in data["recent"]}
    assert recent["2026-W48"]["paused_reason"] == "the relay refused 2 of 2"
    assert recent["2026-W47"]["planned"] == 0
    assert recent["2026-W47"]["empty_reason"].startswith("no paper was listed in the window")

"""`newsletter scheduler` (the weekly job without the web app) and `newsletter status`."""

from __future__ import annotations

import json
import logging
import signal
from datetime import datetime
from types import FrameType
from typing import Any

import click
from rich.table import Table

from newsletter import status as status_service
from newsletter.cli.base import State, cli, console, pass_state, plural
from newsletter.store.progress import DeliveryTally
from newsletter.store.statuses import EditionStatus


@cli.command(epilog="Example: newsletter scheduler")
@pass_state
def scheduler(state: State) -> None:
    """Run the weekly schedule in the foreground (for deployments without `serve`).

    Start it on as many machines as you like: one leads, the others stand by and take
    over when it stops. SIGTERM or Ctrl-C stops it cleanly.
    """
    from newsletter.scheduler import Scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks are not news
    context = state.context()
    runner = Scheduler(context)
    runner.on_change = lambda leading: console.print(
        f"{runner.owner} {_leading(runner.catching_up) if leading else 'stepped down'}.",
        markup=False,
        soft_wrap=True,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        runner.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    report = status_service.report(context, recent=0)
    console.print(
        f"Scheduler {runner.owner} started; next edition {report.next_edition} is planned "
        f"at {_when(report.next_run)}.",
        markup=False,
        soft_wrap=True,
    )
    for _, note in report.skipped:
        console.print(f"Skipped: {note}.", markup=False, soft_wrap=True)
    try:
        runner.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    console.print("Scheduler stopped.")


@cli.command(epilog="Example: newsletter status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--editions",
    default=5,
    show_default=True,
    type=click.IntRange(0, 100),
    help="How many earlier editions to total.",
)
@pass_state
def status(state: State, as_json: bool, editions: int) -> None:
    """Show the next scheduled run, the current edition's progress and earlier totals."""
    found = status_service.overview(state.context(), recent=editions)
    report = found.report
    if as_json:
        click.echo(json.dumps(_overview_dict(found), indent=2))
        return
    _print_schedule(report)
    _print_audience(found)
    for _, note in report.skipped:
        console.print(f"Skipped: {note}.", markup=False, soft_wrap=True)
    if report.current is None:
        console.print("No edition has been planned yet.")
        return
    _print_current(report.current)
    if report.recent:
        _print_recent(report.recent)


def _leading(catching_up: str | None) -> str:
    if catching_up is None:
        return "leads: running the weekly job"
    return f"leads: planning edition {catching_up} now (its planning time passed), then weekly"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _print_schedule(report: status_service.StatusReport) -> None:
    leader = report.leader
    who = f"{leader.owner} (lease until {_when(leader.expires_at)})" if leader else "none running"
    console.print(
        f"Next run: {_when(report.next_run)} plans {report.next_edition} "
        f"(send time {_when(report.next_send)}).",
        markup=False,
    )
    console.print(f"Scheduler: {who}.", markup=False)
    week = report.overdue
    if week is not None:
        console.print(
            f"Overdue: edition {week.key} was due to be planned at {_when(week.plan_at)} and "
            f"is not; a scheduler plans it as soon as it leads, until "
            f"{_when(week.deadline)} (its last reader is due at {_when(week.last_send)}).",
            markup=False,
            soft_wrap=True,
        )


def _print_current(edition: status_service.EditionProgress) -> None:
    t = edition.tally
    table = Table(
        "planned",
        "sent",
        "due now",
        "due later",
        "sending",
        "failed",
        "skipped",
        title=f"Edition {edition.key}: {edition.status}",
    )
    table.add_row(
        *(
            str(n)
            for n in (t.planned, t.sent, t.due_now, t.due_later, t.sending, t.failed, t.skipped)
        )
    )
    console.print(table)
    if edition.status == EditionStatus.PAUSED:
        console.print(f"Paused: {edition.paused_reason}", markup=False)
    if edition.empty_reason is not None:
        console.print(f"Nothing to send: {edition.empty_reason}.", markup=False, soft_wrap=True)
    if t.retrying:
        waiting = plural(t.retrying, "delivery", "deliveries")
        verb = "waits" if t.retrying == 1 else "wait"
        console.print(f"{waiting} {verb} for a retry after a temporary failure.")
    for error, count in edition.failure_reasons:
        console.print(f"failed ×{count}: {error}", markup=False)
    if edition.span is not None:
        console.print(f"Sending: {_speed(edition)}.", markup=False)


def _print_recent(recent: tuple[status_service.EditionProgress, ...]) -> None:
    table = Table(
        "edition",
        "status",
        "planned",
        "sent",
        "failed",
        "skipped",
        "bounced",
        "msg/s",
        "send time",
        title="Earlier editions",
    )
    for e in recent:
        t = e.tally
        table.add_row(
            e.key,
            e.status,
            str(t.planned),
            str(t.sent),
            str(t.failed),
            str(t.skipped),
            str(e.returned.hard_bounces),
            _rate(e.span.per_second if e.span else None),
            _when(e.scheduled_for),
        )
    console.print(table)
    for e in recent:  # below the table: a reason is a sentence, too long for a column
        if why := _why(e):
            console.print(f"{e.key}: {why}.", markup=False, soft_wrap=True)


def _print_audience(found: status_service.Overview) -> None:
    readers = found.readers
    counts = ", ".join(f"{n} {status}" for status, n in readers.by_status.items())
    console.print(f"Readers: {counts} ({readers.paused} paused).", markup=False)
    topics = ", ".join(f"{slug} {n}" for slug, _, n in readers.by_topic)
    if topics:
        console.print(f"Active readers per topic: {topics}.", markup=False, soft_wrap=True)
    back = found.returns
    console.print(
        f"Last {back.days} days: {back.sent} sent, {back.counts.hard_bounces} hard bounces "
        f"({_percent(back.bounce_rate)}), {back.counts.complaints} complaints "
        f"({_percent(back.complaint_rate)}).",
        markup=False,
    )


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


def _rate(per_second: float | None) -> str:
    return "" if per_second is None else f"{per_second:.1f}"


def _speed(edition: status_service.EditionProgress) -> str:
    span = edition.span
    assert span is not None
    speed = f" ({_rate(span.per_second)} messages/s)" if span.per_second else ""
    return f"{plural(span.sent, 'message')} in {span.seconds:.1f} s{speed}"


def _why(edition: status_service.EditionProgress) -> str:
    if edition.status == EditionStatus.PAUSED and edition.paused_reason:
        return f"paused: {edition.paused_reason}"
    return f"sent nothing: {edition.empty_reason}" if edition.empty_reason else ""


def _week_dict(week: status_service.Week) -> dict[str, str]:
    return {
        "key": week.key,
        "plan_at": week.plan_at.isoformat(),
        "send_at": week.send_at.isoformat(),
        "last_send": week.last_send.isoformat(),
        "deadline": week.deadline.isoformat(),
    }


def _edition_dict(edition: status_service.EditionProgress) -> dict[str, Any]:
    return {
        "key": edition.key,
        "status": edition.status,
        "paused_reason": edition.paused_reason,
        "scheduled_for": edition.scheduled_for.isoformat(),
        "completed_at": edition.completed_at.isoformat() if edition.completed_at else None,
        **_tally_dict(edition.tally),
        "failure_reasons": [{"error": e, "count": n} for e, n in edition.failure_reasons],
        "empty_reason": edition.empty_reason,
        "sending_seconds": edition.span.seconds if edition.span else None,
        "messages_per_second": edition.span.per_second if edition.span else None,
        "hard_bounces": edition.returned.hard_bounces,
        "complaints": edition.returned.complaints,
    }


def _tally_dict(tally: DeliveryTally) -> dict[str, int]:
    return dict(tally.__dict__)


def _as_dict(report: status_service.StatusReport) -> dict[str, Any]:
    leader = report.leader
    return {
        "now": report.now.isoformat(),
        "next_run": report.next_run.isoformat(),
        "next_edition": report.next_edition,
        "next_send": report.next_send.isoformat(),
        "leader": None
        if leader is None
        else {"owner": leader.owner, "expires_at": leader.expires_at.isoformat()},
        "current": None if report.current is None else _edition_dict(report.current),
        "recent": [_edition_dict(e) for e in report.recent],
        "overdue": None if report.overdue is None else _week_dict(report.overdue),
        "skipped": [{**_week_dict(week), "note": note} for week, note in report.skipped],
    }


def _overview_dict(found: status_service.Overview) -> dict[str, Any]:
    readers, back = found.readers, found.returns
    return {
        **_as_dict(found.report),
        "readers": {
            "by_status": readers.by_status,
            "paused": readers.paused,
            "by_topic": {slug: n for slug, _, n in readers.by_topic},
            "growth": [{"at": at.isoformat(), "readers": n} for at, n in readers.growth],
        },
        "returns": {
            "days": back.days,
            "sent": back.sent,
            "hard_bounces": back.counts.hard_bounces,
            "complaints": back.counts.complaints,
            "bounce_rate": back.bounce_rate,
            "complaint_rate": back.complaint_rate,
        },
    }

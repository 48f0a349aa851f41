"""`send-now`, `preview` and `worker` through the real entry point, against a real
SMTP server: the summary, no repeats, dry runs and previews that record nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, inspect, select, text, update

from newsletter.mail.capture import CaptureServer
from newsletter.planning import planner
from newsletter.readers import subscriptions
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Delivery, DeliveryPaper, Edition, Paper, Subscriber
from newsletter.store.subscribers import add_subscriber
from tests.conftest import CliResult
from tests.delivery_helpers import add_papers, add_readers, configured, received_by
from tests.process_helpers import current_window_instant
from tests.smtp_faults import FaultHandler, fault_server

SUMMARY = re.compile(
    r"Edition (?P<key>\d{4}-W\d\d): planned (?P<planned>\d+) new deliver(?:y|ies); "
    r"sent (?P<sent>\d+), failed (?P<failed>\d+), skipped (?P<skipped>\d+), "
    r"retried (?P<retried>\d+) in (?P<seconds>[\d.]+)s \((?P<rate>[\d.]+) messages/second\)\."
)

Cli = Callable[..., CliResult]


@pytest.fixture
def faulty() -> Iterator[CaptureServer]:
    with fault_server() as server:
        yield server


@pytest.fixture
def cli(
    context: Runtime, config_file: Callable[..., Path], run_cli: Cli, faulty: CaptureServer
) -> Cli:
    """`newsletter --config … ARGS` on the `context` store, mailing the `faulty` server."""
    path = config_file(
        smtp={"host": faulty.host, "port": faulty.port, "connections": 2},
        delivery={"retry_base_seconds": 0.01},
        matching={"semantic": "off"},
    )
    return lambda *args: run_cli("--config", str(path), *args)


@pytest.fixture
def readers(context: Runtime) -> list[str]:
    add_papers(context, 20, current_window_instant(context))
    return add_readers(context, 4)


def words_only(context: Runtime) -> Runtime:
    return configured(context, matching={"semantic": "off"})


def summary(result: CliResult) -> dict[str, str]:
    assert result.exit_code == 0, result.stderr
    found = SUMMARY.search(" ".join(result.stdout.split()))
    assert found, result.stdout
    return found.groupdict()


def row_counts(context: Runtime) -> dict[str, int]:
    with db.transaction(context.sessions) as session:
        tables = inspect(session.get_bind()).get_table_names()
        return {
            t: int(session.scalar(select(func.count()).select_from(text(f'"{t}"'))) or 0)
            for t in tables
        }


def parsed(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_send_now_prints_a_summary_of_what_it_did(
    context: Runtime, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    handler = faulty.handler
    assert isinstance(handler, FaultHandler)
    handler.data_replies[readers[1]] = ["451 4.7.1 Greylisted"]
    handler.data_replies[readers[2]] = ["550 5.1.1 No such user"]
    planner.plan_edition(words_only(context))
    subscriptions.unsubscribe(context, readers[3])  # after planning: skipped
    found = summary(cli("send-now"))
    assert {k: found[k] for k in ("planned", "sent", "failed", "skipped", "retried")} == {
        "planned": "0",  # planned above already
        "sent": "2",
        "failed": "1",
        "skipped": "1",
        "retried": "1",
    }
    assert float(found["rate"]) > 0  # duration is printed to a tenth: may read 0.0s
    assert received_by(faulty) == {readers[0]: 1, readers[1]: 1}


def test_running_send_now_again_sends_nobody_the_edition_twice(
    context: Runtime, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    first = summary(cli("send-now"))
    assert (first["planned"], first["sent"]) == ("4", "4")
    with db.transaction(context.sessions) as session:  # joins after the first run
        add_subscriber(session, "late@example.org", status="active", topics=["llms"])
    second = summary(cli("send-now"))
    assert (second["key"], second["planned"], second["sent"]) == (first["key"], "1", "1")
    third = cli("send-now")
    assert third.exit_code == 0, third.stderr
    assert f"Edition {first['key']} is already complete" in " ".join(third.stdout.split())
    assert received_by(faulty) == dict.fromkeys([*readers, "late@example.org"], 1)


def test_send_now_with_compose_workers_mails_every_reader_once(
    cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    result = summary(cli("send-now", "--workers", "2"))
    assert (result["planned"], result["sent"], result["failed"]) == ("4", "4", "0")
    assert received_by(faulty) == dict.fromkeys(readers, 1)


def test_a_dry_run_sends_and_records_nothing(
    context: Runtime, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    before = row_counts(context)
    result = cli("send-now", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "4 messages would be sent" in result.stdout
    assert "nothing was sent or recorded" in result.stdout
    assert row_counts(context) == before and before["deliveries"] == 0
    assert faulty.messages == []


def test_send_now_to_one_address_sends_only_to_that_reader(
    context: Runtime, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    found = summary(cli("send-now", "--to", readers[2].upper()))
    assert (found["planned"], found["sent"]) == ("1", "1")
    assert received_by(faulty) == {readers[2]: 1}
    rest = summary(cli("send-now"))
    assert (rest["planned"], rest["sent"]) == ("3", "3")
    assert received_by(faulty) == dict.fromkeys(readers, 1)


def test_send_now_to_an_unknown_address_is_a_one_line_error(
    context: Runtime, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    before = row_counts(context)
    result = cli("send-now", "--to", "nobody@example.org")
    assert result.exit_code != 0
    assert "no subscriber with address nobody@example.org" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert row_counts(context) == before
    assert faulty.messages == []


def test_preview_writes_exactly_what_send_now_then_sends(
    context: Runtime, cli: Cli, readers: list[str], faulty: CaptureServer, tmp_path: Path
) -> None:
    html_file, eml_file = tmp_path / "digest.html", tmp_path / "digest.eml"
    reader = readers[1]
    before = row_counts(context)
    # One frozen instant: signed links and the Date header carry the time.
    with time_machine.travel(datetime.now(UTC), tick=False):
        shown = cli("preview", reader, "--html", str(html_file), "--text", "--eml", str(eml_file))
        assert shown.exit_code == 0, shown.stderr
        assert row_counts(context) == before  # a preview records nothing
        summary(cli("send-now"))
    (sent,) = [m for m in faulty.messages if reader in m.recipients]
    actual, previewed = parsed(sent.data), parsed(eml_file.read_bytes())
    assert body(actual, "html") == html_file.read_bytes().decode("utf-8")  # byte for byte
    assert body(actual, "plain").strip() == shown.stdout.strip()
    for header in ("Subject", "Message-ID", "From", "To", "List-Unsubscribe"):
        assert previewed[header] == actual[header], header
    assert body(previewed, "html") == body(actual, "html")


def test_preview_of_an_unknown_address_is_a_one_line_error(cli: Cli, readers: list[str]) -> None:
    result = cli("preview", "nobody@example.org")
    assert result.exit_code != 0
    assert "no subscriber with address nobody@example.org" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def plan_due(context: Runtime, **changes: Any) -> None:
    planner.plan_edition(words_only(context))
    with db.transaction(context.sessions) as session:  # due a minute ago, whatever the day
        due = datetime.now(UTC) - timedelta(minutes=1)
        session.execute(update(Delivery).values(next_attempt_at=due, **changes))


def test_worker_drains_due_deliveries_and_leaves_later_ones(
    context: Runtime, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    plan_due(context)
    later = readers[0]
    with db.transaction(context.sessions) as session:
        later_id = session.scalar(select(Subscriber.id).where(Subscriber.email == later))
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == later_id)
            .values(next_attempt_at=datetime.now(UTC) + timedelta(days=1))
        )
    result = cli("worker")
    assert result.exit_code == 0, result.stderr
    assert "Worker: sent 3, failed 0, skipped 0, retried 0" in " ".join(result.stdout.split())
    assert received_by(faulty) == dict.fromkeys(readers[1:], 1)
    with db.transaction(context.sessions) as session:
        waiting = session.scalar(select(Delivery.status).where(Delivery.subscriber_id == later_id))
    assert waiting == "queued"
    again = cli("worker")
    assert "Worker: sent 0" in again.stdout


# --- the week's window, completion, and why nothing is sent ----------------------------

MONDAY_SEND = datetime(2026, 11, 23, 8, tzinfo=UTC)  # 2026-W48's send time (UTC)
TUESDAY = datetime(2026, 11, 24, 9, tzinfo=UTC)
WEDNESDAY = datetime(2026, 11, 25, 12, tzinfo=UTC)
THURSDAY = datetime(2026, 11, 26, 9, tzinfo=UTC)
FRIDAY = datetime(2026, 11, 27, 12, tzinfo=UTC)


def one_line(result: CliResult) -> str:
    return " ".join(result.stdout.split())


def edition_papers(context: Runtime, key: str) -> dict[str, set[int]]:
    """Each reader's papers in edition `key`."""
    query = (
        select(Subscriber.email, DeliveryPaper.paper_id)
        .join(Delivery, Delivery.id == DeliveryPaper.delivery_id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Edition.key == key)
    )
    found: dict[str, set[int]] = {}
    with db.transaction(context.sessions) as session:
        for email, paper_id in session.execute(query):
            found.setdefault(email, set()).add(paper_id)
    return found


def paper_ids_listed_from(context: Runtime, start: datetime) -> set[int]:
    with db.transaction(context.sessions) as session:
        return set(session.scalars(select(Paper.id).where(Paper.listed_at >= start)))


def test_preview_and_send_now_cover_papers_listed_after_the_weeks_send_time(
    context: Runtime, cli: Cli, faulty: CaptureServer
) -> None:
    add_papers(context, 6, TUESDAY)  # after Monday's send time, before the run
    readers = add_readers(context, 2)
    with time_machine.travel(WEDNESDAY, tick=True):
        shown = cli("preview", readers[0])
        assert shown.exit_code == 0, shown.stderr
        assert "Edition 2026-W48" in shown.stdout
        assert "Paper 0 on large language model" in shown.stdout
        dry = cli("send-now", "--dry-run")
        assert dry.exit_code == 0, dry.stderr
        assert "2 messages would be sent" in one_line(dry)
        sent = summary(cli("send-now"))
    assert (sent["key"], sent["sent"]) == ("2026-W48", "2")
    assert received_by(faulty) == dict.fromkeys(readers, 1)


def test_after_a_midweek_send_now_the_next_edition_continues_and_nothing_is_sent_twice(
    context: Runtime, cli: Cli, faulty: CaptureServer
) -> None:
    add_papers(context, 6, TUESDAY)
    readers = add_readers(context, 2)
    with time_machine.travel(WEDNESDAY, tick=True):
        summary(cli("send-now"))
    add_papers(context, 6, THURSDAY)  # after this week's edition went out
    with time_machine.travel(FRIDAY, tick=True):
        again = cli("send-now")
        assert again.exit_code == 0, again.stderr
        assert "Edition 2026-W48 is already complete" in one_line(again)
        assert "waiting for the next edition (2026-W49): 6" in one_line(again)
        shown = cli("preview", readers[0])
        assert shown.exit_code == 0, shown.stderr
        assert "Edition 2026-W49" in shown.stdout
    assert received_by(faulty) == dict.fromkeys(readers, 1)
    # The scheduled run of next week picks up exactly the papers listed since.
    ahead = MONDAY_SEND + timedelta(days=7, hours=-14)  # as the scheduler plans ahead
    planner.plan_edition(words_only(context), ahead, key="2026-W49")
    first, second = edition_papers(context, "2026-W48"), edition_papers(context, "2026-W49")
    thursday_papers = paper_ids_listed_from(context, THURSDAY - timedelta(hours=1))
    for reader in readers:
        assert second[reader] and second[reader] <= thursday_papers
        assert not first[reader] & second[reader]


def test_send_now_with_no_paper_in_the_window_fails_with_the_reason_then_fills_later(
    context: Runtime, cli: Cli, faulty: CaptureServer
) -> None:
    add_papers(context, 3, datetime(2026, 9, 1, 9, tzinfo=UTC))  # an old ingest only
    readers = add_readers(context, 2)
    with time_machine.travel(WEDNESDAY, tick=True):
        dry = cli("send-now", "--dry-run")
        failed = cli("send-now")
    for result in (dry, failed):
        assert result.exit_code == 1
        assert "no paper was listed in the window of edition 2026-W48" in result.stderr
        assert "the newest was 2026-09-01" in result.stderr
        assert "newsletter ingest" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert faulty.messages == []
    add_papers(context, 6, WEDNESDAY + timedelta(hours=2))  # ingested after that run
    with time_machine.travel(WEDNESDAY + timedelta(hours=3), tick=True):
        sent = summary(cli("send-now"))
    assert (sent["key"], sent["sent"]) == ("2026-W48", "2")
    assert received_by(faulty) == dict.fromkeys(readers, 1)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "unsubscribed"}, "has unsubscribed"),
        ({"status": "pending"}, "has not confirmed the subscription yet"),
        ({"status": "bounced"}, "is marked bounced"),
        ({"paused": True}, "has paused their digest"),
    ],
)
def test_preview_names_the_one_reason_a_reader_gets_nothing(
    context: Runtime, cli: Cli, change: dict[str, Any], reason: str
) -> None:
    add_papers(context, 6, current_window_instant(context))
    (reader,) = add_readers(context, 1)
    with db.transaction(context.sessions) as session:
        session.execute(update(Subscriber).where(Subscriber.email == reader).values(**change))
    result = cli("preview", reader)
    assert result.exit_code == 1
    assert f"{reader} {reason}" in result.stderr
    assert "Traceback" not in result.stderr


def test_preview_says_when_nothing_in_the_window_matched(context: Runtime, cli: Cli) -> None:
    add_papers(context, 6, current_window_instant(context))
    (reader,) = add_readers(context, 1, topics=(), interests=["protein folding in yeast"])
    result = cli("preview", reader)
    assert result.exit_code == 1
    assert "none of the 6 papers listed in the window" in result.stderr
    assert f"matched {reader}'s topics and interests" in result.stderr


def test_send_now_exits_non_zero_when_the_edition_pauses(
    context: Runtime, config_file: Callable[..., Path], run_cli: Cli, faulty: CaptureServer
) -> None:
    add_papers(context, 6, current_window_instant(context))
    readers = add_readers(context, 12)
    handler = faulty.handler
    assert isinstance(handler, FaultHandler)
    for reader in readers:
        handler.data_replies[reader] = ["550 5.1.1 No such user"]
    path = config_file(
        smtp={"host": faulty.host, "port": faulty.port, "connections": 1},
        delivery={"failure_window": 10, "failure_threshold": 0.05},
        matching={"semantic": "off"},
    )
    result = run_cli("--config", str(path), "send-now")
    assert result.exit_code == 1, result.stdout
    assert "Edition paused" in one_line(result)


def test_a_reader_who_picked_nothing_is_sent_the_general_trending_digest(
    context: Runtime, cli: Cli, faulty: CaptureServer
) -> None:
    add_papers(context, 20, current_window_instant(context))
    with db.transaction(context.sessions) as session:
        add_subscriber(session, "ada@example.org", status="active")
    assert summary(cli("send-now"))["sent"] == "1"
    [received] = faulty.messages
    message = message_from_bytes(received.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        assert part is not None
        body = str(part.get_content())  # type: ignore[attr-defined]
        assert "general trending digest" in body and "Trending this week" in body

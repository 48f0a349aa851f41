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

from newsletter import db, digest, subscriptions
from newsletter.context import Context
from newsletter.models import Delivery, Subscriber
from newsletter.smtpcapture import CaptureServer
from newsletter.store.subscribers import add_subscriber
from tests.conftest import CliResult
from tests.delivery_helpers import add_papers, add_readers, configured, received_by
from tests.process_helpers import current_window_instant
from tests.smtp_faults import FaultHandler, fault_server

SUMMARY = re.compile(
    r"Edition (?P<key>\d{4}-W\d\d): planned (?P<planned>\d+) new delivery\(ies\); "
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
    context: Context, config_file: Callable[..., Path], run_cli: Cli, faulty: CaptureServer
) -> Cli:
    """`newsletter --config … ARGS` on the `context` store, mailing the `faulty` server."""
    path = config_file(
        smtp={"host": faulty.host, "port": faulty.port, "connections": 2},
        delivery={"retry_base_seconds": 0.01},
        matching={"semantic": "off"},
    )
    return lambda *args: run_cli("--config", str(path), *args)


@pytest.fixture
def readers(context: Context) -> list[str]:
    add_papers(context, 20, current_window_instant(context))
    return add_readers(context, 4)


def words_only(context: Context) -> Context:
    return configured(context, matching={"semantic": "off"})


def summary(result: CliResult) -> dict[str, str]:
    assert result.exit_code == 0, result.stderr
    found = SUMMARY.search(" ".join(result.stdout.split()))
    assert found, result.stdout
    return found.groupdict()


def row_counts(context: Context) -> dict[str, int]:
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
    context: Context, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    handler = faulty.handler
    assert isinstance(handler, FaultHandler)
    handler.data_replies[readers[1]] = ["451 4.7.1 Greylisted"]
    handler.data_replies[readers[2]] = ["550 5.1.1 No such user"]
    digest.plan_edition(words_only(context))
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
    context: Context, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    first = summary(cli("send-now"))
    assert (first["planned"], first["sent"]) == ("4", "4")
    with db.transaction(context.sessions) as session:  # joins after the first run
        add_subscriber(session, "late@example.org", status="active", topics=["llms"])
    second = summary(cli("send-now"))
    assert (second["key"], second["planned"], second["sent"]) == (first["key"], "1", "1")
    third = summary(cli("send-now"))
    assert (third["planned"], third["sent"]) == ("0", "0")
    assert received_by(faulty) == dict.fromkeys([*readers, "late@example.org"], 1)


def test_send_now_with_compose_workers_mails_every_reader_once(
    cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    result = summary(cli("send-now", "--workers", "2"))
    assert (result["planned"], result["sent"], result["failed"]) == ("4", "4", "0")
    assert received_by(faulty) == dict.fromkeys(readers, 1)


def test_a_dry_run_sends_and_records_nothing(
    context: Context, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    before = row_counts(context)
    result = cli("send-now", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "4 message(s) would be sent" in result.stdout
    assert "nothing was sent or recorded" in result.stdout
    assert row_counts(context) == before and before["deliveries"] == 0
    assert faulty.messages == []


def test_send_now_to_one_address_sends_only_to_that_reader(
    context: Context, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    found = summary(cli("send-now", "--to", readers[2].upper()))
    assert (found["planned"], found["sent"]) == ("1", "1")
    assert received_by(faulty) == {readers[2]: 1}
    rest = summary(cli("send-now"))
    assert (rest["planned"], rest["sent"]) == ("3", "3")
    assert received_by(faulty) == dict.fromkeys(readers, 1)


def test_send_now_to_an_unknown_address_is_a_one_line_error(
    context: Context, cli: Cli, readers: list[str], faulty: CaptureServer
) -> None:
    before = row_counts(context)
    result = cli("send-now", "--to", "nobody@example.org")
    assert result.exit_code != 0
    assert "no subscriber with address nobody@example.org" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert row_counts(context) == before
    assert faulty.messages == []


def test_preview_writes_exactly_what_send_now_then_sends(
    context: Context, cli: Cli, readers: list[str], faulty: CaptureServer, tmp_path: Path
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


def plan_due(context: Context, **changes: Any) -> None:
    digest.plan_edition(words_only(context))
    with db.transaction(context.sessions) as session:  # due a minute ago, whatever the day
        due = datetime.now(UTC) - timedelta(minutes=1)
        session.execute(update(Delivery).values(next_attempt_at=due, **changes))


def test_worker_drains_due_deliveries_and_leaves_later_ones(
    context: Context, cli: Cli, readers: list[str], faulty: CaptureServer
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


def test_a_reader_who_picked_nothing_is_sent_the_general_trending_digest(
    context: Context, cli: Cli, faulty: CaptureServer
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

"""Subscribing, unsubscribing and importing readers, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter import db, subscriptions
from newsletter.context import Context
from newsletter.errors import InvalidInput, NotFound
from newsletter.store import subscribers as store


def test_a_new_reader_is_pending_until_confirmed(any_context: Context) -> None:
    result = subscriptions.subscribe(any_context, "Ada@Example.org", ["llms"])
    assert result.created and result.needs_confirmation
    assert result.subscriber.email == "ada@example.org"
    assert result.subscriber.status == "pending"
    assert result.subscriber.topics == ("llms",)


def test_the_same_address_in_another_case_is_one_subscriber(any_context: Context) -> None:
    subscriptions.subscribe(any_context, "ada@example.org", ["llms"], confirmed=True)
    again = subscriptions.subscribe(any_context, "ADA@EXAMPLE.ORG", ["vision"])
    assert not again.created
    assert again.subscriber.status == "active"
    assert again.subscriber.topics == ("vision",)
    assert [s.email for s in subscriptions.list_all(any_context)] == ["ada@example.org"]


def test_an_unknown_topic_is_refused_and_nothing_is_written(any_context: Context) -> None:
    with pytest.raises(InvalidInput, match="unknown topic 'astrology'"):
        subscriptions.subscribe(any_context, "ada@example.org", ["llms", "astrology"])
    assert subscriptions.list_all(any_context) == []


def test_free_text_interests_are_kept_as_inert_single_line_text(any_context: Context) -> None:
    result = subscriptions.subscribe(
        any_context, "ada@example.org", interests=["  diffusion\r\nmodels  ", "<script>x</script>"]
    )
    assert result.subscriber.interests == ("diffusion models", "<script>x</script>")


def test_unsubscribing_an_unknown_address_says_so(any_context: Context) -> None:
    with pytest.raises(NotFound, match="no subscriber"):
        subscriptions.unsubscribe(any_context, "nobody@example.org")


def test_an_unsubscribed_reader_who_returns_must_confirm_again(any_context: Context) -> None:
    subscriptions.subscribe(any_context, "ada@example.org", ["llms"], confirmed=True)
    assert subscriptions.unsubscribe(any_context, "ada@example.org").status == "unsubscribed"
    back = subscriptions.subscribe(any_context, "ada@example.org", ["llms"])
    assert back.subscriber.status == "pending" and back.needs_confirmation


def test_import_loads_good_rows_and_reports_bad_ones_by_line(
    any_context: Context, tmp_path: Path
) -> None:
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(
        "email,topics\n"
        "ada@example.org,llms;vision\n"
        "not-an-address,llms\n"
        "grace@example.org,astrology\n"
        "ALAN@example.org,\n",
        encoding="utf-8",
    )
    report = subscriptions.import_csv(any_context, csv_file)
    assert (report.added, report.updated) == (2, 0)
    assert [p.split(":")[0] for p in report.problems] == ["line 3", "line 4"]
    people = {p.email: p for p in subscriptions.list_all(any_context)}
    assert set(people) == {"ada@example.org", "alan@example.org"}
    assert people["ada@example.org"].topics == ("llms", "vision")
    assert people["ada@example.org"].status == "active"


def test_import_without_an_email_column_is_refused(context: Context, tmp_path: Path) -> None:
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("address,topics\nada@example.org,llms\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="'email' column"):
        subscriptions.import_csv(context, csv_file)


def test_subscribing_again_with_the_same_interests_keeps_them(any_context: Context) -> None:
    subscriptions.subscribe(
        any_context, "ada@example.org", ["llms"], ["video diffusion"], confirmed=True
    )
    again = subscriptions.subscribe(
        any_context, "ada@example.org", ["llms", "vision"], ["video diffusion", "robotics"]
    )
    assert again.subscriber.topics == ("llms", "vision")
    assert again.subscriber.interests == ("video diffusion", "robotics")


def test_at_most_one_confirmation_per_address_within_the_cooldown(any_context: Context) -> None:
    now = datetime(2026, 11, 26, 9, tzinfo=UTC)
    first = subscriptions.request_subscription(any_context, "ada@example.org", ["llms"], now=now)
    again = subscriptions.request_subscription(
        any_context, "ADA@example.org", ["llms"], now=now + timedelta(minutes=1)
    )
    later = subscriptions.request_subscription(
        any_context, "ada@example.org", ["llms"], now=now + timedelta(hours=25)
    )
    assert (first.send_confirmation, again.send_confirmation, later.send_confirmation) == (
        True,
        False,
        True,
    )


def test_a_cooldown_claim_given_back_lets_the_next_request_send(any_context: Context) -> None:
    first = subscriptions.request_subscription(any_context, "ada@example.org", ["llms"])
    assert first.send_confirmation and first.claimed_at is not None
    assert not subscriptions.request_subscription(any_context, "ada@example.org").send_confirmation
    with db.transaction(any_context.sessions) as session:
        sid = first.subscriber.id
        assert store.release_confirmation(session, sid, first.claimed_at)
        assert not store.release_confirmation(session, sid, first.claimed_at)  # not ours now
    assert subscriptions.request_subscription(any_context, "ada@example.org").send_confirmation


def test_purging_keeps_a_returning_reader_whose_confirmation_is_owed(
    any_context: Context,
) -> None:
    subscriptions.subscribe(any_context, "ada@example.org", ["llms"], confirmed=True)
    subscriptions.unsubscribe(any_context, "ada@example.org")
    back = subscriptions.request_subscription(any_context, "ada@example.org", ["llms"])
    assert back.claimed_at is not None
    with db.transaction(any_context.sessions) as session:
        store.release_confirmation(session, back.subscriber.id, back.claimed_at)
        reader = store.get_subscriber_by_id(session, back.subscriber.id)
        assert reader is not None
        reader.created_at = datetime.now(UTC) - timedelta(days=30)
    assert subscriptions.purge_pending(any_context) == 0
    with db.transaction(any_context.sessions) as session:
        owed = store.owed_confirmations(session, datetime.now(UTC) - timedelta(days=7), 10)
        assert [s.email for s in owed] == ["ada@example.org"]

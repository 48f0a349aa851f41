"""Subscribing, unsubscribing and importing readers, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.errors import InvalidInput, NotFound
from newsletter.readers import subscriptions
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import subscribers as store


def test_a_new_reader_is_pending_until_confirmed(any_context: Runtime) -> None:
    result = subscriptions.subscribe(any_context, "Ada@Example.org", ["llms"])
    assert result.created and result.needs_confirmation
    assert result.subscriber.email == "ada@example.org"
    assert result.subscriber.status == "pending"
    assert result.subscriber.topics == ("llms",)


def test_the_same_address_in_another_case_is_one_subscriber(any_context: Runtime) -> None:
    subscriptions.subscribe(any_context, "ada@example.org", ["llms"], confirmed=True)
    again = subscriptions.subscribe(any_context, "ADA@EXAMPLE.ORG", ["vision"])
    assert not again.created
    assert again.subscriber.status == "active"
    assert again.subscriber.topics == ("vision",)
    assert [s.email for s in subscriptions.list_all(any_context)] == ["ada@example.org"]


def test_an_unknown_topic_is_refused_and_nothing_is_written(any_context: Runtime) -> None:
    with pytest.raises(InvalidInput, match="unknown topic 'astrology'"):
        subscriptions.subscribe(any_context, "ada@example.org", ["llms", "astrology"])
    assert subscriptions.list_all(any_context) == []


def test_free_text_interests_are_kept_as_inert_single_line_text(any_context: Runtime) -> None:
    result = subscriptions.subscribe(
        any_context, "ada@example.org", interests=["  diffusion\r\nmodels  ", "<script>x</script>"]
    )
    assert result.subscriber.interests == ("diffusion models", "<script>x</script>")


def test_unsubscribing_an_unknown_address_says_so(any_context: Runtime) -> None:
    with pytest.raises(NotFound, match="no subscriber"):
        subscriptions.unsubscribe(any_context, "nobody@example.org")


def test_an_unsubscribed_reader_who_returns_must_confirm_again(any_context: Runtime) -> None:
    subscriptions.subscribe(any_context, "ada@example.org", ["llms"], confirmed=True)
    assert subscriptions.unsubscribe(any_context, "ada@example.org").status == "unsubscribed"
    back = subscriptions.subscribe(any_context, "ada@example.org", ["llms"])
    assert back.subscriber.status == "pending" and back.needs_confirmation


def test_import_loads_good_rows_and_reports_bad_ones_by_line(
    any_context: Runtime, tmp_path: Path
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


def test_import_without_an_email_column_is_refused(context: Runtime, tmp_path: Path) -> None:
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("address,topics\nada@example.org,llms\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="'email' column"):
        subscriptions.import_csv(context, csv_file)


def test_subscribing_again_with_the_same_interests_keeps_them(any_context: Runtime) -> None:
    subscriptions.subscribe(
        any_context, "ada@example.org", ["llms"], ["video diffusion"], confirmed=True
    )
    again = subscriptions.subscribe(
        any_context, "ada@example.org", ["llms", "vision"], ["video diffusion", "robotics"]
    )
    assert again.subscriber.topics == ("llms", "vision")
    assert again.subscriber.interests == ("video diffusion", "robotics")


def test_at_most_one_confirmation_per_address_within_the_cooldown(any_context: Runtime) -> None:
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


def test_a_cooldown_claim_given_back_lets_the_next_request_send(any_context: Runtime) -> None:
    first = subscriptions.request_subscription(any_context, "ada@example.org", ["llms"])
    assert first.send_confirmation and first.claimed_at is not None
    assert not subscriptions.request_subscription(any_context, "ada@example.org").send_confirmation
    with db.transaction(any_context.sessions) as session:
        sid = first.subscriber.id
        assert store.release_confirmation(session, sid, first.claimed_at)
        assert not store.release_confirmation(session, sid, first.claimed_at)  # not ours now
    assert subscriptions.request_subscription(any_context, "ada@example.org").send_confirmation


def test_purging_keeps_a_returning_reader_whose_confirmation_is_owed(
    any_context: Runtime,
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


def _large_import(path: Path, count: int) -> dict[int, str]:
    """`count` rows for reader0…, with bad and repeated rows mixed in; returns the
    expected problem of each bad line, by line number."""
    topics = ["llms", "vision", "memory"]
    bad: dict[int, str] = {}
    lines = ["email,topics,interests"]
    for i in range(count):
        picked = sorted({topics[i % 3], topics[(i // 3) % 3]})
        typed = [] if i % 4 == 0 else [f"subject {i % 40}", "keep b"][: 1 + i % 2]
        lines.append(f"reader{i}@example.org,{';'.join(picked)},{';'.join(typed)}")
        if i % 400 == 7:  # a bad row, a repeated address in another case, an unknown topic
            bad[len(lines) + 1] = "invalid email address"
            lines.append(f"reader{i}-at-example.org,llms,")
            bad[len(lines) + 1] = f"reader{i}@example.org is already on line {len(lines) - 1}"
            lines.append(f"Reader{i}@EXAMPLE.org,vision,other")
            bad[len(lines) + 1] = "unknown topic 'astrology'"
            lines.append(f"someone{i}@example.org,astrology,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bad


def _expected_interests(i: int, before: tuple[str, ...]) -> tuple[str, ...]:
    """What replacing `before` with row i's interests leaves, in the store's order:
    the texts kept from before first (as they were), then the new ones as typed."""
    typed = [] if i % 4 == 0 else [f"subject {i % 40}", "keep b"][: 1 + i % 2]
    return tuple([t for t in before if t in typed] + [t for t in typed if t not in before])


def test_a_large_import_gives_each_row_what_importing_it_alone_would(
    any_context: Runtime, tmp_path: Path
) -> None:
    # Known readers first: active, unsubscribed and paused ones, with typed interests.
    for i in range(0, 2_000, 5):
        subscriptions.subscribe(
            any_context, f"reader{i}@example.org", ["memory"], ["old a", "keep b"], confirmed=True
        )
        if i % 3 == 0:
            subscriptions.unsubscribe(any_context, f"reader{i}@example.org")
    csv_file = tmp_path / "readers.csv"
    bad = _large_import(csv_file, 2_000)

    report = subscriptions.import_csv(any_context, csv_file)

    assert (report.added, report.updated) == (1_600, 400)
    assert len(report.problems) == len(bad) == 15
    for problem, (line, cause) in zip(report.problems, sorted(bad.items()), strict=True):
        assert problem.startswith(f"line {line}: ") and cause in problem
    people = {p.email: p for p in subscriptions.list_all(any_context)}
    assert len(people) == 2_000
    topics = ["llms", "vision", "memory"]
    for i in range(2_000):
        person = people[f"reader{i}@example.org"]
        known = i % 5 == 0
        expected_status = "unsubscribed" if known and i % 3 == 0 else "active"
        before = ("old a", "keep b") if known else ()
        assert person.status == expected_status, person
        assert person.topics == tuple(sorted({topics[i % 3], topics[(i // 3) % 3]})), person
        assert person.interests == _expected_interests(i, before), person


def test_an_import_without_an_interests_column_keeps_what_readers_typed(
    any_context: Runtime, tmp_path: Path
) -> None:
    subscriptions.subscribe(
        any_context, "ada@example.org", ["memory"], ["old a", "keep b"], confirmed=True
    )
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email,topics\nada@example.org,llms;vision\nalan@example.org,\n")

    report = subscriptions.import_csv(any_context, csv_file)

    assert (report.added, report.updated, report.problems) == (1, 1, [])
    people = {p.email: p for p in subscriptions.list_all(any_context)}
    assert people["ada@example.org"].topics == ("llms", "vision")
    assert people["ada@example.org"].interests == ("old a", "keep b")
    assert people["alan@example.org"].interests == ()
    assert people["alan@example.org"].status == "active"


def test_imported_interests_keep_quotes_backslashes_and_braces_exactly(
    any_context: Runtime, tmp_path: Path
) -> None:
    typed = ['say "hi"', "back\\slash", "{a,b}", "NULL", "  ", "naïve Bayes"]
    csv_file = tmp_path / "readers.csv"
    quoted = ";".join(typed).replace('"', '""')
    csv_file.write_text(f'email,topics,interests\nada@example.org,llms,"{quoted}"\n')

    subscriptions.import_csv(any_context, csv_file)

    (ada,) = subscriptions.list_all(any_context)
    assert ada.interests == ('say "hi"', "back\\slash", "{a,b}", "NULL", "naïve Bayes")

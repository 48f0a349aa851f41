"""The admin dashboard's reader pages over HTTP: find, export as JSON, erase, preview."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import examples as examples_store
from newsletter.store import returns as returns_store
from newsletter.store.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryPaper,
    MailEvent,
    Paper,
    ReaderPaper,
    Subscriber,
    SubscriberInterest,
    SubscriberTopic,
)
from newsletter.store.statuses import Feeling, MailEventKind, MailEventSource, Origin
from tests.admin_support import (
    add_fresh_papers,
    csrf_of,
    sent_edition,
    signed_in,
)
from tests.delivery_helpers import add_readers


@pytest.fixture
def site(admin_site: Callable[..., tuple[Runtime, TestClient]]) -> tuple[Runtime, TestClient]:
    return admin_site()


def test_an_admin_finds_readers_by_part_of_their_address(
    site: tuple[Runtime, TestClient],
) -> None:
    context, client = signed_in(site)
    add_readers(context, 12)
    found = client.get("/admin/readers", params={"q": "READER0001"})
    assert found.status_code == 200
    assert re.findall(r">(reader\d+@example\.org)<", found.text) == [
        f"reader{i:05d}@example.org" for i in range(10, 12)
    ]
    none = client.get("/admin/readers", params={"q": "%"})
    assert "No reader’s address contains “%”." in none.text  # a wildcard matches itself


def test_untrusted_reader_text_is_escaped_on_the_admin_pages(
    site: tuple[Runtime, TestClient],
) -> None:
    context, client = signed_in(site)
    add_readers(context, 1, interests=["<script>alert(1)</script>"])
    page = client.get("/admin/readers/1")
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def _add_marks_and_events(context: Runtime, email: str) -> None:
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        target = returns_store.target_of_email(session, email)
        assert target is not None
        paper = session.scalar(select(Paper.id).order_by(Paper.id.desc()).limit(1))
        examples_store.set_feeling(
            session, target.subscriber_id, paper, Feeling.LIKE, Origin.GIVEN, now
        )
        returns_store.add_event(
            session, MailEventKind.SOFT_BOUNCE, MailEventSource.SMTP, target, "mailbox full", now
        )


def test_the_export_holds_everything_stored_about_the_reader(
    site: tuple[Runtime, TestClient],
) -> None:
    context, client = signed_in(site)
    emails = sent_edition(context, readers=2)
    _add_marks_and_events(context, emails[0])
    response = client.get("/admin/readers/1/export.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "attachment" in response.headers["content-disposition"]
    data = response.json()
    assert data["profile"]["email"] == emails[0] and data["profile"]["status"] == "active"
    assert data["topics"] == ["llms"] and data["interests"] == []
    [example] = data["example_papers"]
    assert example["feeling"] == "like" and example["title"].startswith("Paper ")
    [delivery] = data["deliveries"]
    assert delivery["status"] == "sent" and delivery["message_id"]
    assert delivery["papers"] and all(
        p["external_id"].startswith("arxiv:") for p in delivery["papers"]
    )
    [event] = data["mail_events"]
    assert (event["kind"], event["detail"]) == ("soft_bounce", "mailbox full")
    assert event["edition"] == delivery["edition"]
    assert client.get("/admin/readers/999/export.json").status_code == 404


def _rows_of(context: Runtime, subscriber_id: int) -> dict[str, int]:
    theirs = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    queries = {
        "subscribers": select(func.count()).where(Subscriber.id == subscriber_id),
        "topics": select(func.count()).where(SubscriberTopic.subscriber_id == subscriber_id),
        "interests": select(func.count()).where(SubscriberInterest.subscriber_id == subscriber_id),
        "marks": select(func.count()).where(ReaderPaper.subscriber_id == subscriber_id),
        "deliveries": select(func.count()).where(Delivery.subscriber_id == subscriber_id),
        "papers": select(func.count()).where(DeliveryPaper.subscriber_id == subscriber_id),
        "attempts": select(func.count()).where(DeliveryAttempt.delivery_id.in_(theirs)),
        "events": select(func.count()).where(MailEvent.subscriber_id == subscriber_id),
    }
    with db.transaction(context.sessions) as session:
        return {name: int(session.scalar(q) or 0) for name, q in queries.items()}


def test_deleting_a_reader_removes_all_their_rows_and_nobody_elses(
    site: tuple[Runtime, TestClient],
) -> None:
    context, client = signed_in(site)
    emails = sent_edition(context, readers=2)
    _add_marks_and_events(context, emails[0])
    _add_marks_and_events(context, emails[1])
    with db.transaction(context.sessions) as session:
        session.add(SubscriberInterest(subscriber_id=1, text="sparse attention"))
    before, other = _rows_of(context, 1), _rows_of(context, 2)
    assert all(before.values()), before  # every kind of row exists, so each deletion counts
    token = csrf_of(client.get("/admin/readers/1"))

    unconfirmed = client.post("/admin/readers/1/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and _rows_of(context, 1) == before
    forged = client.post("/admin/readers/1/delete", data={"csrf_token": "a.b.c", "confirm": "yes"})
    assert forged.status_code == 403 and _rows_of(context, 1) == before

    done = client.post(
        "/admin/readers/1/delete",
        data={"csrf_token": token, "confirm": "yes"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert set(_rows_of(context, 1).values()) == {0}
    assert _rows_of(context, 2) == other
    assert client.get("/admin/readers/1").status_code == 404
    again = client.post("/admin/readers/1/delete", data={"csrf_token": token, "confirm": "yes"})
    assert again.status_code == 404


def test_the_preview_shows_the_readers_next_email_in_a_sandboxed_frame(
    site: tuple[Runtime, TestClient],
) -> None:
    context, client = signed_in(site)
    add_readers(context, 1)
    add_fresh_papers(context)
    page = client.get("/admin/readers/1/preview")
    assert page.status_code == 200
    assert re.search(r'<iframe [^>]*sandbox src="/admin/readers/1/preview/email"', page.text)
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    email = client.get("/admin/readers/1/preview/email")
    assert email.status_code == 200 and "Paper " in email.text
    policy = email.headers["content-security-policy"]
    assert "sandbox" in policy and "script-src" not in policy
    assert email.headers["x-frame-options"] == "SAMEORIGIN"
    with db.transaction(context.sessions) as session:  # a preview records nothing
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0

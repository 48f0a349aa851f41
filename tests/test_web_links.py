"""The signed links: confirm, preferences and unsubscribe (with RFC 8058 one-click)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from newsletter.mail.capture import CaptureServer
from newsletter.readers import subscriptions
from newsletter.store import db
from newsletter.store.models import Subscriber
from newsletter.tokens import make_token
from tests.web_support import Rig, csrf_of, link, rig, subscribe, tampered

SECRET = "test-secret-key-0123456789"


@pytest.fixture
def web(tmp_path: Path, smtp_server: CaptureServer) -> Iterator[Rig]:
    with rig(tmp_path, smtp_server) as r:
        yield r


def status(web: Rig, subscriber_id: int) -> str:
    return subscriptions.get_preferences(web.context, subscriber_id).status


def active_reader(web: Rig, address: str = "ada@example.org") -> int:
    return subscriptions.subscribe(web.context, address, ["llms"], confirmed=True).subscriber.id


def post_form(web: Rig, path: str, **fields: object) -> object:
    token = csrf_of(web.client.get(path))
    return web.client.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)


# --- confirm -----------------------------------------------------------------------


def test_an_unsubscribed_readers_old_confirm_link_says_they_unsubscribed(web: Rig) -> None:
    subscribe(web.client, "ada@example.org")
    path = link(web.smtp.messages[0], "confirm")
    token = csrf_of(web.client.get(path))
    web.client.post(path, data={"csrf_token": token})
    subscriptions.unsubscribe(web.context, "ada@example.org")
    for page in (web.client.get(path), web.client.post(path, data={"csrf_token": token})):
        assert "You unsubscribed" in page.text and "subscribe again" in page.text
        assert "expired" not in page.text
    assert subscriptions.list_all(web.context)[0].status == "unsubscribed"


def test_following_the_confirm_link_changes_nothing_until_the_button(web: Rig) -> None:
    subscribe(web.client, "ada@example.org")
    path = link(web.smtp.messages[0], "confirm")
    page = web.client.get(path)
    assert page.status_code == 200 and "Yes, subscribe me" in page.text
    [reader] = subscriptions.list_all(web.context)
    assert reader.status == "pending"


def test_the_confirm_button_activates_and_sends_the_welcome(web: Rig) -> None:
    subscribe(web.client, "ada@example.org")
    path = link(web.smtp.messages[0], "confirm")
    token = csrf_of(web.client.get(path))
    done = web.client.post(path, data={"csrf_token": token})
    assert done.status_code == 200 and "subscribed" in done.text
    assert "/preferences/" in done.text
    [reader] = subscriptions.list_all(web.context)
    assert reader.status == "active"
    assert len(web.smtp.messages) == 2 and "/unsubscribe/" in web.smtp.messages[1].data.decode()
    # a second click is harmless and sends nothing more
    again = web.client.post(path, data={"csrf_token": token})
    assert again.status_code == 200 and "already subscribed" in again.text
    assert len(web.smtp.messages) == 2


def test_confirming_needs_the_csrf_token(web: Rig) -> None:
    subscribe(web.client, "ada@example.org")
    path = link(web.smtp.messages[0], "confirm")
    web.client.get(path)
    assert web.client.post(path, data={"email": "x"}).status_code == 403
    assert subscriptions.list_all(web.context)[0].status == "pending"


def test_an_expired_confirm_link_gets_a_friendly_page_to_start_again(web: Rig) -> None:
    subscribe(web.client, "ada@example.org")
    path = link(web.smtp.messages[0], "confirm")
    with time_machine.travel(datetime.now(UTC) + timedelta(days=8)):
        token = csrf_of(web.client.get("/"))
        page = web.client.get(path)
        assert page.status_code == 404 and "expired" in page.text and 'href="/"' in page.text
        posted = web.client.post(path, data={"csrf_token": token})
        assert posted.status_code == 404
    assert subscriptions.list_all(web.context)[0].status == "pending"


@pytest.mark.parametrize("purpose", ["confirm", "preferences", "unsubscribe"])
def test_a_tampered_link_is_not_valid(web: Rig, purpose: str) -> None:
    sid = active_reader(web)
    token = make_token(SECRET, purpose, sid)
    page = web.client.get(f"/{purpose}/{tampered(token)}")
    assert page.status_code == 404 and "not valid" in page.text
    assert web.client.get(f"/{purpose}/garbage").status_code == 404


@pytest.mark.parametrize(
    ("purpose", "used_for"),
    [("unsubscribe", "confirm"), ("confirm", "preferences"), ("preferences", "unsubscribe")],
)
def test_a_link_made_for_another_purpose_is_not_valid(
    web: Rig, purpose: str, used_for: str
) -> None:
    sid = active_reader(web)
    page = web.client.get(f"/{used_for}/{make_token(SECRET, purpose, sid)}")
    assert page.status_code == 404 and "not valid" in page.text


def test_a_link_signed_with_another_key_is_not_valid(web: Rig) -> None:
    sid = active_reader(web)
    token = make_token("another-secret-key-9876543210", "unsubscribe", sid)
    one_click = web.client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 404 and status(web, sid) == "active"


def test_a_purged_pending_subscription_cannot_be_confirmed(web: Rig) -> None:
    subscribe(web.client, "ada@example.org")
    path = link(web.smtp.messages[0], "confirm")
    with db.transaction(web.context.sessions) as session:
        reader = session.query(Subscriber).one()
        reader.created_at = reader.confirmation_sent_at = datetime.now(UTC) - timedelta(days=8)
    assert subscriptions.purge_pending(web.context) == 1
    assert subscriptions.list_all(web.context) == []
    page = web.client.get(path)
    assert page.status_code == 404 and "expired" in page.text


def test_purging_keeps_recent_pending_and_all_active_readers(web: Rig) -> None:
    subscribe(web.client, "new@example.org")
    old = active_reader(web, "old@example.org")
    with db.transaction(web.context.sessions) as session:
        session.get(Subscriber, old).created_at = datetime.now(UTC) - timedelta(days=30)  # type: ignore[union-attr]
    assert subscriptions.purge_pending(web.context) == 0
    assert len(subscriptions.list_all(web.context)) == 2


# --- preferences -------------------------------------------------------------------


def test_the_preferences_page_shows_the_readers_choices(web: Rig) -> None:
    sid = active_reader(web)
    page = web.client.get(f"/preferences/{make_token(SECRET, 'preferences', sid)}")
    assert page.status_code == 200 and "ada@example.org" in page.text
    assert 'value="llms" checked' in page.text and 'value="vision">' in page.text


def test_saving_preferences_changes_topics_interests_zone_and_pause(web: Rig) -> None:
    sid = active_reader(web)
    path = f"/preferences/{make_token(SECRET, 'preferences', sid)}"
    saved = post_form(
        web,
        path,
        topic=["vision", "memory"],
        interests="point clouds\n<b>bold</b>",
        timezone="Asia/Tokyo",
        paused="on",
    )
    assert saved.status_code == 200 and "Saved" in saved.text  # type: ignore[attr-defined]
    assert "<b>bold</b>" not in saved.text  # type: ignore[attr-defined]
    info = subscriptions.get_preferences(web.context, sid)
    assert info.topics == ("memory", "vision")
    assert info.interests == ("point clouds", "<b>bold</b>")
    assert (info.timezone, info.paused, info.status) == ("Asia/Tokyo", True, "active")
    post_form(web, path, topic=["llms"], interests="", timezone="")
    info = subscriptions.get_preferences(web.context, sid)
    assert (info.topics, info.interests, info.timezone, info.paused) == (("llms",), (), None, False)


def test_invalid_preferences_are_refused_and_nothing_changes(web: Rig) -> None:
    sid = active_reader(web)
    path = f"/preferences/{make_token(SECRET, 'preferences', sid)}"
    bad_zone = post_form(web, path, topic=["vision"], timezone="Nowhere/City")
    assert bad_zone.status_code == 400 and "unknown time zone" in bad_zone.text  # type: ignore[attr-defined]
    bad_topic = post_form(web, path, topic=["astrology"])
    assert bad_topic.status_code == 400  # type: ignore[attr-defined]
    assert subscriptions.get_preferences(web.context, sid).topics == ("llms",)


def test_saving_preferences_needs_the_csrf_token(web: Rig) -> None:
    sid = active_reader(web)
    path = f"/preferences/{make_token(SECRET, 'preferences', sid)}"
    web.client.get(path)
    answer = web.client.post(path, data={"topic": "vision", "csrf_token": "x"})
    assert answer.status_code == 403
    assert subscriptions.get_preferences(web.context, sid).topics == ("llms",)


# --- unsubscribe -------------------------------------------------------------------


def test_the_unsubscribe_link_shows_a_button_and_changes_nothing(web: Rig) -> None:
    sid = active_reader(web)
    page = web.client.get(f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sid)}")
    assert page.status_code == 200 and "ada@example.org" in page.text and "<form" in page.text
    assert status(web, sid) == "active"


def test_the_unsubscribe_button_unsubscribes_and_says_goodbye(web: Rig) -> None:
    sid = active_reader(web)
    path = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sid)}"
    assert "One last email confirms it" in web.client.get(path).text
    done = post_form(web, path)
    assert done.status_code == 200 and "unsubscribed" in done.text  # type: ignore[attr-defined]
    assert "One last email confirms it" in done.text  # type: ignore[attr-defined]
    assert status(web, sid) == "unsubscribed"
    [goodbye] = web.smtp.messages
    assert goodbye.recipients == ("ada@example.org",)
    web.client.post(path, data={"csrf_token": csrf_of(web.client.get("/"))})
    assert len(web.smtp.messages) == 1  # once gone, nothing more


def test_the_unsubscribe_button_needs_the_csrf_token(web: Rig) -> None:
    sid = active_reader(web)
    path = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sid)}"
    assert web.client.post(path, data={"csrf_token": "nope"}).status_code == 403
    assert status(web, sid) == "active"


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_unsubscribes_without_cookies_or_redirect(web: Rig, multipart: bool) -> None:
    sid = active_reader(web)
    path = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sid)}"
    web.client.cookies.clear()
    if multipart:
        answer = web.client.post(
            path, files={"List-Unsubscribe": (None, "One-Click")}, follow_redirects=False
        )
    else:
        answer = web.client.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            follow_redirects=False,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 200 and "set-cookie" not in answer.headers
    assert status(web, sid) == "unsubscribed" and "One last email" not in answer.text
    assert web.smtp.messages == []  # the address receives nothing more, not even a goodbye


def test_one_click_on_a_bounced_address_keeps_it_bounced(web: Rig) -> None:
    sid = active_reader(web)
    with db.transaction(web.context.sessions) as session:
        session.get(Subscriber, sid).status = "bounced"  # type: ignore[union-attr]
    answer = web.client.post(
        f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sid)}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and status(web, sid) == "bounced"


def test_a_post_with_another_body_is_not_one_click(web: Rig) -> None:
    sid = active_reader(web)
    web.client.cookies.clear()
    answer = web.client.post(
        f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sid)}",
        content=b"List-Unsubscribe=Yes",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 403 and status(web, sid) == "active"


def test_saving_preferences_twice_keeps_the_same_interests(web: Rig) -> None:
    sid = subscriptions.subscribe(
        web.context, "ada@example.org", ["llms"], ["sparse attention"], confirmed=True
    ).subscriber.id
    path = f"/preferences/{make_token(SECRET, 'preferences', sid)}"
    for _ in range(2):
        saved = post_form(web, path, topic=["llms"], interests="sparse attention\nvideo")
        assert saved.status_code == 200  # type: ignore[attr-defined]
    assert subscriptions.get_preferences(web.context, sid).interests == (
        "sparse attention",
        "video",
    )


def test_a_pending_reader_asking_again_with_the_same_interests_is_fine(web: Rig) -> None:
    for _ in range(2):
        assert subscribe(web.client, "ada@example.org", interests="video").status_code == 303

"""POST /subscribe: double opt-in, no enumeration, limits, CSRF and hostile input."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from newsletter.mail.capture import CaptureServer
from newsletter.readers import subscriptions
from newsletter.scheduler import DeliveryJobs
from newsletter.store import db
from newsletter.store.models import Subscriber
from tests.smtp_faults import FaultHandler, fault_server
from tests.web_support import Rig, csrf_of, link, rig, subject_of, subscribe


@pytest.fixture
def web(tmp_path: Path, smtp_server: CaptureServer) -> Iterator[Rig]:
    with rig(tmp_path, smtp_server) as r:
        yield r


def stored(web: Rig, address: str) -> Subscriber | None:
    with db.transaction(web.context.sessions) as session:
        return session.query(Subscriber).filter_by(email=address).one_or_none()


def test_it_shows_the_subscribe_form_with_the_configured_topics(web: Rig) -> None:
    page = web.client.get("/")
    assert page.status_code == 200
    assert "Get trending papers in your email inbox!" in page.text
    for slug in ("llms", "vision", "memory"):
        assert f'name="topic" value="{slug}"' in page.text
    assert 'name="interests"' in page.text and 'name="timezone"' in page.text
    assert "csrf" in page.cookies


def test_it_stores_a_pending_reader_and_mails_a_confirmation_link(web: Rig) -> None:
    answer = subscribe(web.client, "Ada@Example.org", timezone="Europe/Berlin", interests="video")
    assert answer.status_code == 303 and answer.headers["location"] == "/check-your-inbox"
    assert "Check your inbox" in web.client.get("/check-your-inbox").text
    reader = stored(web, "ada@example.org")
    assert reader is not None and reader.status == "pending"
    assert reader.topic_slugs == ["llms"] and reader.interest_texts == ["video"]
    assert reader.timezone == "Europe/Berlin"
    [message] = web.smtp.messages
    assert message.recipients == ("ada@example.org",)
    assert link(message, "confirm").startswith("/confirm/")


def test_it_answers_the_same_for_known_and_unknown_addresses(web: Rig) -> None:
    subscriptions.subscribe(web.context, "known@example.org", ["llms"], confirmed=True)
    known = subscribe(web.client, "known@example.org", topic=["vision"])
    unknown = subscribe(web.client, "stranger@example.org")
    assert (known.status_code, known.headers["location"]) == (
        unknown.status_code,
        unknown.headers["location"],
    )
    assert known.text == unknown.text
    reader = stored(web, "known@example.org")
    assert reader is not None and reader.status == "active" and reader.topic_slugs == ["llms"]
    assert [m.recipients for m in web.smtp.messages] == [("stranger@example.org",)]


def test_it_sends_at_most_one_confirmation_per_address_per_day(web: Rig) -> None:
    for _ in range(3):
        assert subscribe(web.client, "ada@example.org").status_code == 303
    assert len(web.smtp.messages) == 1
    with db.transaction(web.context.sessions) as session:
        reader = session.query(Subscriber).filter_by(email="ada@example.org").one()
        reader.confirmation_sent_at = datetime.now(UTC) - timedelta(hours=25)
    subscribe(web.client, "ada@example.org")
    assert len(web.smtp.messages) == 2


def test_it_sends_unsubscribed_readers_a_new_confirmation(web: Rig) -> None:
    subscriptions.subscribe(web.context, "gone@example.org", ["llms"], confirmed=True)
    subscriptions.unsubscribe(web.context, "gone@example.org")
    subscribe(web.client, "gone@example.org")
    reader = stored(web, "gone@example.org")
    assert reader is not None and reader.status == "pending"
    assert len(web.smtp.messages) == 1


def test_it_limits_subscribe_requests_per_client(
    tmp_path: Path, smtp_server: CaptureServer
) -> None:
    with rig(tmp_path, smtp_server, subscribe_burst=2, subscribe_rate_per_hour=1) as web:
        codes = [subscribe(web.client, f"r{i}@example.org").status_code for i in range(3)]
        assert codes == [303, 303, 429]
        limited = subscribe(web.client, "r9@example.org")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "Too many requests" in limited.text
        assert stored(web, "r9@example.org") is None


def test_it_silently_drops_requests_that_fill_the_honeypot(web: Rig) -> None:
    answer = subscribe(web.client, "bot@example.org", website="http://spam.example")
    assert answer.status_code == 303
    assert stored(web, "bot@example.org") is None and web.smtp.messages == []


@pytest.mark.parametrize("token", [None, "forged-token", "wrong"])
def test_it_refuses_a_post_without_the_right_csrf_token(web: Rig, token: str | None) -> None:
    web.client.get("/")
    data = {"email": "ada@example.org", "topic": "llms"}
    if token:
        data["csrf_token"] = token
    answer = web.client.post("/subscribe", data=data, follow_redirects=False)
    assert answer.status_code == 403
    assert stored(web, "ada@example.org") is None


def test_it_refuses_a_csrf_token_made_for_another_cookie(web: Rig) -> None:
    token = csrf_of(web.client.get("/"))
    web.client.cookies.clear()
    web.client.cookies.set("csrf", "a-different-cookie-value-0123456789")
    answer = web.client.post(
        "/subscribe", data={"csrf_token": token, "email": "a@example.org"}, follow_redirects=False
    )
    assert answer.status_code == 403


def test_it_refuses_a_post_without_the_cookie(web: Rig) -> None:
    token = csrf_of(web.client.get("/"))
    web.client.cookies.clear()
    answer = web.client.post(
        "/subscribe", data={"csrf_token": token, "email": "a@example.org"}, follow_redirects=False
    )
    assert answer.status_code == 403


def test_it_reshows_the_form_for_an_invalid_address(web: Rig) -> None:
    answer = subscribe(web.client, "not-an-address<script>")
    assert answer.status_code == 400
    assert "invalid email address" in answer.text
    assert "<script>" not in answer.text and "&lt;script&gt;" in answer.text


def test_it_refuses_unknown_topics(web: Rig) -> None:
    answer = subscribe(web.client, "ada@example.org", topic=["astrology"])
    assert answer.status_code == 400 and "unknown topic" in answer.text
    assert stored(web, "ada@example.org") is None


def test_it_stores_script_in_interests_as_inert_text_and_escapes_it(web: Rig) -> None:
    hostile = '<script>alert("x")</script>'
    subscribe(web.client, "ada@example.org", interests=hostile)
    reader = stored(web, "ada@example.org")
    assert reader is not None and reader.interest_texts == [hostile]
    page = web.client.get(link(web.smtp.messages[0], "confirm"))
    assert "<script>alert" not in page.text
    # the reflected form on error is escaped too
    again = subscribe(web.client, "bad address", interests=hostile)
    assert again.status_code == 400 and "<script>alert" not in again.text


def test_it_refuses_cr_lf_in_the_address_and_flattens_it_in_interests(web: Rig) -> None:
    answer = subscribe(web.client, "ada@example.org\r\nBcc: victim@example.org")
    assert answer.status_code == 400 and web.smtp.messages == []
    subscribe(web.client, "ada@example.org", interests="video\r\nBcc: x@example.org\x0bmore")
    reader = stored(web, "ada@example.org")
    assert reader is not None
    assert reader.interest_texts == ["video", "Bcc: x@example.org more"]
    assert all(m.recipients == ("ada@example.org",) for m in web.smtp.messages)


def test_it_refuses_an_unknown_time_zone_with_a_message(web: Rig) -> None:
    answer = subscribe(web.client, "ada@example.org", timezone="Mars/Olympus\r\nX: y")
    assert answer.status_code == 400
    assert "unknown time zone" in answer.text
    assert stored(web, "ada@example.org") is None and web.smtp.messages == []


def test_it_answers_413_to_a_huge_body(web: Rig) -> None:
    token = csrf_of(web.client.get("/"))
    answer = web.client.post(
        "/subscribe",
        data={"csrf_token": token, "email": "a@example.org", "interests": "x" * 100_000},
    )
    assert answer.status_code == 413 and "Request too large" in answer.text
    assert stored(web, "a@example.org") is None


def test_a_form_within_the_pages_limits_is_never_refused_as_too_large(web: Rig) -> None:
    page = web.client.get("/").text
    found = re.search(r'name="interests"[^>]*maxlength="(\d+)"', page)
    assert found is not None
    interests_max = int(found.group(1))
    assert interests_max >= 800  # the default body limit leaves room for four full interests
    widest = "\U0001f600"  # four UTF-8 bytes, twelve once percent-encoded
    fields = {
        "csrf_token": "a" * 200,
        "email": widest * 254,
        "interests": widest * interests_max,
        "timezone": widest * 64,
        "website": widest * 100,
        "topic": ["memory"] * 3,
    }
    answer = web.client.post(
        "/subscribe",
        content=urlencode(fields, doseq=True),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 403  # refused for its CSRF token, not as too large (413)


def test_it_answers_413_to_a_streamed_body_without_length(web: Rig) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"interests=" + b"x" * 1000 + b"&"

    answer = web.client.post(
        "/subscribe",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413


def test_it_answers_400_to_invalid_utf8(web: Rig) -> None:
    token = csrf_of(web.client.get("/"))
    body = f"csrf_token={token}&email=ada%40example.org&interests=%ff%fe".encode()
    answer = web.client.post(
        "/subscribe", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 400 and "UTF-8" in answer.text
    raw = f"csrf_token={token}&email=ada%40example.org&interests=".encode() + b"\xff"
    answer = web.client.post(
        "/subscribe", content=raw, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 400
    assert stored(web, "ada@example.org") is None


def test_it_answers_415_to_a_body_that_is_not_a_form(web: Rig) -> None:
    answer = web.client.post("/subscribe", json={"email": "ada@example.org"})
    assert answer.status_code == 415


def test_it_marks_the_confirmation_subject(web: Rig) -> None:
    subscribe(web.client, "ada@example.org")
    assert "onfirm" in subject_of(web.smtp.messages[0])


def test_a_confirmation_the_relay_did_not_take_goes_out_on_the_next_request(
    tmp_path: Path,
) -> None:
    relay = CaptureServer()  # not started: the relay is down
    with rig(tmp_path, relay) as web:
        assert subscribe(web.client, "ada@example.org").status_code == 303
        reader = stored(web, "ada@example.org")
        assert reader is not None and reader.confirmation_sent_at is None
        with relay:
            subscribe(web.client, "ada@example.org")
            [message] = relay.messages
            assert message.recipients == ("ada@example.org",)
            assert link(message, "confirm").startswith("/confirm/")
            reader = stored(web, "ada@example.org")
            assert reader is not None and reader.confirmation_sent_at is not None
            subscribe(web.client, "ada@example.org")  # sent now: the cooldown counts it
            assert len(relay.messages) == 1


def test_the_schedulers_drain_sends_the_confirmations_the_relay_did_not_take(
    tmp_path: Path,
) -> None:
    relay = CaptureServer()
    with rig(tmp_path, relay) as web:
        subscribe(web.client, "ada@example.org")
        with relay:
            DeliveryJobs().drain(web.context, threading.Event())
            [message] = relay.messages
            assert message.recipients == ("ada@example.org",)
            DeliveryJobs().drain(web.context, threading.Event())
            assert len(relay.messages) == 1


def test_a_confirmation_the_relay_refused_for_good_may_be_asked_for_again(
    tmp_path: Path,
) -> None:
    with fault_server() as relay, rig(tmp_path, relay) as web:
        handler = relay.handler
        assert isinstance(handler, FaultHandler)
        handler.data_replies["ada@example.org"] = ["550 5.7.1 message refused"]
        subscribe(web.client, "ada@example.org")
        assert relay.messages == [] and handler.refused == ["ada@example.org"]
        DeliveryJobs().drain(web.context, threading.Event())  # no retry loop on a refusal
        assert handler.refused == ["ada@example.org"] and relay.messages == []
        subscribe(web.client, "ada@example.org")
        assert [m.recipients for m in relay.messages] == [("ada@example.org",)]


def test_it_refuses_an_address_the_mail_server_can_never_deliver_to(web: Rig) -> None:
    answer = subscribe(web.client, "üñí@exämple.com")
    assert answer.status_code == 400
    assert "non-ASCII characters" in html.unescape(answer.text)
    assert subscriptions.list_all(web.context) == [] and web.smtp.messages == []


def test_it_mails_an_internationalized_domain_in_its_ascii_form(web: Rig) -> None:
    assert subscribe(web.client, "leser@bücher.example").status_code == 303
    [message] = web.smtp.messages
    assert message.recipients == ("leser@xn--bcher-kva.example",)


def test_the_form_says_a_reader_who_picks_nothing_gets_the_general_digest(web: Rig) -> None:
    page = html.unescape(web.client.get("/").text)
    assert "pick none for the general trending digest: the week's most upvoted papers" in page

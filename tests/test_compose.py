from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from newsletter.delivery.compose import Composer
from newsletter.errors import HeaderInjection, InvalidToken
from newsletter.render import Renderer
from newsletter.render.content import DigestItem
from newsletter.render.renderer import default_templates_dir
from newsletter.render.samples import sample_items
from newsletter.tokens import read_address_token, read_token
from tests.email_support import (
    HOSTILE,
    SECRET,
    WEEK,
    assert_wire_format,
    composer,
    hostile_items,
    parse,
    parts,
    settings,
)

BASE = "https://papers.example.org"


def token_in(url: str, purpose: str) -> str:
    match = re.fullmatch(rf"{BASE}/{purpose}/([A-Za-z0-9_.-]+)", url)
    assert match, url
    return match[1]


def test_a_digest_is_a_complete_message_with_signed_links() -> None:
    message = composer().digest(
        subscriber_id=7, email="reader@example.org", items=sample_items(10), **WEEK
    )
    # A digest composed without a delivery (a preview) returns to the plain address.
    assert message.sender == "bounces@papers.example.org"
    assert message.recipient == "reader@example.org"
    assert_wire_format(message.data)
    parsed = parse(message.data)
    text, html = parts(parsed)
    assert str(parsed["Message-ID"]) == message.message_id
    header = str(parsed["List-Unsubscribe"])
    unsubscribe = re.search(r"<(https://[^>]+)>", header)
    assert unsubscribe and unsubscribe[1] in html and unsubscribe[1] in text
    assert read_token(SECRET, "unsubscribe", token_in(unsubscribe[1], "unsubscribe")) == 7
    preferences = re.search(rf"{BASE}/preferences/[A-Za-z0-9_.-]+", text)
    assert preferences and preferences[0] in html
    assert read_token(SECRET, "preferences", token_in(preferences[0], "preferences")) == 7
    own = re.search(rf"{BASE}/digest/2026-W11/([A-Za-z0-9_.-]+)", text)
    assert own and own[0] in html  # "View in browser": this reader's digest, not everyone's
    assert read_token(SECRET, "digest", own[1]) == 7
    for item in sample_items(10):
        assert item.paper.title in text


def test_a_digest_returns_to_a_verp_address_naming_its_delivery() -> None:
    message = composer().digest(
        subscriber_id=7, email="reader@example.org", items=sample_items(2), delivery_id=4321, **WEEK
    )
    local, _, domain = message.sender.partition("@")
    assert domain == "papers.example.org"
    assert local.startswith("bounces+d4321-") and len(local) <= 64
    assert read_address_token(SECRET, "bounce", local.partition("+")[2]) == 4321


def test_list_unsubscribe_offers_the_link_first_then_a_signed_address_for_this_reader() -> None:
    message = composer().digest(
        subscriber_id=7, email="reader@example.org", items=sample_items(2), delivery_id=1, **WEEK
    )
    header = str(parse(message.data)["List-Unsubscribe"])
    found = re.fullmatch(
        r"<https://[^>]+>, "
        r"<mailto:unsubscribe\+([a-z0-9-]+)@papers\.example\.org\?subject=unsubscribe>",
        header,
    )
    assert found, header
    assert read_address_token(SECRET, "unsubscribe-mail", found[1]) == 7


def test_a_configured_bounce_address_sets_the_return_domain() -> None:
    c = composer(bounces={"address": "returns@mail.example.net"})
    message = c.digest(
        subscriber_id=7, email="reader@example.org", items=sample_items(1), delivery_id=3, **WEEK
    )
    assert message.sender.startswith("returns+d3-")
    assert message.sender.endswith("@mail.example.net")
    assert "unsubscribe+s7-" in str(parse(message.data)["List-Unsubscribe"])
    assert c.notice("welcome", subscriber_id=7, email="r@example.org").sender == (
        "returns@mail.example.net"
    )


def test_the_same_edition_and_subscriber_always_get_the_same_message_id() -> None:
    c = composer()
    first = c.digest(subscriber_id=7, email="r@example.org", items=sample_items(2), **WEEK)
    again = c.digest(subscriber_id=7, email="r@example.org", items=sample_items(2), **WEEK)
    other = c.digest(subscriber_id=8, email="s@example.org", items=sample_items(2), **WEEK)
    assert first.message_id == again.message_id != other.message_id
    assert first.message_id.endswith("@papers.example.org>")


def test_an_empty_digest_is_the_quiet_week_note() -> None:
    message = composer().digest(subscriber_id=7, email="r@example.org", items=(), **WEEK)
    parsed = parse(message.data)
    text, html = parts(parsed)
    assert "A quiet week" in text and "A quiet week" in html
    assert "quiet week" in str(parsed["Subject"])


def test_hostile_data_stays_text_in_the_finished_message() -> None:
    message = composer().digest(
        subscriber_id=7, email="r@example.org", items=hostile_items(3), topics=(HOSTILE,), **WEEK
    )
    parsed = parse(message.data)
    text, html = parts(parsed)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE in text
    assert str(parsed["Subject"]).startswith(f"Your papers this week: {HOSTILE}")


def test_a_title_with_cr_lf_stays_on_the_subject_line() -> None:
    [item] = sample_items(1)
    item = replace(item, paper=replace(item.paper, title="Attention\r\nBcc: v@example.org"))
    message = composer().digest(subscriber_id=7, email="r@example.org", items=[item], **WEEK)
    parsed = parse(message.data)
    assert parsed["Bcc"] is None
    assert str(parsed["Subject"]) == "Trending this week: Attention Bcc: v@example.org"


def test_a_subscriber_address_with_cr_lf_cannot_inject_headers() -> None:
    with pytest.raises(HeaderInjection):
        composer().digest(
            subscriber_id=7,
            email="r@example.org\r\nBcc: v@example.org",
            items=sample_items(1),
            **WEEK,
        )


def test_the_date_header_is_the_compose_time() -> None:
    when = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    message = composer().digest(subscriber_id=1, email="r@example.org", items=(), now=when, **WEEK)
    assert str(parse(message.data)["Date"]) == "Mon, 16 Mar 2026 08:00:00 +0000"


def test_reply_to_and_idn_recipients_come_through() -> None:
    c = composer(sender={"reply_to": "editors@papers.example.org"})
    message = c.notice("welcome", subscriber_id=3, email="leser@bücher.de")
    parsed = parse(message.data)
    assert message.recipient == "leser@xn--bcher-kva.de"
    assert str(parsed["Reply-To"]) == "editors@papers.example.org"
    text, html = parts(parsed)
    assert "leser@bücher.de" in text and "leser@bücher.de" in html


def test_the_confirm_notice_links_a_token_that_only_confirms() -> None:
    message = composer().notice("confirm", subscriber_id=11, email="new@example.org")
    parsed = parse(message.data)
    text, html = parts(parsed)
    link = re.search(rf"{BASE}/confirm/[A-Za-z0-9_.-]+", text)
    assert link and link[0] in html
    token = token_in(link[0], "confirm")
    assert read_token(SECRET, "confirm", token) == 11
    with pytest.raises(InvalidToken):
        read_token(SECRET, "unsubscribe", token)
    assert "Confirm your subscription" in str(parsed["Subject"])
    assert parsed["List-Unsubscribe-Post"] is not None


@pytest.mark.parametrize("kind", ["confirm", "welcome", "goodbye"])
def test_every_notice_is_a_well_formed_message(kind: str) -> None:
    message = composer().notice(kind, subscriber_id=5, email="r@example.org")  # type: ignore[arg-type]
    assert_wire_format(message.data)
    parsed = parse(message.data)
    assert not parsed.defects
    text, html = parts(parsed)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "MIME-Version"):
        assert parsed[name] is not None, name
    assert "1 Example Street" in text and "1 Example Street" in html
    again = composer().notice(kind, subscriber_id=5, email="r@example.org")  # type: ignore[arg-type]
    assert again.message_id != message.message_id  # each notice is its own message


def test_the_goodbye_notice_offers_no_unsubscribe_header() -> None:
    parsed = parse(composer().notice("goodbye", subscriber_id=5, email="r@example.org").data)
    assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None
    assert "unsubscribed" in str(parsed["Subject"])


def test_messages_are_byte_for_byte_the_same_with_cached_cards_and_without() -> None:
    when = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    cached = composer()
    fresh = Composer(settings(), SECRET, renderer=Renderer(card_cache=0))
    readers = [(1, "a@example.org", sample_items(10)), (2, "b@example.org", hostile_items(3))]
    with time_machine.travel(when, tick=False):
        for _ in range(2):
            for subscriber_id, email, items in readers:
                made = [
                    c.digest(
                        subscriber_id=subscriber_id, email=email, items=items, now=when, **WEEK
                    )
                    for c in (cached, fresh)
                ]
                assert made[0] == made[1]


def _alike_readers() -> list[tuple[int, str, tuple[DigestItem, ...]]]:
    linkless = replace(sample_items(1)[0], paper=replace(sample_items(1)[0].paper, url=None))
    linkless = replace(linkless, paper=replace(linkless.paper, pdf_url=None))
    shared = sample_items(10)
    return [
        (1, "a@example.org", shared),
        (2, "o'brien&co@example.org", shared),  # escaped in HTML, as it is in text
        (123_456_789, "b@example.org", shared),
        (4, "c@example.org", hostile_items(3)),
        (5, "d@example.org", ()),  # the quiet week
        (6, "e@example.org", (linkless,)),  # its card links the reader's own digest
        (7, "f@example.org", (linkless,)),
    ]


def test_readers_who_chose_alike_get_exactly_what_a_full_render_makes() -> None:
    when = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    stencilled, full = composer(), Composer(settings(), SECRET, stencils=0)
    with time_machine.travel(when, tick=False):
        for _ in range(2):
            for subscriber_id, email, items in _alike_readers():
                made = [
                    c.digest(subscriber_id=subscriber_id, email=email, items=items, **WEEK)
                    for c in (stencilled, full)
                ]
                assert made[0] == made[1]
    assert len(stencilled.stencils) == 4  # the shared, hostile, quiet and linkless digests


def test_a_template_that_transforms_the_address_is_rendered_in_full(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), templates)
    footer = templates / "email" / "_footer.txt.j2"
    footer.write_text(
        footer.read_text().replace("{{ recipient.email }}", "{{ recipient.email|upper }}")
    )
    with time_machine.travel(datetime(2026, 3, 16, 8, 0, tzinfo=UTC), tick=False):
        made = [
            Composer(settings(), SECRET, renderer=Renderer(templates), stencils=n).digest(
                subscriber_id=3, email="reader@example.org", items=sample_items(3), **WEEK
            )
            for n in (1024, 0)
        ]
    assert made[0] == made[1]
    assert "READER@EXAMPLE.ORG" in parts(parse(made[0].data))[0]

from __future__ import annotations

import binascii
import random
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
import time_machine

from newsletter.errors import HeaderInjection, InvalidInput
from newsletter.mail.message import (
    Envelope,
    ascii_address,
    base64_body,
    build_message,
    make_message_id,
    qp,
)
from tests.email_support import assert_wire_format, parse, parts

ENVELOPE = Envelope.make("Trending Papers", "digest@papers.example.org", "Trending Papers")
TEXT = "Hello reader,\nthe papers: Ünïcode, “quotes”, emoji 🎉.\n" + "long line " * 300
HTML = "<!doctype html><html><body><p>" + "é<b>x</b> " * 5000 + "</p></body></html>"


def build(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "to": "reader@example.org",
        "subject": "This week: 10 trending papers",
        "text": TEXT,
        "html": HTML,
        "message_id": "<2026-W11.7.abc@papers.example.org>",
        "unsubscribe_url": "https://papers.example.org/unsubscribe/TOKEN",
        "unsubscribe_mailto": "unsubscribe+s7-abc@papers.example.org",
        "date": datetime(2026, 3, 16, 8, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return build_message(ENVELOPE, **fields).data  # type: ignore[arg-type]


def test_it_builds_multipart_alternative_with_text_first_then_html() -> None:
    data = build()
    message = parse(data)
    assert not message.defects
    text, html = parts(message)
    # The CRLF before a boundary belongs to the boundary (RFC 2046), hence rstrip.
    assert text.replace("\r\n", "\n").rstrip("\n") == TEXT
    assert html.replace("\r\n", "\n") == HTML + "\n"
    assert message["MIME-Version"] == "1.0"
    assert_wire_format(data)


def test_it_carries_the_list_and_identity_headers() -> None:
    message = parse(build())
    assert str(message["From"]) == "Trending Papers <digest@papers.example.org>"
    assert str(message["To"]) == "reader@example.org"
    assert str(message["Subject"]) == "This week: 10 trending papers"
    assert parsedate_to_datetime(str(message["Date"])) == datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    assert str(message["Message-ID"]) == "<2026-W11.7.abc@papers.example.org>"
    assert str(message["List-Id"]) == '"Trending Papers" <trending-papers.papers.example.org>'
    assert str(message["List-Unsubscribe"]) == (
        "<https://papers.example.org/unsubscribe/TOKEN>, "
        "<mailto:unsubscribe+s7-abc@papers.example.org?subject=unsubscribe>"
    )
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert message["Reply-To"] is None


def test_the_envelope_sender_is_the_bounce_address_unless_a_message_names_its_own() -> None:
    envelope = Envelope.make(
        "Papers", "digest@papers.example.org", "Papers", bounce_address="bounces@papers.example.org"
    )
    fields = {"to": "r@example.org", "subject": "s", "text": "t", "html": "h"}
    plain = build_message(envelope, message_id="<a@papers.example.org>", **fields)
    assert plain.sender == "bounces@papers.example.org"
    verp = build_message(
        envelope,
        message_id="<b@papers.example.org>",
        sender="bounces+d1-abc@papers.example.org",
        **fields,
    )
    assert verp.sender == "bounces+d1-abc@papers.example.org"
    # The envelope sender is not a header: the receiving MTA writes Return-Path.
    assert b"bounces" not in verp.data


def test_without_a_mailto_the_list_unsubscribe_header_has_the_link_alone() -> None:
    message = parse(build(unsubscribe_mailto=None))
    assert str(message["List-Unsubscribe"]) == "<https://papers.example.org/unsubscribe/TOKEN>"


def test_reply_to_is_added_when_configured() -> None:
    envelope = Envelope.make("Papers", "digest@papers.example.org", "Papers", "editors@example.org")
    data = build_message(
        envelope, to="r@example.org", subject="s", text="t", html="h", message_id="<a@b.example>"
    ).data
    assert str(parse(data)["Reply-To"]) == "editors@example.org"
    assert parse(data)["List-Unsubscribe"] is None  # only when an unsubscribe link is given


def test_non_ascii_names_and_subjects_are_encoded_and_decode_back() -> None:
    envelope = Envelope.make("Ärxiv Wöchentlich «Papers»", "digest@papers.example.org", "Ärxiv")
    subject = "Die Woche: Größenordnungen – " + "überlange Betreffzeile " * 8
    data = build_message(
        envelope,
        to="r@example.org",
        subject=subject,
        text="t",
        html="h",
        message_id="<a@b.example>",
    ).data
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    message = parse(data)
    assert str(message["Subject"]) == subject.strip()
    assert message["From"].addresses[0].display_name == "Ärxiv Wöchentlich «Papers»"
    assert message["From"].addresses[0].addr_spec == "digest@papers.example.org"


def test_long_non_ascii_sender_names_round_trip_and_absurd_ones_are_refused() -> None:
    name = "Wöchentliche Forschungsübersicht für Künstliche Intelligenz und Maschinelles Lernen"
    envelope = Envelope.make(name, "digest@papers.example.org", "Papers")
    data = build_message(
        envelope, to="r@example.org", subject="s", text="t", html="h", message_id="<a@b.example>"
    ).data
    assert parse(data)["From"].addresses[0].display_name == name
    with pytest.raises(HeaderInjection, match="too long"):
        Envelope.make("Ä" * 600, "digest@papers.example.org", "Papers")


def test_long_ascii_subjects_are_folded_and_unfold_to_the_same_text() -> None:
    subject = "Trending Papers: " + " ".join(f"word{i}" for i in range(40))
    data = build(subject=subject)
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert all(len(line) <= 78 for line in head.split("\r\n") if not line.startswith("List-"))
    assert str(parse(data)["Subject"]) == subject


@pytest.mark.parametrize(
    "subject",
    ["Hi\r\nBcc: victim@example.org", "Hi\nX-Injected: 1", "Hi\rX-Injected: 1", "a\x00b\x1bc"],
)
def test_cr_lf_in_a_subject_is_folded_into_the_line_and_never_injects(subject: str) -> None:
    message = parse(build(subject=subject))
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    assert str(message["Subject"]).startswith("Hi") or str(message["Subject"]).startswith("a")


@pytest.mark.parametrize(
    "name", ["Papers\r\nBcc: victim@example.org", "Papers\nX: y", "Pa\x07pers"]
)
def test_control_characters_in_the_sender_name_are_refused(name: str) -> None:
    with pytest.raises(HeaderInjection):
        Envelope.make(name, "digest@papers.example.org", "Papers")


@pytest.mark.parametrize(
    "address",
    [
        "reader@example.org\r\nBcc: victim@example.org",
        "reader@example.org\nX: y",
        "reader\r@example.org",
        "Reader <reader@example.org>",
        "no-at-sign",
        "a,b@example.org",
    ],
)
def test_addresses_that_would_break_a_header_are_refused(address: str) -> None:
    with pytest.raises(HeaderInjection) as caught:
        build(to=address)
    assert isinstance(caught.value, InvalidInput)
    with pytest.raises(HeaderInjection):
        Envelope.make("Papers", "digest@papers.example.org", "Papers", reply_to=address)


def test_cr_lf_in_the_unsubscribe_link_or_message_id_is_refused() -> None:
    with pytest.raises(HeaderInjection):
        build(unsubscribe_url="https://x.example/u/T\r\nBcc: v@example.org")
    with pytest.raises(HeaderInjection):
        build(message_id="<a@b>\r\nBcc: v@example.org")


def test_idn_domains_go_out_as_punycode() -> None:
    data = build_message(
        ENVELOPE, to="leser@bücher.de", subject="s", text="t", html="h", message_id="<a@b.example>"
    )
    assert data.recipient == "leser@xn--bcher-kva.de"
    assert str(parse(data.data)["To"]) == "leser@xn--bcher-kva.de"
    assert ascii_address("Reader@Example.ORG") == "Reader@example.org"


def test_message_ids_are_stable_per_edition_and_subscriber() -> None:
    first = make_message_id("2026-W11", 7, "papers.example.org")
    assert first == make_message_id("2026-W11", 7, "papers.example.org")
    assert first != make_message_id("2026-W11", 8, "papers.example.org")
    assert first != make_message_id("2026-W12", 7, "papers.example.org")
    assert first.startswith("<2026-W11.7.") and first.endswith("@papers.example.org>")
    weird = make_message_id("we<ird> key\r\n", 7, "papers.example.org")
    assert str(parse(build(message_id=weird))["Message-ID"]) == weird


def test_body_lines_never_exceed_998_octets_even_for_one_line_html() -> None:
    data = build(html="x" * 50_000, text="y" * 5_000)
    assert_wire_format(data)
    text, html = parts(parse(data))
    assert html.strip() == "x" * 50_000 and text.strip() == "y" * 5_000


def test_quoted_printable_of_any_line_ends_is_binascii_of_the_crlf_text() -> None:
    # Dots, '=', trailing blanks, lone CR/LF, controls, long and non-ASCII lines: every
    # case binascii treats specially, in random mixes.
    pieces = [
        "a",
        " ",
        "\t",
        ".",
        "=",
        "é",
        "\n",
        "\r",
        "\r\n",
        "x" * 80,
        "\x00",
        "–",
        " \n",
        ".\n",
    ]
    rng = random.Random(20260316)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        lines = text.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n")
        whole = (lines + "\n").replace("\n", "\r\n").encode()
        assert qp(text) == binascii.b2a_qp(whole, istext=True), repr(text)


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 913, 914, 12_000, 41_003, 70_000])
def test_the_html_part_is_base64_in_76_octet_lines_that_decode_to_the_html(size: int) -> None:
    html = ("<p>é</p>\n" * size)[:size]
    body = base64_body(html)
    lines = body.split(b"\r\n")
    assert lines.pop() == b"" and all(len(line) == 76 for line in lines[:-1])
    assert all(0 < len(line) <= 76 for line in lines[-1:])
    decoded = binascii.a2b_base64(b"".join(lines)).decode()
    assert decoded.replace("\r\n", "\n").removesuffix("\n") == html.removesuffix("\n")


def test_the_date_header_keeps_the_offset_it_was_given() -> None:
    utc = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert b"Date: Mon, 16 Mar 2026 08:00:00 +0000\r\n" in build(date=utc)
    assert b"Date: Mon, 16 Mar 2026 09:00:00 +0100\r\n" in build(date=paris)


def test_without_a_date_the_header_is_the_current_time() -> None:
    with time_machine.travel("2026-03-16 08:00:00.750+00:00", tick=False):
        first = build(date=None)
    with time_machine.travel("2026-03-16 08:00:01+00:00", tick=False):
        second = build(date=None)
    assert b"Date: Mon, 16 Mar 2026 08:00:00 +0000\r\n" in first
    assert b"Date: Mon, 16 Mar 2026 08:00:01 +0000\r\n" in second

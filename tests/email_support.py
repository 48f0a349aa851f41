"""Helpers for the email tests: settings, hostile and long data, message parsing."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import date
from email.message import EmailMessage
from typing import Any

from newsletter.config import Settings
from newsletter.delivery.compose import Composer
from newsletter.render.content import DigestItem, PaperView
from newsletter.render.samples import sample_items

SECRET = "test-secret-key-0123456789"
HOSTILE = '<script>alert(1)</script> & "quotes"'
WEEK = {"edition_key": "2026-W11", "week_start": date(2026, 3, 9), "week_end": date(2026, 3, 15)}


def settings(**sections: Any) -> Settings:
    base: dict[str, Any] = {
        "site": {"base_url": "https://papers.example.org"},
        "sender": {"from_address": "digest@papers.example.org", "from_name": "Trending Papers"},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings.model_validate(base)


def composer(**sections: Any) -> Composer:
    return Composer(settings(**sections), SECRET)


def hostile_items(count: int = 3) -> tuple[DigestItem, ...]:
    return tuple(
        DigestItem(
            paper=replace(
                item.paper,
                title=f"{HOSTILE} {i}",
                abstract=f"{HOSTILE} abstract {i}.",
                authors=(HOSTILE, "B. Author"),
                url=f'https://papers.example.org/p/{i}?a=1&b="2"',
            ),
            reason=HOSTILE,
        )
        for i, item in enumerate(sample_items(count))
    )


def longest_items(count: int = 10) -> tuple[DigestItem, ...]:
    """The longest data a source realistically gives: long titles, big author lists."""
    words = "Scaling rotation-equivariant multimodal retrieval-augmented transformers"
    return tuple(
        DigestItem(
            paper=PaperView(
                id=i,
                external_id=f"arxiv:2603.{i:05d}",
                title=(f"{words} {i}: " * 4)[:300],
                abstract="We study a very long abstract sentence with many clauses, " * 40,
                authors=tuple(f"Author Number{j} Surname-Longname" for j in range(60)),
                url=f"https://huggingface.co/papers/2603.{i:05d}?utm_campaign=" + "x" * 120,
                pdf_url=f"https://arxiv.org/pdf/2603.{i:05d}v12",
                thumbnail_url=f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2603.{i:05d}.png",
                code_url=f"https://github.com/some-long-organisation-name/repository-{i}",
                upvotes=12345,
                comments=678,
            ),
            reason="Large language models and retrieval-augmented generation",
        )
        for i in range(count)
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative message, checking the structure."""
    assert message.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    for part in (text, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    return str(text.get_content()), str(html.get_content())


def assert_wire_format(data: bytes) -> None:
    """CRLF line ends only and no line over 998 octets (RFC 5322 2.1.1)."""
    assert b"\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998

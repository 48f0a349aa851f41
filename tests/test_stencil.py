"""A stencil filled for a reader is exactly that reader's email rendered in full."""

from __future__ import annotations

import random

import pytest

from newsletter.mail.message import base64_body, crlf_utf8, qp
from newsletter.render.renderer import RenderedEmail
from newsletter.render.stencil import Markers, Stencil

PIECES = ["word ", "é", "=", " ", "\t", ".", "From ", "x" * 70, "\r\n", "\n", "\r", "<a&b>"]


def _text(rng: random.Random, markers: Markers) -> str:
    return "".join(
        rng.choice(markers.slots) if rng.random() < 0.15 else rng.choice(PIECES)
        for _ in range(rng.randint(0, 40))
    )


def test_filled_octets_are_the_encoding_of_the_filled_text_whatever_the_text() -> None:
    rng = random.Random(20261202)
    markers = Markers(3)
    for _ in range(2000):
        marked = RenderedEmail(_text(rng, markers), _text(rng, markers), _text(rng, markers))
        stencil = Stencil.cut(markers, marked)
        # Long values cross the 76-octet line.
        values = tuple(
            rng.choice(["a@b.org", "o'b&c@d.org", "tok-" + "k" * rng.randint(0, 120)])
            for _ in range(3)
        )
        full = stencil.fill(values)
        subject, text, html = stencil.encoded(markers, crlf_utf8, qp).fill(values)
        assert subject == full.subject
        assert text == qp(full.text), (marked.text, values)
        assert base64_body(html) == base64_body(full.html)


def test_an_empty_value_is_refused_by_the_octets_and_filled_as_text() -> None:
    markers = Markers(1)
    stencil = Stencil.cut(markers, RenderedEmail("s", f"a\r{markers.slots[0]}\nb", "h"))
    assert stencil.fill(("",)).text == "a\r\nb"  # one line end, as a full render has it
    with pytest.raises(ValueError, match="empty"):
        stencil.encoded(markers, crlf_utf8, qp).fill(("",))

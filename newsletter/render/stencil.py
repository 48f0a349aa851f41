"""A rendered email with holes where one reader's copy differs from another's.

Readers who chose the same topics and interests get the same papers for the same
reasons: their digests differ only in the address and the signed links. Such a digest
is rendered once with a marker in each of those places, cut at the markers, and
filled for each reader, a join instead of a Jinja render. Markers carry a random
nonce per process, so no paper text can forge one; they are letters and digits,
which every escaping leaves as they are; so a hole holds exactly what the template
printed there, escaped for HTML in the HTML part and raw in the text part.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from markupsafe import escape

from newsletter.render.renderer import RenderedEmail

Parts = tuple[tuple[str, ...], tuple[int, ...]]  # the text between holes, each hole's slot
ByteParts = tuple[tuple[bytes, ...], tuple[int, ...]]
T = TypeVar("T", str, bytes)


class Markers:
    """`count` markers, one per slot, unique to this process."""

    def __init__(self, count: int) -> None:
        nonce = secrets.token_hex(8)
        self.slots = tuple(f"tpslot{nonce}n{n}x" for n in range(count))
        self._pattern = re.compile(f"tpslot{nonce}n([0-9]+)x")

    def cut(self, rendered: str) -> Parts:
        pieces = self._pattern.split(rendered)
        return tuple(pieces[0::2]), tuple(int(n) for n in pieces[1::2])


@dataclass(frozen=True)
class Stencil:
    """Subject, text and HTML cut at the markers; `fill` makes one reader's email."""

    subject: Parts
    text: Parts
    html: Parts

    @classmethod
    def cut(cls, markers: Markers, rendered: RenderedEmail) -> Stencil:
        cut = markers.cut
        return cls(cut(rendered.subject), cut(rendered.text), cut(rendered.html))

    def fill(self, values: tuple[str, ...]) -> RenderedEmail:
        escaped = tuple(str(escape(v)) for v in values)
        return RenderedEmail(
            subject=_fill(self.subject, values, ""),
            text=_fill(self.text, values, ""),
            html=_fill(self.html, escaped, ""),
        )

    def encoded(self, encode: Callable[[str], bytes]) -> EncodedStencil:
        """The text and HTML as `encode` makes their octets, piece by piece: the
        conversion (UTF-8, line ends) is then done once, not once per reader."""

        def each(parts: Parts) -> ByteParts:
            return tuple(encode(text) for text in parts[0]), parts[1]

        return EncodedStencil(self.subject, each(self.text), each(self.html))


@dataclass(frozen=True)
class EncodedStencil:
    """A stencil whose text and HTML are octets: `fill` gives (subject, text, html)."""

    subject: Parts
    text: ByteParts
    html: ByteParts

    def fill(self, values: tuple[str, ...]) -> tuple[str, bytes, bytes]:
        raw = tuple(v.encode("utf-8") for v in values)
        escaped = tuple(str(escape(v)).encode("utf-8") for v in values)
        return (
            _fill(self.subject, values, ""),
            _fill(self.text, raw, b""),
            _fill(self.html, escaped, b""),
        )


def _fill(parts: tuple[tuple[T, ...], tuple[int, ...]], values: tuple[T, ...], empty: T) -> T:
    texts, slots = parts
    if not slots:
        return texts[0]
    pieces = [texts[0]]
    for slot, text in zip(slots, texts[1:], strict=True):
        pieces.append(values[slot])
        pieces.append(text)
    return empty.join(pieces)

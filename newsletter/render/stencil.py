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
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import groupby
from typing import TypeVar

from markupsafe import escape

from newsletter.render.renderer import RenderedEmail

Parts = tuple[tuple[str, ...], tuple[int, ...]]  # the text between holes, each hole's slot
ByteParts = tuple[tuple[bytes, ...], tuple[int, ...]]
T = TypeVar("T", str, bytes)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")  # a line with its end (text ends with one)


class Markers:
    """`count` markers, one per slot, unique to this process."""

    def __init__(self, count: int) -> None:
        nonce = secrets.token_hex(8)
        self.slots = tuple(f"tpslot{nonce}n{n}x" for n in range(count))
        self._pattern = re.compile(f"tpslot{nonce}n([0-9]+)x")

    def found_in(self, text: str) -> bool:
        return self._pattern.search(text) is not None

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

    def encoded(
        self,
        markers: Markers,
        encode: Callable[[str], bytes],
        encode_lines: Callable[[bytes], bytes],
    ) -> EncodedStencil:
        """The HTML as `encode` makes its octets (UTF-8, line ends), piece by piece, and
        the text in its transfer encoding too: `encode_lines` (quoted-printable) encodes
        each run of whole lines on its own, so runs without a hole are encoded once and
        only the lines that hold an address or a link are encoded for each reader."""

        def each(parts: Parts) -> ByteParts:
            return tuple(encode(text) for text in parts[0]), parts[1]

        text = _fill(self.text, markers.slots, "")
        if not text.endswith(("\n", "\r")):
            text += "\n"  # a body part's last line ends like the others
        runs: list[bytes | ByteParts] = []
        for holes, lines in groupby(_LINE.findall(text), key=markers.found_in):
            run = "".join(lines)
            runs.append(each(markers.cut(run)) if holes else encode_lines(encode(run)))
        return EncodedStencil(self.subject, tuple(runs), each(self.html), encode_lines)


@dataclass(frozen=True)
class EncodedStencil:
    """A stencil whose HTML is octets and whose text is encoded for the wire: `fill`
    gives (subject, text in `encode_lines`'s encoding, HTML octets)."""

    subject: Parts
    text: tuple[bytes | ByteParts, ...]  # runs of lines: encoded, or with holes
    html: ByteParts
    encode_lines: Callable[[bytes], bytes]

    def fill(self, values: tuple[str, ...]) -> tuple[str, bytes, bytes]:
        """Values must not be empty: a hole between a CR and an LF would then join
        them into one line end, which the pieces, converted apart, cannot show."""
        if "" in values:
            raise ValueError("an encoded stencil cannot be filled with an empty value")
        raw = tuple(v.encode("utf-8") for v in values)
        escaped = tuple(str(escape(v)).encode("utf-8") for v in values)
        text = b"".join(
            run if isinstance(run, bytes) else self.encode_lines(_fill(run, raw, b""))
            for run in self.text
        )
        return _fill(self.subject, values, ""), text, _fill(self.html, escaped, b"")


def _fill(parts: tuple[tuple[T, ...], tuple[int, ...]], values: tuple[T, ...], empty: T) -> T:
    texts, slots = parts
    if not slots:
        return texts[0]
    pieces = [texts[0]]
    for slot, text in zip(slots, texts[1:], strict=True):
        pieces.append(values[slot])
        pieces.append(text)
    return empty.join(pieces)


Encoded = tuple[str, bytes, bytes]  # subject, text in its transfer encoding, HTML octets


class _Key:
    """A stencil's key with its hash kept: a digest's key is its papers and their
    views, whose hash a tuple would work out again at every lookup."""

    __slots__ = ("hash", "key")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.hash = hash(key)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.hash == other.hash and self.key == other.key


class Stencils:
    """The stencils of one process's digests, least recently used first out.

    A digest gets one at its second reader (for one reader alone, a stencil would cost
    more than the render it saves). The first one made is checked against a full
    render: a template that transforms an address or a link (a filter, a test on its
    value) cannot be filled, and every digest is then rendered in full. `limit` 0:
    always in full.
    """

    SEEN = 65_536  # digests remembered as rendered once (their hashes only)

    def __init__(
        self,
        slots: int,
        limit: int,
        encode: Callable[[str], bytes],
        encode_lines: Callable[[bytes], bytes],
    ) -> None:
        self.markers = Markers(slots)
        self.limit = limit
        self._encode, self._encode_lines = encode, encode_lines
        self._kept: dict[_Key, EncodedStencil] = {}  # in order of use, the latest last
        self._seen: set[int] = set()
        self._checked = False
        self._agree = limit > 0

    def __len__(self) -> int:
        return len(self._kept)

    def render(
        self,
        key: Hashable,
        values: tuple[str, ...],
        render: Callable[[tuple[str, ...]], RenderedEmail],
    ) -> RenderedEmail | Encoded:
        """The email for `values`: from the stencil of `key` (what every reader of the
        digest shares), or `render(values)` in full. `render(self.markers.slots)` must
        render the same digest with the markers in place of the values."""
        if not self._agree:
            return render(values)
        try:
            found = _Key(key)
        except TypeError:  # a view holding a list cannot be a key
            return render(values)
        stencil = self._kept.pop(found, None)
        if stencil is None:
            if found.hash not in self._seen:
                if len(self._seen) >= self.SEEN:
                    self._seen.clear()
                self._seen.add(found.hash)
                return render(values)
            cut = Stencil.cut(self.markers, render(self.markers.slots))
            if not self._checked:
                self._checked = True
                full = render(values)
                if cut.fill(values) != full:
                    self._agree = False
                    self._kept.clear()
                    return full
            stencil = cut.encoded(self.markers, self._encode, self._encode_lines)
            if len(self._kept) >= self.limit:
                del self._kept[next(iter(self._kept))]
        self._kept[found] = stencil
        return stencil.fill(values)

"""Jinja filters for emails: short author lists, abstract excerpts, dates.

Pure functions of their input, cached where the same paper is rendered for thousands
of subscribers in one run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

from newsletter.render.content import DigestView, PaperView, reason_line

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?\s")
EXCERPT_CHARS = 320


@lru_cache(maxsize=4096)
def oneline(text: str) -> str:
    """Whitespace and control characters collapsed to single spaces."""
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=4096)
def author_list(authors: tuple[str, ...], limit: int = 3) -> str:
    """'A, B, C +4': the first few names and how many more there are."""
    names = [oneline(a) for a in authors if a.strip()]
    if len(names) <= limit + 1:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} +{len(names) - limit}"


@lru_cache(maxsize=4096)
def cut(text: str, limit: int = EXCERPT_CHARS) -> str:
    """At most about `limit` characters, ending at a sentence end or else a word end."""
    text = oneline(text)
    if len(text) <= limit:
        return text
    window = text[: limit + 1]
    sentences = [m.end() for m in _SENTENCE_END.finditer(window)]
    # A sentence end counts only if it keeps most of the window; else cut at a word.
    if sentences and sentences[-1] >= limit // 2:
        return window[: sentences[-1]].rstrip()
    head = window[:limit]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:-–—") + "…"


def excerpt(paper: PaperView, limit: int = EXCERPT_CHARS) -> str:
    """The source's short summary when it has one, else the abstract, shortened."""
    return cut(paper.summary if paper.summary and paper.summary.strip() else paper.abstract, limit)


def authors(paper_authors: Sequence[str], limit: int = 3) -> str:
    return author_list(tuple(paper_authors), limit)


def short_date(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}"


def long_date(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def week_range(start: date, end: date) -> str:
    """'Nov 24 – 30, 2026', 'Nov 28 – Dec 4, 2026' or across years in full."""
    if start.year != end.year:
        return f"{long_date(start)} – {long_date(end)}"
    if start.month != end.month:
        return f"{short_date(start)} – {short_date(end)}, {end.year}"
    return f"{short_date(start)} – {end.day}, {end.year}"


def count(value: int | None) -> str:
    """1234 -> '1.2k', so counts stay short on narrow screens."""
    if value is None:
        return ""
    if value >= 10_000:
        return f"{value // 1000}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return str(value)


def stats(paper: PaperView) -> str:
    """'140 upvotes · 3 comments', leaving out zeros and what the source does not know."""
    parts = []
    if paper.upvotes:
        parts.append(f"{paper.upvotes} upvote{'' if paper.upvotes == 1 else 's'}")
    if paper.comments:
        parts.append(f"{paper.comments} comment{'' if paper.comments == 1 else 's'}")
    return " · ".join(parts)


SUBJECT_CHARS = 78  # RFC 5322's line length: most mail apps show about this much
_SUBJECT_TITLE_MIN = 24  # topics give way before the title gets shorter than this


def digest_subject(digest: DigestView) -> str:
    """'Your papers this week: <first title> and 8 more on LLMs, Vision', scannable and
    at most SUBJECT_CHARS long: the topics that fit, then the first title cut at a word.
    One line always (the message builder refuses control characters in headers)."""
    items, topics = digest.items, [oneline(t) for t in digest.topics]
    head = "Your papers this week: " if topics else "Trending this week: "
    more = f" and {len(items) - 1} more" if len(items) > 1 else ""
    on = ""
    for count in range(len(topics), 0, -1):
        left = len(topics) - count
        candidate = f" on {', '.join(topics[:count])}" + (f" +{left}" if left else "")
        if len(head) + len(more) + len(candidate) + _SUBJECT_TITLE_MIN <= SUBJECT_CHARS:
            on = candidate
            break
    room = SUBJECT_CHARS - len(head) - len(more) - len(on)
    return f"{head}{_short_title(items[0].paper.title, room)}{more}{on}"


def _short_title(title: str, room: int) -> str:
    """At most `room` characters, cut after a word or hyphen when there is one."""
    text = oneline(title)
    if len(text) <= room:
        return text
    head = text[: room - 1]
    stop = max(head.rfind(" "), head.rfind("-") + 1 if "-" in head else -1)
    if stop > room // 3:
        head = head[:stop]
    return head.rstrip(" ,;:-–—") + "…"


FILTERS: dict[str, Callable[..., Any]] = {
    "oneline": oneline,
    "authors": authors,
    "cut": cut,
    "excerpt": excerpt,
    "short_date": short_date,
    "long_date": long_date,
    "week_range": week_range,
    "count": count,
    "stats": stats,
    "reason_line": reason_line,
    "digest_subject": digest_subject,
}

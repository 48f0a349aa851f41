"""What a message shows, loaded in full before rendering (the renderer never queries).

Services build these from the store; render turns them into text and HTML. Frozen and
free of I/O, so a digest can be rendered in any process, many times, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class PaperView:
    id: int
    external_id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    summary: str | None = None
    url: str | None = None  # the paper's page
    pdf_url: str | None = None
    thumbnail_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    comments: int | None = None
    categories: tuple[str, ...] = ()
    published_at: datetime | None = None
    listed_at: datetime | None = None


# "Why you got this", as stored with each planned paper and printed on its card.
TOPIC_REASON = "Matched your topic: "
INTEREST_REASON = "Matched your interest: "
TRENDING_REASON = "Trending this week"
LIKE_REASON = "Like: "  # an example paper the reader gave, by its title
_REASONS = (TOPIC_REASON, INTEREST_REASON, TRENDING_REASON, LIKE_REASON)


def reason_line(reason: str) -> str:
    """The card's line for a stored reason; a bare label is a topic name."""
    return reason if reason.startswith(_REASONS) else TOPIC_REASON + reason


@dataclass(frozen=True)
class DigestItem:
    paper: PaperView
    reason: str  # the subscriber's topic or interest it matched ("why you got this")
    score: float = 0.0
    # Signed "More like this" / "Fewer like this" links for this reader and paper.
    more_url: str = ""
    fewer_url: str = ""


@dataclass(frozen=True)
class SiteView:
    name: str
    tagline: str
    base_url: str
    postal_address: str


@dataclass(frozen=True)
class Recipient:
    email: str
    # Signed links; the service makes them (tokens), render only prints them.
    unsubscribe_url: str
    preferences_url: str


@dataclass(frozen=True)
class DigestView:
    """One subscriber's digest for one edition (empty items: the 'quiet week' note)."""

    site: SiteView
    recipient: Recipient
    edition_key: str  # "2026-W48"
    week_start: date
    week_end: date
    items: tuple[DigestItem, ...] = ()
    archive_url: str = ""  # "view in browser"
    topics: tuple[str, ...] = field(default=())  # the subscriber's interests, for the footer

    @property
    def general(self) -> bool:
        """A reader with no topics or interests gets the general trending digest."""
        return not self.topics

"""Choosing each reader's papers for an edition: their topics and typed interests
ranked by relevance, merged into one list ordered by community upvotes, never a paper
the reader was sent before; readers with no picks get the general trending selection.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.matching import Interest, Match, collection_paused
from newsletter.matching.trending import most_trending
from newsletter.planning.liked import Taught, is_example, reason_of
from newsletter.planning.relevance import interests_for, rank_papers
from newsletter.render.content import INTEREST_REASON, TOPIC_REASON, TRENDING_REASON, PaperView
from newsletter.store import plans
from newsletter.store.models import Paper

ARCHIVE_PAPERS = 50  # the general selection the web archive shows per edition


# --- choosing papers ------------------------------------------------------------------


Reader = plans.PlanReader  # what choosing needs of a subscriber: id, topics, interests


def choose_for(
    session: Session,
    settings: Settings,
    readers: Sequence[Reader],
    papers: Sequence[Paper],
    delivered: Mapping[int, set[int]],
) -> dict[int, tuple[plans.PlannedPaper, ...]]:
    """Each reader's papers, best first, at most digest.max_papers. Reads only.

    A reader with no topics or interests gets the general selection: the window's
    most trending papers, the same order as the archive and the home page.

    Ranking runs once per unique interest for all readers; each reader then merges
    their interests' ranked lists (see `merge_ranked`). Readers with the same
    choices share the work of reading them.
    """
    taught = Taught(session, settings, readers, papers)
    choices = _Choices(settings, taught)
    of_reader = [(r.id, *choices.of(r)) for r in readers]
    every = {i.key: i for _, mine, _ in of_reader for i in mine}
    unique = [i for i in every.values() if not is_example(i)]
    ranked = rank_papers(session, settings, unique, papers) if unique and papers else {}
    ranked.update(taught.ranked([i for i in every.values() if is_example(i)]))
    delivered = taught.held_back(readers, delivered)
    limit = settings.digest.max_papers

    def general(seen: set[int]) -> tuple[plans.PlannedPaper, ...]:
        return _general(settings, papers, seen, limit)

    return merge_ranked(ranked, of_reader, delivered, limit, general)


def merge_ranked(
    ranked: Mapping[str, Sequence[Match]],
    readers: Iterable[tuple[int, Sequence[Interest], tuple[str, ...]]],
    delivered: Mapping[int, set[int]],
    limit: int,
    general: Callable[[set[int]], tuple[plans.PlannedPaper, ...]],
) -> dict[int, tuple[plans.PlannedPaper, ...]]:
    """Each reader's digest from their interests' ranked lists, best first.

    readers: (id, interests, their keys). A paper two interests match comes once, under
    the interest where it scored best; papers in `delivered` are skipped. Each reader's
    merge is lazy (it stops at `limit`); readers with the same interests and no history
    share one result. A reader with no interests gets `general(seen)`.
    """
    streams = _Streams(ranked, limit)
    shared: dict[tuple[str, ...], tuple[plans.PlannedPaper, ...]] = {}
    chosen: dict[int, tuple[plans.PlannedPaper, ...]] = {}
    with collection_paused():  # many small objects, no cycles: see its docstring
        for reader_id, mine, signature in readers:
            seen = delivered.get(reader_id, set())
            if not seen and signature in shared:
                chosen[reader_id] = shared[signature]
                continue
            # A reader who picked nothing gets the general trending digest.
            picks = _merge(mine, streams, seen, limit) if mine else general(seen)
            chosen[reader_id] = picks
            if not seen:
                shared[signature] = picks
    return chosen


class _Choices:
    """Readers' interests, built once per distinct set of choices (and per topic and
    text): most readers share theirs with many others."""

    def __init__(self, settings: Settings, taught: Taught) -> None:
        self._settings = settings
        self._taught = taught
        self._found: dict[tuple[tuple[str, ...], tuple[str, ...]], _Choice] = {}
        self._topics: dict[str, list[Interest]] = {}
        self._texts: dict[str, list[Interest]] = {}

    def of(self, reader: Reader) -> _Choice:
        if reader.likes:  # examples are the reader's own: nothing to share
            mine, keys = self._of_choices(reader)
            examples = self._taught.interests(reader)
            return [*mine, *examples], (*keys, *(i.key for i in examples))
        return self._of_choices(reader)

    def _of_choices(self, reader: Reader) -> _Choice:
        known = self._found.get((reader.topics, reader.interests))
        if known is None:
            # interests_for, one topic or text at a time: config topics, then texts.
            mine = [i for slug in reader.topics for i in self._topic(slug)]
            mine += [i for text in reader.interests for i in self._text(text)]
            known = self._found[reader.topics, reader.interests] = (
                mine,
                tuple(i.key for i in mine),
            )
        return known

    def _topic(self, slug: str) -> list[Interest]:
        if slug not in self._topics:
            self._topics[slug] = interests_for(self._settings, [slug], [])
        return self._topics[slug]

    def _text(self, text: str) -> list[Interest]:
        if text not in self._texts:
            self._texts[text] = interests_for(self._settings, [], [text])
        return self._texts[text]


_Choice = tuple[list[Interest], tuple[str, ...]]  # a reader's interests, and their keys
_Item = tuple[float, int, str]  # (-score, paper id, reason): the order merging keeps


class _Streams:
    """Each interest's ranked papers as merge items, made once per interest and
    reason; the matcher returns them best first by (-score, paper_id)."""

    def __init__(self, ranked: Mapping[str, Sequence[Match]], limit: int) -> None:
        self._ranked = ranked
        self._limit = limit
        self._items: dict[tuple[str, str], tuple[int, list[_Item]]] = {}  # (depth, items)

    def of(self, interest: Interest, depth: int) -> list[_Item]:
        reason = _reason(interest)
        made, items = self._items.get((interest.key, reason), (0, []))
        if made < depth:
            made = max(depth, self._limit)
            matches = self._ranked.get(interest.key, ())[:made]
            items = [(-m.score, m.paper_id, reason) for m in matches]
            self._items[interest.key, reason] = (made, items)
        return items if len(items) <= depth else items[:depth]


def _merge(
    interests: Sequence[Interest],
    streams: _Streams,
    seen: set[int],
    limit: int,
) -> tuple[plans.PlannedPaper, ...]:
    # Skipping already-sent papers only removes items: each list's first
    # limit + len(seen) matches are all the merge can ever take.
    depth = limit + len(seen)
    lists = [streams.of(i, depth) for i in interests]
    items = lists[0] if len(lists) == 1 else heapq.merge(*lists)
    picks: list[plans.PlannedPaper] = []
    taken: set[int] = set()
    for neg_score, paper_id, label in items:
        if paper_id in taken or paper_id in seen:
            continue  # a paper two interests match keeps its best score and reason
        taken.add(paper_id)
        picks.append(plans.PlannedPaper(paper_id, -neg_score, label))
        if len(picks) >= limit:
            break
    return tuple(picks)


def _reason(interest: Interest) -> str:
    if is_example(interest):
        return reason_of(interest)
    kind = TOPIC_REASON if interest.key.startswith("topic:") else INTEREST_REASON
    return kind + interest.label


def _general(
    settings: Settings, papers: Sequence[Paper], seen: set[int], limit: int
) -> tuple[plans.PlannedPaper, ...]:
    top = general_top(papers, settings.matching.half_life_days, limit + len(seen))
    fresh = [p for p in top if p.id not in seen][:limit]
    # Scores only order a reader's list: rank 1 scores highest.
    return tuple(
        plans.PlannedPaper(p.id, 1.0 - rank / (len(fresh) + 1), TRENDING_REASON)
        for rank, p in enumerate(fresh)
    )


def general_top(
    papers: Sequence[Paper], half_life_days: float, limit: int = ARCHIVE_PAPERS
) -> list[Paper]:
    """The non-personal selection (an edition's archive page, the home page): the most
    trending papers, by the score digests use."""
    order = most_trending(
        [(p.upvotes, p.comments) for p in papers], [p.listed_at for p in papers], half_life_days
    )
    return [papers[i] for i in order[:limit]]


def paper_view(paper: Paper) -> PaperView:
    return PaperView(
        id=paper.id,
        external_id=paper.external_id,
        title=paper.title,
        abstract=paper.abstract or "",
        authors=tuple(paper.authors or ()),
        summary=paper.summary,
        url=paper.url,
        pdf_url=paper.pdf_url,
        thumbnail_url=paper.thumbnail_url,
        code_url=paper.code_url,
        upvotes=paper.upvotes,
        comments=paper.comments,
        categories=tuple(paper.categories or ()),
        published_at=paper.published_at,
        listed_at=paper.listed_at,
    )

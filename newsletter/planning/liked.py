"""What readers taught the digest, in planning: their example papers become interests
of their own ("Like: <title>"), and the papers they marked "fewer like this" hold back
themselves and what is close to them (see newsletter/matching/examples.py).

Each example is ranked once for every reader who gave it; readers whose only interests
are examples get papers further out (`matching.example_alone_threshold`) than readers
who also chose topics or typed interests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.matching import Candidate, Interest, Match
from newsletter.matching.embedder import EmbedderUnavailable
from newsletter.matching.examples import held_back_by, rank_by_examples, similarities
from newsletter.planning.embeddings import (
    configured_embedder,
    ensure_embeddings,
    report_unavailable,
    stored_model_name,
)
from newsletter.planning.relevance import candidate, params
from newsletter.render.content import LIKE_REASON
from newsletter.store import plans
from newsletter.store.models import Paper
from newsletter.store.papers import papers_by_id

ALONE = "paper-alone:"  # an example of a reader with nothing else: the wider threshold
NEAR = "paper:"  # an example next to topics or typed interests


def example_key(paper_id: int, alone: bool) -> str:
    return f"{ALONE if alone else NEAR}{paper_id}"


def is_example(interest: Interest) -> bool:
    return interest.key.startswith((ALONE, NEAR))


def reason_of(interest: Interest) -> str:
    return LIKE_REASON + interest.label


class Taught:
    """The papers a batch of readers marked, loaded once for all of them."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        readers: Sequence[plans.PlanReader],
        papers: Sequence[Paper],
    ) -> None:
        self.settings = settings
        self.params = params(settings.matching)
        marked = sorted({p for r in readers for p in (*r.likes, *r.fewer)})
        self.marked: dict[int, Paper] = papers_by_id(session, marked) if marked else {}
        self.window = papers
        self._candidates: dict[int, Candidate] = {}
        if self.marked and papers:
            self._embed(session)

    def _embed(self, session: Session) -> None:
        """Embeddings of the marked papers and the window's, with the configured model
        (words alone when it is off or fails to load)."""
        model = configured_embedder(self.settings.matching)
        current = None
        if model is not None:
            try:
                ensure_embeddings(session, [*self.marked.values(), *self.window], model)
                current = stored_model_name(self.settings.matching)
            except EmbedderUnavailable as exc:
                report_unavailable(self.settings.matching, exc, quiet=False)
        for paper in (*self.marked.values(), *self.window):
            found = candidate(paper)
            if current is None or paper.embedding_model != current:
                found = replace(found, embedding=None)
            self._candidates[paper.id] = found

    def interests(self, reader: plans.PlanReader) -> list[Interest]:
        """The reader's examples as interests (those still stored)."""
        alone = not reader.topics and not reader.interests
        return [
            Interest(example_key(p, alone), self.marked[p].title, self.marked[p].title)
            for p in reader.likes
            if p in self.marked
        ]

    def ranked(self, interests: Sequence[Interest]) -> dict[str, list[Match]]:
        """Each example interest's papers in the window, best first."""
        found: dict[str, list[Match]] = {}
        window = [self._candidates[p.id] for p in self.window if p.id in self._candidates]
        for alone, prefix in ((True, ALONE), (False, NEAR)):
            keys = {i.key for i in interests if i.key.startswith(prefix)}
            wanted = sorted(int(key[len(prefix) :]) for key in keys)
            if not wanted or not window:
                continue
            examples = [self._candidates[p] for p in wanted]
            titles = [self.marked[p].title for p in wanted]
            by_example = rank_by_examples(examples, titles, window, self.params, alone=alone)
            found.update({example_key(p, alone): m for p, m in by_example.items()})
        return found

    def held_back(
        self, readers: Sequence[plans.PlanReader], delivered: Mapping[int, set[int]]
    ) -> dict[int, set[int]]:
        """`delivered` plus, for each reader with "fewer" marks, what those hold back.

        The similarity of every marked paper to the window is computed once for all
        readers; each reader then takes the rows of their own marks.
        """
        marking = [r for r in readers if any(p in self._candidates for p in r.fewer)]
        seen = dict(delivered)
        if not marking:
            return seen
        window = [self._candidates[p.id] for p in self.window if p.id in self._candidates]
        fewer, against = self._rows([p for r in marking for p in r.fewer], window)
        likes, liked = self._rows([p for r in marking for p in r.likes], window)
        for reader in marking:
            mine = [fewer[p] for p in reader.fewer if p in fewer]
            mine_liked = [likes[p] for p in reader.likes if p in likes]
            kept = held_back_by(
                against[mine],
                liked[mine_liked] if mine_liked else None,
                reader.fewer,
                window,
                self.params,
            )
            seen[reader.id] = set(seen.get(reader.id, set())) | kept
        return seen

    def _rows(
        self, paper_ids: Sequence[int], window: Sequence[Candidate]
    ) -> tuple[dict[int, int], np.ndarray]:
        """Each of these marked papers' row in their similarity to the window."""
        marked = [p for p in dict.fromkeys(paper_ids) if p in self._candidates]
        rows = {p: n for n, p in enumerate(marked)}
        found = [self._candidates[p] for p in marked]
        return rows, similarities(found, window, self.params)

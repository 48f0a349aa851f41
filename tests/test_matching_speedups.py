"""The fast matcher returns exactly what the straightforward one did.

`Reference` below is the matcher as it was before it was optimised (per-interest rows,
Python loops, heapq merging), kept here as the definition of the expected results:
same matches, same order, same reasons, scores within 1e-6. Synthetic papers and
interests exercise every branch: topics with keywords and categories, free text with
phrases and stop words, unknown words, empty text, papers without embeddings, limits,
several blocks of interests, and subscribers whose interests overlap.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import sparse

from newsletter.matching import (
    Candidate,
    Interest,
    Match,
    MatchParams,
    hybrid,
    picks,
    picks_for_all,
    rank,
)
from newsletter.matching.embedder import from_bytes, to_bytes
from newsletter.matching.text import STOPWORDS, terms
from newsletter.matching.trending import trending_scores

NOW = datetime(2026, 3, 11, tzinfo=UTC)
DIMENSION = 24

# --- the reference: the matcher before optimisation ----------------------------------

_TOKEN = re.compile(r"[a-z0-9]+|[.,;:!?()\[\]{}\"/]")


def ref_stem(word: str) -> str:
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def ref_terms(text: str) -> list[str]:
    normal = unicodedata.normalize("NFKC", text).lower().replace("'s", "")
    sequence = [
        None if t in STOPWORDS or not t[0].isalnum() else ref_stem(t)
        for t in _TOKEN.findall(normal)
    ]
    unigrams = [w for w in sequence if w is not None]
    pairs = [f"{a} {b}" for a, b in itertools.pairwise(sequence) if a and b]
    return unigrams + pairs


class Reference:
    """The candidates' lexical index, trending and vectors, and the per-interest ranking."""

    def __init__(self, candidates: Sequence[Candidate], params: MatchParams) -> None:
        self.candidates = candidates
        self.params = params
        self.ids = np.array([c.paper_id for c in candidates], dtype=np.int64)
        counts = [Counter(ref_terms(c.title) * 2 + ref_terms(c.abstract)) for c in candidates]
        vocabulary: dict[str, int] = {}
        for count in counts:
            for term in count:
                vocabulary.setdefault(term, len(vocabulary))
        self.vocabulary = vocabulary
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        average = float(lengths.mean()) if lengths.mean() > 0 else 1.0
        rows, cols, values = [], [], []
        for row, count in enumerate(counts):
            norm = 1.2 * (1 - 0.75 + 0.75 * lengths[row] / average)
            for term, tf in count.items():
                rows.append(row)
                cols.append(vocabulary[term])
                values.append(tf / (tf + norm))
        shape = (len(counts), len(vocabulary))
        self.matrix = sparse.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
        df = np.bincount(self.matrix.indices, minlength=len(vocabulary)).astype(np.float64)
        n = len(candidates)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5))
        self.unknown_idf = float(np.log1p((n + 0.5) / 0.5))
        self.trending = np.array(
            trending_scores(
                [(c.upvotes, c.comments) for c in candidates],
                [c.listed_at for c in candidates],
                params.half_life_days,
            )
        )
        known = [c.embedding for c in candidates if c.embedding]
        self.vectors = np.zeros((n, DIMENSION), dtype=np.float32)
        self.has = np.array([bool(c.embedding) for c in candidates])
        for i, c in enumerate(candidates):
            if c.embedding:
                self.vectors[i] = from_bytes(c.embedding)
        self.semantic_ok = bool(known)

    def lexical(self, interest: Interest) -> np.ndarray:
        rows = [ref_terms(interest.label if interest.keywords else interest.text)]
        rows.extend(ref_terms(k) for k in interest.keywords)
        rows = [r for r in rows if r] or [[]]
        best = np.zeros(len(self.candidates), dtype=np.float32)
        for query in rows:
            unique = list(dict.fromkeys(query))
            columns = [self.vocabulary.get(t) for t in unique]
            total = sum(self.unknown_idf if c is None else self.idf[c] for c in columns)
            weights = [(c, np.float32(self.idf[c] / total)) for c in columns if c is not None]
            if not weights:
                best = np.maximum(best, 0)
                continue
            weights.sort()  # the sparse product sums in column order
            q = sparse.csr_matrix(
                ([w for _, w in weights], ([0] * len(weights), [c for c, _ in weights])),
                shape=(1, len(self.vocabulary)),
                dtype=np.float32,
            )
            best = np.maximum(best, np.asarray((q @ self.matrix.T).toarray()[0], np.float32))
        return best

    def rank(self, interest: Interest, vector: np.ndarray | None, limit: int | None) -> list[Match]:
        p = self.params
        lexical = self.lexical(interest)
        bonus = np.array(
            [
                p.category_bonus if set(interest.categories) & set(c.categories) else 0.0
                for c in self.candidates
            ],
            dtype=np.float32,
        )
        scale = p.threshold / p.lexical_threshold
        relevance = lexical * scale + bonus * scale
        semantic = None
        if vector is not None and self.semantic_ok:
            semantic = (np.asarray(vector, np.float32)[np.newaxis, :] @ self.vectors.T)[0]
            mixed = p.semantic_weight * semantic + p.lexical_weight * lexical + bonus
            relevance = np.where(self.has, mixed, relevance)
        hits = np.flatnonzero(relevance >= p.threshold)
        above = np.clip((relevance[hits] - p.threshold) / (1 - p.threshold), 0, 1)
        scores = p.relevance_weight * above + (1 - p.relevance_weight) * self.trending[hits]
        order = np.lexsort((self.ids[hits], -scores))[:limit]
        found = []
        for k in order:
            column = hits[k]
            ways = ["its words"] if lexical[column] > 0.2 else []
            if semantic is not None and semantic[column] > 0.3:
                ways.append("its meaning")
            if bonus[column] > 0:
                ways.append("its arXiv category")
            how = " and ".join(ways) or "related words"
            reason = f"Matches your interest “{interest.label}” by {how}"
            found.append(
                Match(int(self.ids[column]), float(scores[k]), float(relevance[column]), reason)
            )
        return found


def reference_rank(
    interests: Sequence[Interest],
    candidates: Sequence[Candidate],
    vectors: np.ndarray | None,
    params: MatchParams,
    limit: int | None = None,
) -> dict[str, list[Match]]:
    if not candidates:
        return {i.key: [] for i in interests}
    ref = Reference(candidates, params)
    return {
        interest.key: ref.rank(interest, None if vectors is None else vectors[n], limit)
        for n, interest in enumerate(interests)
    }


def reference_picks(
    ranked: Mapping[str, list[Match]], keys: Iterable[str], limit: int
) -> list[Match]:
    streams = [((-m.score, m.paper_id, m) for m in ranked.get(key, ())) for key in keys]
    chosen: list[Match] = []
    taken: set[int] = set()
    for _, paper_id, match in heapq.merge(*streams, key=lambda item: item[:2]):
        if paper_id not in taken:
            taken.add(paper_id)
            chosen.append(match)
            if len(chosen) >= limit:
                break
    return chosen


# --- synthetic editions ---------------------------------------------------------------

_VOCABULARY = (
    "language model models diffusion video retrieval augmented generation point cloud "
    "clouds registration graph neural network networks reinforcement learning agents "
    "memory memories radiology clinical notes speech recognition image segmentation "
    "transformer transformers attention sparse linear robotics policy protein folding "
    "quantum circuits benchmark evaluation alignment reasoning theorem proving code "
    "compilers tabular forecasting time series"
)
WORDS = tuple(_VOCABULARY.split())
FILLER = ("the", "of", "for", "with", "and", "in", "on", "a", "to", "by", "is", "we", "our")
CATEGORIES = ("cs.CL", "cs.CV", "cs.LG", "cs.RO", "q-bio.BM", "stat.ML")


def sentence(rng: random.Random, low: int, high: int) -> str:
    out = []
    for _ in range(rng.randint(low, high)):
        out.append(rng.choice(WORDS) if rng.random() < 0.7 else rng.choice(FILLER))
        if rng.random() < 0.08:
            out[-1] += rng.choice([",", ".", "-based", "'s"])
    return " ".join(out).capitalize()


def unit(rng: np.random.Generator, size: int) -> np.ndarray:
    vectors = rng.standard_normal((size, DIMENSION)).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / norms, dtype=np.float32)


def make_papers(count: int, seed: int, embedded: float = 0.9) -> list[Candidate]:
    rng = random.Random(seed)
    vectors = unit(np.random.default_rng(seed), count)
    papers = []
    for n in range(count):
        upvotes = rng.choice([None, 0, 1, 3, 12, 40, 250])
        papers.append(
            Candidate(
                paper_id=1000 + (n * 7919) % 5003,  # ids not in candidate order
                title=sentence(rng, 3, 9),
                abstract=" ".join(sentence(rng, 6, 20) + "." for _ in range(rng.randint(0, 5))),
                categories=tuple(rng.sample(CATEGORIES, rng.randint(0, 2))),
                upvotes=upvotes,
                comments=None if upvotes is None else rng.randint(0, 9),
                listed_at=NOW - timedelta(hours=rng.randint(0, 24 * 7)),
                embedding=to_bytes(vectors[n]) if rng.random() < embedded else None,
            )
        )
    return papers


def make_interests(count: int, seed: int) -> list[Interest]:
    rng = random.Random(seed)
    interests = [
        Interest("text:empty", "", ""),
        Interest("text:stop", "the of", "the of"),
        Interest("text:unknown", "zeolite", "zeolite"),
    ]
    while len(interests) < count:
        if rng.random() < 0.3:
            name = " ".join(rng.sample(WORDS, rng.randint(1, 3)))
            keywords = tuple(
                " ".join(rng.sample(WORDS, rng.randint(1, 2))) for _ in range(rng.randint(1, 5))
            )
            categories = tuple(rng.sample(CATEGORIES, rng.randint(0, 2)))
            key = f"topic:{len(interests)}"
            interests.append(
                Interest(key, name.title(), f"{name}. About {name}.", keywords, categories)
            )
        else:
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.3:
                words.insert(1, rng.choice(["for", "of", "and", "in"]))
            if rng.random() < 0.1:
                words.append("zeolite")
            typed = " ".join(words)
            interests.append(Interest(f"text:{len(interests)}:{typed}", typed, typed))
    return interests


def interest_vectors(
    interests: Sequence[Interest], papers: Sequence[Candidate], seed: int
) -> np.ndarray:
    """Half near a paper (so meaning matches happen), half anywhere."""
    rng = np.random.default_rng(seed)
    noise = unit(rng, len(interests))
    embedded = [from_bytes(p.embedding) for p in papers if p.embedding]
    out = np.empty_like(noise)
    for n in range(len(interests)):
        if embedded and n % 2 == 0:
            near = embedded[int(rng.integers(len(embedded)))] + 0.6 * noise[n]
            out[n] = near / np.linalg.norm(near)
        else:
            out[n] = noise[n]
    return out


def same(found: Mapping[str, list[Match]], expected: Mapping[str, list[Match]]) -> None:
    assert list(found) == list(expected)
    for key, matches in expected.items():
        got = found[key]
        assert [(m.paper_id, m.reason) for m in got] == [(m.paper_id, m.reason) for m in matches], (
            key
        )
        for new, old in zip(got, matches, strict=True):
            assert new.score == pytest.approx(old.score, abs=1e-6), key
            assert new.relevance == pytest.approx(old.relevance, abs=1e-6), key


PAPERS = make_papers(300, seed=1)
INTERESTS = make_interests(400, seed=2)
VECTORS = interest_vectors(INTERESTS, PAPERS, seed=3)


# --- the guard ------------------------------------------------------------------------


def test_the_synthetic_edition_exercises_every_way_of_matching() -> None:
    expected = reference_rank(INTERESTS, PAPERS, VECTORS, MatchParams())
    reasons = Counter(m.reason.split(" by ")[-1] for ms in expected.values() for m in ms)
    assert {"its words", "its meaning", "its words and its meaning"} <= set(reasons)
    assert any("arXiv category" in r for r in reasons)
    assert 50 < sum(1 for ms in expected.values() if ms) < len(INTERESTS) - 50


@pytest.mark.parametrize("limit", [None, 3])
def test_hybrid_ranking_is_unchanged(limit: int | None) -> None:
    expected = reference_rank(INTERESTS, PAPERS, VECTORS, MatchParams(), limit)
    same(rank(INTERESTS, PAPERS, interest_vectors=VECTORS, limit=limit), expected)


@pytest.mark.parametrize("limit", [None, 2])
def test_ranking_by_words_and_categories_alone_is_unchanged(limit: int | None) -> None:
    params = MatchParams(category_bonus=0.2)
    expected = reference_rank(INTERESTS, PAPERS, None, params, limit)
    same(rank(INTERESTS, PAPERS, params=params, limit=limit), expected)


def test_papers_that_all_have_embeddings_rank_as_before() -> None:
    papers = make_papers(200, seed=4, embedded=1.0)
    vectors = interest_vectors(INTERESTS, papers, seed=5)
    expected = reference_rank(INTERESTS, papers, vectors, MatchParams())
    same(rank(INTERESTS, papers, interest_vectors=vectors), expected)


def test_papers_without_any_embedding_rank_by_words(monkeypatch: pytest.MonkeyPatch) -> None:
    papers = make_papers(120, seed=6, embedded=0.0)
    expected = reference_rank(INTERESTS, papers, VECTORS, MatchParams())
    same(rank(INTERESTS, papers, interest_vectors=VECTORS), expected)


def test_interests_spread_over_several_blocks_rank_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hybrid, "BLOCK", 37)
    expected = reference_rank(INTERESTS, PAPERS, VECTORS, MatchParams(), 4)
    same(rank(INTERESTS, PAPERS, interest_vectors=VECTORS, limit=4), expected)


def test_tokens_are_unchanged() -> None:
    texts = [p.title for p in PAPERS[:50]] + [p.abstract for p in PAPERS[:50]]
    texts += ["Retrieval-Augmented LLMs", "Ａｌｐｈａ ﬁne-tuning", "Bob's memories; (point) cloud"]
    for text in texts:
        assert terms(text) == ref_terms(text)


def test_subscribers_picks_are_unchanged() -> None:
    ranked = rank(INTERESTS, PAPERS, interest_vectors=VECTORS)
    expected = reference_rank(INTERESTS, PAPERS, VECTORS, MatchParams())
    rng = random.Random(8)
    keys = [i.key for i in INTERESTS]
    for _ in range(300):
        mine = [*rng.sample(keys, rng.randint(0, 5)), "text:nobody typed this"]
        limit = rng.choice([1, 3, 10])
        found = picks(ranked, mine, limit)
        assert found == reference_picks(ranked, mine, limit)
        same({"picks": found}, {"picks": reference_picks(expected, mine, limit)})


def test_merging_once_per_signature_gives_each_subscriber_their_own_picks() -> None:
    ranked = rank(INTERESTS, PAPERS, interest_vectors=VECTORS)
    rng = random.Random(9)
    popular = [i.key for i in INTERESTS[:12]]
    subscribers = [
        [*sorted(rng.sample(popular, rng.randint(1, 2))), f"text:own {n}"] for n in range(500)
    ]
    chosen = picks_for_all(ranked, subscribers, 4)
    assert len(chosen) == len(subscribers)
    for keys, found in zip(subscribers, chosen, strict=True):
        assert found == reference_picks(ranked, keys, 4)
    # Merged once per run of interests that matched something ("text:own …" matched none).
    signatures = {tuple(key for key in keys if ranked.get(key)) for keys in subscribers}
    assert len({id(found) for found in chosen}) == len(signatures) < len(subscribers) / 2

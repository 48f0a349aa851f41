"""Papers like a reader's examples, and papers too close to ones they want fewer of.

An example is a paper the reader gave ("papers like these", or "More like this" from
an email). A new paper matches an example when the two are similar enough:

    similarity = semantic_weight · cos(embeddings) + lexical_weight · cos(tf-idf)

where the tf-idf vectors are built over title + abstract terms (words and phrases,
the tokenization of the lexical matcher) of the candidates and the examples together.
Without embeddings only the tf-idf cosine counts, against its own threshold
(`example_lexical_threshold`). Next to topics or typed interests, examples add only
close papers (`example_threshold`); a reader who gave examples alone gets papers
further out (`example_alone_threshold`), as nothing else describes their interest.
The order mixes that similarity with trending, as interests do; each match's reason
is the title of the example it is like.

A paper marked "fewer" is never sent to that reader again, and new papers at least
`fewer_threshold` similar to it are held back, unless they are closer to one of the
reader's examples than to it (the reader said both, the nearer one wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse

from newsletter.matching.embedder import from_bytes
from newsletter.matching.text import terms
from newsletter.matching.trending import trending_scores
from newsletter.matching.types import Candidate, Match, MatchParams


def thresholds(params: MatchParams, alone: bool) -> tuple[float, float]:
    """(with embeddings, words only): `alone` for a profile of examples only."""
    if alone:
        return params.example_alone_threshold, params.example_alone_lexical_threshold
    return params.example_threshold, params.example_lexical_threshold


def similarities(
    examples: Sequence[Candidate],
    candidates: Sequence[Candidate],
    params: MatchParams,
    alone: bool = False,
) -> np.ndarray:
    """examples × candidates similarity on the scale of the (hybrid) example threshold."""
    if not examples or not candidates:
        return np.zeros((len(examples), len(candidates)), dtype=np.float32)
    lexical = _tfidf_cosine(examples, candidates)
    semantic = _embedding_cosine(examples, candidates)
    hybrid, words = thresholds(params, alone)
    scale = hybrid / words
    if semantic is None:
        return lexical * scale
    vectors, known = semantic
    mixed = params.semantic_weight * vectors + params.lexical_weight * lexical
    # A pair where either side has no embedding falls back to words alone.
    return np.where(known, mixed, lexical * scale).astype(np.float32)


def rank_by_examples(
    examples: Sequence[Candidate],
    titles: Sequence[str],
    candidates: Sequence[Candidate],
    params: MatchParams,
    limit: int | None = None,
    alone: bool = False,
) -> dict[int, list[Match]]:
    """For each example paper id, the candidates like it, best first (never itself).
    `alone`: the reader has no topic or typed interest, only examples."""
    similarity = similarities(examples, candidates, params, alone)
    trending = np.asarray(
        trending_scores(
            [(c.upvotes, c.comments) for c in candidates],
            [c.listed_at for c in candidates],
            params.half_life_days,
        )
    )
    threshold = thresholds(params, alone)[0]
    w = params.relevance_weight
    ranked: dict[int, list[Match]] = {}
    for row, (example, title) in enumerate(zip(examples, titles, strict=True)):
        hits = [
            col
            for col in np.flatnonzero(similarity[row] >= threshold).tolist()
            if candidates[col].paper_id != example.paper_id
        ]
        above = np.clip((similarity[row, hits] - threshold) / max(1 - threshold, 1e-9), 0, 1)
        scores = w * above + (1 - w) * trending[hits]
        order = sorted(range(len(hits)), key=lambda n: (-scores[n], candidates[hits[n]].paper_id))
        reason = title  # the example it is like: planning words the reason
        ranked[example.paper_id] = [
            Match(
                candidates[hits[n]].paper_id,
                float(scores[n]),
                float(similarity[row, hits[n]]),
                reason,
            )
            for n in order[:limit]
        ]
    return ranked


def held_back(
    fewer: Sequence[Candidate],
    examples: Sequence[Candidate],
    candidates: Sequence[Candidate],
    params: MatchParams,
) -> set[int]:
    """Candidates the reader asked for fewer of: the marked papers themselves, and those
    at least `fewer_threshold` similar to one, unless an example is nearer still."""
    marked = [c.paper_id for c in fewer]
    if not fewer or not candidates:
        return set(marked) & {c.paper_id for c in candidates}
    against = similarities(fewer, candidates, params)
    liked = similarities(examples, candidates, params) if examples else None
    return held_back_by(against, liked, marked, candidates, params)


def held_back_by(
    against: np.ndarray,
    liked: np.ndarray | None,
    marked: Iterable[int],
    candidates: Sequence[Candidate],
    params: MatchParams,
) -> set[int]:
    """`held_back` from similarities already computed: one reader's "fewer" papers ×
    candidates (`against`) and examples × candidates (`liked`, None: no examples).
    Planning computes the rows once for all readers and picks each reader's."""
    nearest_fewer = against.max(axis=0)
    nearest_like = liked.max(axis=0) if liked is not None and len(liked) else 0.0
    close = (nearest_fewer >= params.fewer_threshold) & (nearest_fewer >= nearest_like)
    return set(marked) | {candidates[i].paper_id for i in np.flatnonzero(close).tolist()}


def _tfidf_cosine(examples: Sequence[Candidate], candidates: Sequence[Candidate]) -> np.ndarray:
    documents = [terms(f"{c.title}. {c.abstract}") for c in (*examples, *candidates)]
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    for row, found in enumerate(documents):
        for term in found:
            rows.append(row)
            columns.append(vocabulary.setdefault(term, len(vocabulary)))
    counts = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)),
        shape=(len(documents), max(len(vocabulary), 1)),
    )
    counts.sum_duplicates()
    counts.data = 1.0 + np.log(counts.data)  # sublinear term frequency
    frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log((1 + len(documents)) / (1 + frequency)) + 1.0
    weighted = counts.multiply(idf.astype(np.float32)).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    weighted = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted
    head = weighted[: len(examples)]
    tail = weighted[len(examples) :]
    return np.asarray((head @ tail.T).todense(), dtype=np.float32)


def _embedding_cosine(
    examples: Sequence[Candidate], candidates: Sequence[Candidate]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Cosine of the stored (normalized) embeddings, and where both sides have one."""
    left = _vectors(examples)
    right = _vectors(candidates)
    if left is None or right is None or left[0].shape[1] != right[0].shape[1]:
        return None
    product = left[0] @ right[0].T
    return product, np.outer(left[1], right[1])


def _vectors(papers: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray] | None:
    blobs = [c.embedding for c in papers]
    sizes = {len(b) for b in blobs if b}
    if len(sizes) != 1:
        return None
    dimension = sizes.pop() // 4
    vectors = np.zeros((len(papers), dimension), dtype=np.float32)
    known = np.zeros(len(papers), dtype=bool)
    for i, blob in enumerate(blobs):
        if blob:
            vectors[i] = from_bytes(blob)
            known[i] = True
    return vectors, known

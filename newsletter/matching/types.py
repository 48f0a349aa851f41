"""The values the matcher takes and returns (re-exported by newsletter.matching)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Interest:
    key: str  # "topic:llms" or "text:diffusion models for video"
    label: str  # what "why you got this" shows: the topic name or the typed text
    text: str  # the query: name, description, or the free text
    keywords: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    paper_id: int
    title: str
    abstract: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    upvotes: int | None = None
    comments: int | None = None
    listed_at: datetime | None = None
    embedding: bytes | None = None  # float32 sentence embedding of title + abstract


@dataclass(frozen=True, slots=True)
class Match:
    paper_id: int
    score: float  # the order of a digest: relevance combined with trending
    relevance: float  # how well the paper fits the interest (≥ the threshold it passed)
    reason: str = ""  # "why you got this": the interest and how it matched


@dataclass(frozen=True)
class MatchParams:
    """Weights and calibrated thresholds (config `matching`; defaults fit the eval set).

    relevance = semantic_weight · cosine + lexical_weight · coverage (+ category_bonus)
    A paper matches when relevance ≥ threshold, or, by meaning, ≥ standout_threshold where it
    stands out from the window's papers for that interest. Without embeddings: relevance =
    coverage (+ category_bonus) against lexical_threshold, rescaled onto the same scale.
    A typed interest that names a configured topic is matched as that topic (expand.py).
    """

    semantic_weight: float = 0.6
    lexical_weight: float = 0.4
    category_bonus: float = 0.15
    threshold: float = 0.37
    lexical_threshold: float = 0.3
    # A paper that stands out from the window for an interest matches from this lower
    # relevance (see hybrid._Papers._matching).
    standout_threshold: float = 0.30
    standout_sigma: float = 3.0
    relevance_weight: float = 0.4
    half_life_days: float = 3.5
    topic_similarity: float = 0.7  # a one-word interest this close to a topic's name is it
    # A paper this similar to an example is "like" it. Examples next to topics or typed
    # interests add only close papers; a profile of examples alone reaches further.
    example_threshold: float = 0.45
    example_lexical_threshold: float = 0.2  # the same without embeddings (tf-idf cosine)
    example_alone_threshold: float = 0.35
    example_alone_lexical_threshold: float = 0.06
    fewer_threshold: float = 0.5  # a paper this similar to a "fewer" one is held back

"""Short typed interests read as the configured topic they name.

One word is too little text for a sentence-embedding model to place: "healthcare"
scores 0.12–0.24 against radiology and clinical-notes papers, no higher than unrelated
papers score against other words, so no threshold can tell it from noise. Yet a reader
who types one word usually means the broad field, and `config.yaml` already describes
the fields readers pick from. So a typed interest is read as a configured topic when it
*names* that topic: it is a single content word that is one of the topic's names, or
whose embedding is within `topic_similarity` (cosine) of one ("medicine" ≈ "healthcare").

A topic's names are its slug, its display name, and those of its keywords made only of
words from the slug or name ("vision" for Computer vision, "memory" for Memory in
neural networks); other keywords are facets, not names: "translation" does not name
the whole NLP topic. Longer typed interests ("episodic memory", even "retrieval-augmented
generation") are specific, and the model places them well: they keep their own words
and meaning.

The interest keeps its key and label, so a subscriber's picks and "why you got this"
still speak of what they typed; only what it is matched by changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from newsletter.matching.text import words
from newsletter.matching.types import Interest

EmbedFn = Callable[[Sequence[str]], np.ndarray]


def topic(
    slug: str, name: str, description: str, keywords: Sequence[str], categories: Sequence[str]
) -> Interest:
    """A configured topic as an interest: matched by its name, description and keywords."""
    text = ". ".join(part for part in (name, description) if part)
    return Interest(f"topic:{slug}", name, text, tuple(keywords), tuple(categories))


def content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in words(text) if w is not None)


def slug_of(topic: Interest) -> str:
    return topic.key.removeprefix("topic:").replace("-", " ").replace("_", " ")


def topic_names(topic: Interest) -> tuple[str, ...]:
    """The slug, the display name, and the keywords made of the slug's or name's words."""
    slug = slug_of(topic)
    vocabulary = content_words(slug) | content_words(topic.label)
    named = [k for k in topic.keywords if content_words(k) and content_words(k) <= vocabulary]
    return tuple(dict.fromkeys((slug, topic.label, *named)))


def expand(
    interests: Sequence[Interest],
    topics: Sequence[Interest],
    embed: EmbedFn | None = None,
    threshold: float = 0.7,
) -> list[Interest]:
    """The interests, each typed one that names a topic replaced by that topic's query.

    embed: L2-normalized embeddings of short texts (None: the lexical rule only).
    """
    if not topics:
        return list(interests)
    names = [(topic, name) for topic in topics for name in topic_names(topic)]
    by_words = {content_words(name): topic for topic, name in reversed(names)}
    found: dict[int, Interest] = {}
    single: list[int] = []
    for n, interest in enumerate(interests):
        if interest.keywords or interest.categories:
            continue  # a topic, or already expanded
        own = content_words(interest.text)
        if len(own) != 1:
            continue
        if own in by_words:
            found[n] = by_words[own]
        else:
            single.append(n)
    if embed is not None and single:
        found.update(_by_meaning(interests, single, names, embed, threshold))
    return [_as_topic(i, found[n]) if n in found else i for n, i in enumerate(interests)]


def _by_meaning(
    interests: Sequence[Interest],
    rows: list[int],
    names: list[tuple[Interest, str]],
    embed: EmbedFn,
    threshold: float,
) -> dict[int, Interest]:
    vectors = embed([interests[n].text for n in rows])
    name_vectors = embed([name for _, name in names])
    similarity = vectors @ name_vectors.T
    best = similarity.argmax(axis=1)
    return {
        n: names[int(column)][0]
        for n, row, column in zip(rows, similarity, best, strict=True)
        if row[column] >= threshold
    }


def _as_topic(interest: Interest, topic: Interest) -> Interest:
    return Interest(interest.key, interest.label, topic.text, topic.keywords, topic.categories)

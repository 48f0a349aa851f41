"""Tokenization shared by the lexical index and queries: one rule for both sides.

Lower-cased alphanumeric runs (hyphenated compounds split into their parts), a small
English stop list, a light plural stemmer ("LLMs" → "llm", "memories" → "memory"), and
phrases as adjacent pairs of content words ("point cloud", "language model"). A stop
word or punctuation breaks a phrase, so "models for video" yields no "model video" pair.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata

_TOKEN = re.compile(r"[a-z0-9]+|[.,;:!?()\[\]{}\"/]")
_STOP_TEXT = """a an and are as at be been being but by can could do does for from has have how i
    in into is it its it's of on or our over such than that the their them then there these
    they this those through to under up us very via was we were what when where which while
    who why will with within without you your also both each more most other some any all
    about after before between during only own same so too not no nor can't"""
STOPWORDS = frozenset(_STOP_TEXT.split())


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Plural and possessive endings only: aggressive stemmers merge unrelated terms."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


@functools.lru_cache(maxsize=200_000)
def _word(token: str) -> str | None:
    """One token's content word, or None for a stop word or punctuation (cached: a
    paper's thousands of tokens are mostly the same few hundred words)."""
    return None if token in STOPWORDS or not token[0].isalnum() else stem(token)


def words(text: str) -> list[str | None]:
    """Stemmed content words in order; None marks a stop word or punctuation (a break)."""
    normal = unicodedata.normalize("NFKC", text).lower().replace("'s", "")
    return list(map(_word, _TOKEN.findall(normal)))


def terms(text: str) -> list[str]:
    """Unigrams and adjacent-pair phrases ("point cloud"), in order, with repeats."""
    sequence = words(text)
    unigrams = [w for w in sequence if w is not None]
    pairs = [
        f"{first} {second}"
        for first, second in itertools.pairwise(sequence)
        if first is not None and second is not None
    ]
    return unigrams + pairs


@functools.lru_cache(maxsize=100_000)
def query_terms(text: str) -> tuple[str, ...]:
    """`terms` of a short query text, cached: the same interests come back every edition
    (and every `newsletter match`), so each unique text is tokenised once per process."""
    return tuple(terms(text))

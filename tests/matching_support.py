"""Helpers for the matching tests: the sample papers, the real model (once), a toy model."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from newsletter.matching.embedder import Embedder, EmbedderUnavailable, load_embedder
from newsletter.matching.evaluate import SamplePaper
from newsletter.sources.records import PaperRecord, title_key

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "newsletter" / "data" / "sample-papers.jsonl"
CAPTURE = ROOT.parent / "shared" / "data" / "hf-papers-page.txt"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LISTED = datetime(2026, 3, 11, tzinfo=UTC)


@functools.cache
def sample_papers() -> tuple[SamplePaper, ...]:
    """The bundled sample; the page capture it is made from while it is not there."""
    if SAMPLE.exists():
        rows = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line]
        return tuple(SamplePaper(r["title"], r.get("abstract") or "") for r in rows)
    blocks = [b.strip() for b in CAPTURE.read_text("utf-8").split("\n\n") if b.strip()]
    body = blocks[blocks.index("Mar 11") + 1 :]
    return tuple(SamplePaper(t, a) for t, a in zip(body[::2], body[1::2], strict=True))


def sample_records() -> list[PaperRecord]:
    return [
        PaperRecord(title_key(p.title), p.title, "page", p.abstract, listed_at=LISTED)
        for p in sample_papers()
    ]


@functools.cache
def _real_model() -> Embedder | str:
    try:
        return load_embedder(MODEL)
    except EmbedderUnavailable as exc:
        return str(exc)


def real_embedder() -> Embedder:
    """all-MiniLM-L6-v2, loaded once per test session; skips where the extra is absent."""
    found = _real_model()
    if isinstance(found, str):
        pytest.skip(f"semantic extra not installed ({found})")
    return found


class ToyEmbedder:
    """A deterministic bag-of-words hashing model that counts what it is asked to embed."""

    def __init__(self, name: str = "toy-hash", dimension: int = 64) -> None:
        self.name = name
        self.dimension = dimension
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.sha1(word.encode()).digest()
                vectors[row, digest[0] % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

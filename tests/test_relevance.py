"""The relevance service: stored paper embeddings, per-unique-interest vectors, fallbacks."""

from __future__ import annotations

import logging

import pytest

from newsletter import db, relevance
from newsletter.context import Context
from newsletter.errors import MatcherUnavailable
from newsletter.matching import Match
from newsletter.store.papers import all_papers, upsert_papers
from tests.conftest import make_settings
from tests.matching_support import MODEL, ToyEmbedder, real_embedder, sample_records


@pytest.fixture
def stored(context: Context) -> Context:
    with db.transaction(context.sessions) as session:
        upsert_papers(session, sample_records())
    return context


def rank_with(
    context: Context, embedder: ToyEmbedder | None, *queries: str
) -> dict[str, list[Match]]:
    interests = [relevance.text_interest(q) for q in queries]
    with db.transaction(context.sessions) as session:
        return relevance.rank_papers(
            session, context.settings, interests, all_papers(session), embedder=embedder
        )


def test_paper_embeddings_are_computed_once_and_stored(stored: Context) -> None:
    toy = ToyEmbedder()
    rank_with(stored, toy, "linear attention")
    assert len(toy.texts) == 37 + 1  # every paper, then the one interest
    rank_with(stored, toy, "episodic memory")
    assert len(toy.texts) == 37 + 2  # only the new interest: papers come from the store
    with db.transaction(stored.sessions) as session:
        papers = all_papers(session)
        assert {p.embedding_model for p in papers} == {"toy-hash"}
        assert all(p.embedding is not None and len(p.embedding) == 64 * 4 for p in papers)


def test_embeddings_are_recomputed_when_the_model_changes(stored: Context) -> None:
    rank_with(stored, ToyEmbedder("toy-a"), "linear attention")
    other = ToyEmbedder("toy-b", dimension=32)
    rank_with(stored, other, "linear attention")
    assert len(other.texts) == 37 + 1
    with db.transaction(stored.sessions) as session:
        assert {p.embedding_model for p in all_papers(session)} == {"toy-b"}


def test_each_unique_interest_is_embedded_once(stored: Context) -> None:
    toy = ToyEmbedder("toy-unique")
    rank_with(stored, toy, "graph learning", "Graph learning", "graph learning", "robotics")
    interests = [t for t in toy.texts if len(t) < 40]
    assert sorted(interests) == ["graph learning", "robotics"]  # case-folded: one interest


def test_without_a_model_it_ranks_by_words(stored: Context) -> None:
    ranked = rank_with(stored, None, "point cloud registration", "quantum computing")
    assert len(ranked["text:point cloud registration"]) == 3
    assert ranked["text:quantum computing"] == []


def test_semantic_on_without_the_model_is_a_named_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach for a hub in a test
    settings = make_settings(sqlite_url, matching={"semantic": "on", "model": "no-such/model"})
    with pytest.raises(MatcherUnavailable, match=r"no-such/model|not installed"):
        relevance.configured_embedder(settings.matching)


def test_semantic_auto_without_the_model_falls_back_with_a_notice(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = make_settings(sqlite_url, matching={"model": "no-such/other-model"})
    with caplog.at_level(logging.WARNING, logger="newsletter.relevance"):
        assert relevance.configured_embedder(settings.matching) is None
    assert "matching papers by their words only" in caplog.text


def test_semantic_off_never_loads_a_model(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, matching={"semantic": "off", "model": "no-such/model"})
    assert relevance.configured_embedder(settings.matching) is None


def test_the_configured_model_finds_healthcare_papers_by_meaning(stored: Context) -> None:
    real_embedder()  # skips without the semantic extra
    settings = stored.settings
    assert settings.matching.model == MODEL
    interest = relevance.topic_interest(settings, "memory")
    assert interest is not None
    with db.transaction(stored.sessions) as session:
        ranked = relevance.rank_papers(session, settings, [interest], all_papers(session))
        titles = {p.id: p.title for p in all_papers(session)}
        assert {p.embedding_model for p in all_papers(session)} == {MODEL}
    found = [titles[m.paper_id] for m in ranked["topic:memory"]]
    assert any("Episodic Memory" in t for t in found)
    assert not any("Point Cloud" in t for t in found)

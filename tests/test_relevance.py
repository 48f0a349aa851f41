"""The relevance service: stored paper embeddings, per-unique-interest vectors, fallbacks."""

from __future__ import annotations

import logging

import pytest

from newsletter.config import Settings, load_settings
from newsletter.errors import MatcherUnavailable
from newsletter.matching import Match
from newsletter.planning import embeddings as embeddings_mod
from newsletter.planning import relevance
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import embeddings as store_embeddings
from newsletter.store.papers import all_papers, upsert_papers
from tests.conftest import make_settings
from tests.matching_support import MODEL, ROOT, ToyEmbedder, real_embedder, sample_records


@pytest.fixture(autouse=True)
def fresh_process_cache() -> None:
    """Each test starts as a new process would: interest vectors only in the store."""
    embeddings_mod.forget_cached_interests()


@pytest.fixture
def stored(context: Runtime) -> Runtime:
    with db.transaction(context.sessions) as session:
        upsert_papers(session, sample_records())
    return context


@pytest.fixture
def any_stored(any_context: Runtime) -> Runtime:
    with db.transaction(any_context.sessions) as session:
        upsert_papers(session, sample_records())
    return any_context


def rank_with(
    context: Runtime,
    embedder: ToyEmbedder | None,
    *queries: str,
    settings: Settings | None = None,
) -> dict[str, list[Match]]:
    interests = [relevance.text_interest(q) for q in queries]
    with db.transaction(context.sessions) as session:
        return relevance.rank_papers(
            session, settings or context.settings, interests, all_papers(session), embedder=embedder
        )


def shipped_topics(settings: Settings) -> Settings:
    """The settings with the topics of the shipped config.yaml (healthcare among them)."""
    shipped = load_settings(ROOT / "config.yaml", environ={})
    return settings.model_copy(update={"topics": shipped.topics})


def test_paper_embeddings_are_computed_once_and_stored(stored: Runtime) -> None:
    toy = ToyEmbedder()
    rank_with(stored, toy, "linear attention")
    assert len(toy.texts) == 37 + 1  # every paper, then the one interest
    rank_with(stored, toy, "episodic memory")
    assert len(toy.texts) == 37 + 2  # only the new interest: papers come from the store
    with db.transaction(stored.sessions) as session:
        papers = all_papers(session)
        assert {p.embedding_model for p in papers} == {"toy-hash"}
        assert all(p.embedding is not None and len(p.embedding) == 64 * 4 for p in papers)


def test_embeddings_are_recomputed_when_the_model_changes(stored: Runtime) -> None:
    rank_with(stored, ToyEmbedder("toy-a"), "linear attention")
    other = ToyEmbedder("toy-b", dimension=32)
    rank_with(stored, other, "linear attention")
    assert len(other.texts) == 37 + 1
    with db.transaction(stored.sessions) as session:
        assert {p.embedding_model for p in all_papers(session)} == {"toy-b"}


def test_each_unique_interest_is_embedded_once(stored: Runtime) -> None:
    toy = ToyEmbedder("toy-unique")
    rank_with(stored, toy, "graph learning", "Graph learning", "graph learning", "robotics")
    typed = [t for t in toy.texts if t in ("graph learning", "Graph learning", "robotics")]
    assert sorted(typed) == ["graph learning", "robotics"]  # case-folded: one interest


def test_without_a_model_it_ranks_by_words(stored: Runtime) -> None:
    ranked = rank_with(stored, None, "point cloud registration", "quantum computing")
    assert len(ranked["text:point cloud registration"]) == 3
    assert ranked["text:quantum computing"] == []


def test_semantic_on_without_the_model_is_a_named_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach for a hub in a test
    settings = make_settings(sqlite_url, matching={"semantic": "on", "model": "no-such/model"})
    with pytest.raises(MatcherUnavailable, match=r"no-such/model|not installed"):
        embeddings_mod.configured_embedder(settings.matching)


def test_semantic_auto_without_the_model_falls_back_with_a_notice(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = make_settings(sqlite_url, matching={"model": "no-such/other-model"})
    with caplog.at_level(logging.WARNING, logger="newsletter.relevance"):
        assert embeddings_mod.configured_embedder(settings.matching) is None
    assert "matching papers by their words only" in caplog.text


def test_every_words_only_ranking_says_so_with_the_install_command(
    stored: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The notice depends on no earlier ranking in the process: each run says it once.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = stored.settings.with_overrides(matching={"model": "no-such/model"})
    interests = [relevance.text_interest("episodic memory")]
    for run in (1, 2):
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="newsletter.relevance"),
            db.transaction(stored.sessions) as session,
        ):
            relevance.rank_papers(session, settings, interests, all_papers(session))
        notices = [r.getMessage() for r in caplog.records if "Semantic matching" in r.getMessage()]
        assert len(notices) == 1, f"run {run}: {notices}"
        assert "matching papers by their words only" in notices[0]


def test_embedding_ahead_of_a_plan_without_the_model_is_quiet(
    stored: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = stored.settings.with_overrides(matching={"model": "no-such/model"})
    with caplog.at_level(logging.WARNING, logger="newsletter.relevance"):
        interests = [relevance.text_interest("memory")]
        embedded = embeddings_mod.store_new_embeddings(stored, settings, {1: "a paper"}, interests)
    assert (embedded.papers, embedded.interests) == (0, 0)
    assert caplog.text == ""


def test_semantic_off_never_loads_a_model(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, matching={"semantic": "off", "model": "no-such/model"})
    assert embeddings_mod.configured_embedder(settings.matching) is None


def test_the_configured_model_finds_healthcare_papers_by_meaning(stored: Runtime) -> None:
    model = real_embedder()  # skips without the semantic extra
    settings = stored.settings
    assert settings.matching.model == MODEL
    interest = relevance.topic_interest(settings, "memory")
    assert interest is not None
    with db.transaction(stored.sessions) as session:
        ranked = relevance.rank_papers(session, settings, [interest], all_papers(session))
        titles = {p.id: p.title for p in all_papers(session)}
        assert {p.embedding_model for p in all_papers(session)} == {model.name}
    found = [titles[m.paper_id] for m in ranked["topic:memory"]]
    assert any("Episodic Memory" in t for t in found)
    assert not any("Point Cloud" in t for t in found)


def test_interest_embeddings_are_stored_and_reused_by_the_next_process(
    any_stored: Runtime,
) -> None:
    first = ToyEmbedder("toy-stored")
    rank_with(any_stored, first, "linear attention", "episodic memory")
    embeddings_mod.forget_cached_interests()  # what a new process starts with
    second = ToyEmbedder("toy-stored")
    ranked = rank_with(any_stored, second, "linear attention", "episodic memory")
    assert second.texts == []  # papers and both interests come from the store
    assert ranked["text:linear attention"]
    with db.transaction(any_stored.sessions) as session:
        assert store_embeddings.count_vectors(session, "toy-stored") == 2
        assert store_embeddings.count_vectors(session, "other-model") == 0


def test_storing_an_interest_twice_keeps_one_row(any_context: Runtime) -> None:
    vector = b"\x00" * 16
    for _ in range(2):
        with db.transaction(any_context.sessions) as session:
            store_embeddings.save_vectors(session, "m", {"llms": vector, "rag": vector})
    with db.transaction(any_context.sessions) as session:
        assert store_embeddings.count_vectors(session) == 2
        assert store_embeddings.load_vectors(session, "m", ["llms", "gan"]) == {"llms": vector}


def test_a_rolled_back_plan_keeps_new_interest_vectors_on_postgresql(
    any_stored: Runtime,
) -> None:
    toy = ToyEmbedder("toy-rollback")
    with db.transaction(any_stored.sessions) as session:
        relevance.rank_papers(session, any_stored.settings, [], all_papers(session), embedder=toy)
    with pytest.raises(RuntimeError), db.transaction(any_stored.sessions) as session:
        interests = [relevance.text_interest("sparse retrieval")]
        relevance.rank_papers(
            session, any_stored.settings, interests, all_papers(session), embedder=toy
        )
        raise RuntimeError("dry run")
    with db.transaction(any_stored.sessions) as session:
        kept = store_embeddings.count_vectors(session, "toy-rollback")
    # SQLite has one writer (the planner holds it), so there the vector goes with the plan.
    assert kept == (1 if any_stored.engine.dialect.name == "postgresql" else 0)


def test_a_typed_word_naming_a_topic_is_matched_as_that_topic(stored: Runtime) -> None:
    settings = shipped_topics(stored.settings)
    ranked = rank_with(stored, None, "healthcare", "robotics", settings=settings)
    with db.transaction(stored.sessions) as session:
        titles = {p.id: p.title for p in all_papers(session)}
    found = [titles[m.paper_id] for m in ranked["text:healthcare"]]
    assert any("Radiology" in t for t in found)
    assert any("Lung Cancer" in t for t in found)
    assert all("“healthcare”" in m.reason for m in ranked["text:healthcare"])
    assert ranked["text:robotics"] == []


def test_the_model_reads_medicine_as_the_healthcare_topic(stored: Runtime) -> None:
    model = real_embedder()
    with db.transaction(stored.sessions) as session:
        interests = [relevance.text_interest("medicine")]
        settings = shipped_topics(stored.settings)
        ranked = relevance.rank_papers(
            session, settings, interests, all_papers(session), embedder=model
        )
        titles = {p.id: p.title for p in all_papers(session)}
    found = [titles[m.paper_id] for m in ranked["text:medicine"]]
    assert any("Radiology" in t for t in found)
    assert any("Patient Notes" in t for t in found)

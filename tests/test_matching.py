"""The pure matcher: tokens, lexical coverage, embeddings, categories, trending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from newsletter.matching import Candidate, Interest, MatchParams, hybrid, rank
from newsletter.matching.embedder import from_bytes, to_bytes
from newsletter.matching.expand import expand, topic_names
from newsletter.matching.text import terms
from newsletter.matching.trending import combine, most_trending, trending_scores

DAY = datetime(2026, 3, 11, tzinfo=UTC)


def paper(pid: int, title: str, abstract: str = "", **extra: object) -> Candidate:
    return Candidate(pid, title, abstract, **extra)  # type: ignore[arg-type]


def text(query: str) -> Interest:
    return Interest(f"text:{query}", query, query)


PAPERS = [
    paper(1, "Point cloud registration with rotation-equivariant networks"),
    paper(2, "Retrieval-augmented generation for long-context LLMs"),
    paper(3, "Lung cancer staging with language models", "A radiology study of patients."),
    paper(4, "Image recognition with sparse sets"),
]


def test_tokens_split_compounds_stem_plurals_and_form_phrases() -> None:
    assert terms("Retrieval-Augmented LLMs") == [
        "retrieval",
        "augmented",
        "llm",
        "retrieval augmented",
        "augmented llm",
    ]


def test_phrases_do_not_cross_stop_words_or_punctuation() -> None:
    found = terms("models for video, memories")
    assert "model video" not in found
    assert "video memory" not in found
    assert {"model", "video", "memory"} <= set(found)


def test_it_matches_a_phrase_and_not_its_scattered_words() -> None:
    ranked = rank([text("point cloud registration")], PAPERS)
    assert [m.paper_id for m in ranked["text:point cloud registration"]] == [1]


def test_an_interest_no_paper_is_about_gets_nothing() -> None:
    ranked = rank([text("quantum computing"), text("speech recognition")], PAPERS)
    assert ranked == {"text:quantum computing": [], "text:speech recognition": []}


def test_a_topic_matches_by_any_of_its_keywords() -> None:
    topic = Interest("topic:health", "Healthcare", "Healthcare.", ("radiology", "clinical"))
    ranked = rank([topic], PAPERS)
    assert [m.paper_id for m in ranked["topic:health"]] == [3]
    assert "Healthcare" in ranked["topic:health"][0].reason


def test_a_shared_arxiv_category_lifts_a_paper_over_the_threshold() -> None:
    vision = Interest("topic:cv", "Vision", "Vision.", ("segmentation",), ("cs.CV",))
    papers = [paper(1, "A new backbone", categories=("cs.CV",)), paper(2, "A new backbone")]
    params = MatchParams(category_bonus=0.35)
    ranked = rank([vision], papers, params=params)
    assert [m.paper_id for m in ranked["topic:cv"]] == [1]


def test_embeddings_find_a_paper_that_shares_no_words() -> None:
    close, far = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    papers = [
        paper(1, "Radiology reports", embedding=to_bytes(close)),
        paper(2, "Point clouds", embedding=to_bytes(far)),
    ]
    vectors = np.array([[1.0, 0.0]], np.float32)
    params = MatchParams(semantic_weight=0.6, lexical_weight=0.4, threshold=0.5)
    ranked = rank([text("healthcare")], papers, interest_vectors=vectors, params=params)
    assert [m.paper_id for m in ranked["text:healthcare"]] == [1]
    assert "meaning" in ranked["text:healthcare"][0].reason
    assert rank([text("healthcare")], papers, params=params)["text:healthcare"] == []


def at_cosine(cosines: Sequence[float]) -> tuple[list[Candidate], np.ndarray]:
    """Papers whose embeddings have these cosines with the returned interest vector,
    and titles that share no word with "oncology"."""
    papers = [
        paper(n, f"Study number {n}", embedding=to_bytes(np.array([c, np.sqrt(1 - c * c)])))
        for n, c in enumerate(cosines, start=1)
    ]
    return papers, np.array([[1.0, 0.0]], np.float32)


def test_a_paper_that_stands_out_for_a_broad_interest_matches_below_the_threshold() -> None:
    # 0.6 x 0.55 = relevance 0.33: under the threshold (0.37), over the stand-out floor
    # (0.30), and far above what the other fourteen papers score for this interest.
    papers, vectors = at_cosine([0.55] + [0.05] * 14)
    ranked = rank([text("oncology")], papers, interest_vectors=vectors)
    assert [m.paper_id for m in ranked["text:oncology"]] == [1]
    off = MatchParams(standout_threshold=MatchParams().threshold)
    assert rank([text("oncology")], papers, interest_vectors=vectors, params=off) == {
        "text:oncology": []
    }


def test_a_paper_among_many_that_score_alike_needs_the_full_threshold() -> None:
    # The same 0.33, but a third of the window scores about as much: nothing stands out.
    papers, vectors = at_cosine([0.55] + [0.5] * 4 + [0.05] * 10)
    assert rank([text("oncology")], papers, interest_vectors=vectors)["text:oncology"] == []


def test_a_paper_scored_by_words_alone_never_stands_out() -> None:
    # Among papers with embeddings, one without is scored by its words: far above the
    # rest here, yet under the threshold, so it does not match.
    papers, vectors = at_cosine([0.05] * 14)
    papers.append(paper(99, "Oncology of tumours", "A study of tumours."))
    params = MatchParams(threshold=0.95, lexical_threshold=0.95, standout_threshold=0.3)
    ranked = rank([text("oncology")], papers, interest_vectors=vectors, params=params)
    assert ranked["text:oncology"] == []


@pytest.mark.parametrize("cosines", [[0.55] + [0.05] * 4, [0.55], [0.55] * 12])
def test_a_small_or_even_window_lets_nothing_stand_out(cosines: list[float]) -> None:
    # Three standard deviations need eleven papers, and a spread: with five papers, one,
    # or twelve that all score alike, the threshold alone decides.
    papers, vectors = at_cosine(cosines)
    assert rank([text("oncology")], papers, interest_vectors=vectors)["text:oncology"] == []


def test_embeddings_round_trip_as_float32_bytes() -> None:
    vector = np.array([0.25, -0.5, 1.0], np.float32)
    assert len(to_bytes(vector)) == 12
    assert np.array_equal(from_bytes(to_bytes(vector)), vector)


def test_papers_without_upvotes_rank_by_recency() -> None:
    listed = [DAY - timedelta(days=3), DAY, DAY - timedelta(days=1)]
    scores = trending_scores([(None, None)] * 3, listed, half_life_days=3.5)
    assert scores[1] > scores[2] > scores[0]
    assert scores[1] == 0.25  # the newest paper with no engagement: freshness 1 · floor


def test_upvotes_and_comments_lift_a_paper_and_age_decays_it() -> None:
    counts = [(100, 10), (10, 0), (100, 10)]
    listed = [DAY, DAY, DAY - timedelta(days=3.5)]
    top, less, older = trending_scores(counts, listed, half_life_days=3.5)
    assert top == 1.0
    assert top > less
    assert older == 0.5  # one half-life old


def test_order_follows_the_documented_combination() -> None:
    papers = [
        paper(1, "Linear attention", "linear attention", upvotes=5, listed_at=DAY),
        paper(2, "Linear attention", "linear attention", upvotes=500, listed_at=DAY),
    ]
    params = MatchParams()
    found = rank([text("linear attention")], papers, params=params)["text:linear attention"]
    assert [m.paper_id for m in found] == [2, 1]
    expected = trending_scores([(5, None), (500, None)], [DAY, DAY], params.half_life_days)
    for match, trend in zip(sorted(found, key=lambda m: m.paper_id), expected, strict=True):
        score = combine(match.relevance, params.threshold, trend, params.relevance_weight)
        assert abs(match.score - score) < 1e-6


def test_limit_keeps_each_interests_best() -> None:
    papers = [paper(i, "Linear attention", upvotes=i, listed_at=DAY) for i in range(1, 6)]
    found = rank([text("linear attention")], papers, limit=2)["text:linear attention"]
    assert [m.paper_id for m in found] == [5, 4]


def test_interests_ranked_over_several_blocks_get_what_one_block_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    paper_vectors = [unit(rng) for _ in PAPERS]
    papers = [replace(p, embedding=to_bytes(v)) for p, v in zip(PAPERS, paper_vectors, strict=True)]
    interests = [text("point cloud registration"), HEALTH, text("language models"), NLP]
    interests += [text("radiology"), text("image recognition"), text("quantum computing")]
    near = [0, 2, 1, None, 2, 3, None]  # the paper whose meaning each interest shares
    vectors = np.array([unit(rng) if n is None else paper_vectors[n] for n in near])
    whole = rank(interests, papers, interest_vectors=vectors)
    assert sum(1 for found in whole.values() if found) >= 4
    # Blocks of two interests; a topic with more query rows than that is a block alone.
    monkeypatch.setattr(hybrid, "BLOCK", 2)
    split = rank(interests, papers, interest_vectors=vectors)
    assert list(split) == list(whole)
    for key, matches in whole.items():
        assert [(m.paper_id, m.reason) for m in split[key]] == [
            (m.paper_id, m.reason) for m in matches
        ]
        for one, other in zip(split[key], matches, strict=True):
            assert one.score == pytest.approx(other.score, abs=1e-6)


def unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(8).astype(np.float32)
    return np.asarray(vector / np.linalg.norm(vector), np.float32)


def test_no_candidates_means_no_matches() -> None:
    assert rank([text("anything")], []) == {"text:anything": []}


HEALTH = Interest(
    "topic:healthcare",
    "ML for healthcare",
    "ML for healthcare. Medical imaging and clinical text.",
    ("medical", "radiology", "healthcare"),
)
NLP = Interest(
    "topic:nlp", "Natural language processing", "NLP", ("translation", "natural language")
)


def test_a_typed_word_that_names_a_topic_is_matched_as_it() -> None:
    [found] = expand([text("Healthcare")], [HEALTH, NLP])
    assert (found.key, found.label) == ("text:Healthcare", "Healthcare")
    assert found.keywords == HEALTH.keywords
    ranked = rank([found], PAPERS)
    assert [m.paper_id for m in ranked["text:Healthcare"]] == [3]


def test_a_keyword_that_is_only_a_facet_does_not_name_its_topic() -> None:
    assert topic_names(NLP) == ("nlp", "Natural language processing", "natural language")
    assert expand([text("translation")], [HEALTH, NLP]) == [text("translation")]


def test_longer_interests_keep_their_own_words() -> None:
    interests = [text("natural language processing"), text("medical imaging")]
    assert expand(interests, [HEALTH, NLP]) == interests


def test_a_word_close_in_meaning_to_a_topic_name_is_read_as_it() -> None:
    def embed(texts: Sequence[str]) -> np.ndarray:
        # "medicine" sits on "healthcare"; "robotics" and the other names elsewhere.
        axes = {"medicine": 0, "healthcare": 0, "robotics": 1}
        return np.eye(3, dtype=np.float32)[[axes.get(t, 2) for t in texts]]

    found = expand([text("medicine"), text("robotics")], [HEALTH], embed, threshold=0.7)
    assert found[0].keywords == HEALTH.keywords
    assert found[1] == text("robotics")


def test_the_general_selection_ranks_by_the_digest_trending_score() -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    counts = [(40, 0), (30, 0), (None, None), (31, 0)]
    listed = [day - timedelta(days=6), day, day, day]  # the 40-upvote paper is a week old
    assert most_trending(counts, listed, half_life_days=3.5) == [3, 1, 0, 2]


def test_a_topic_keyword_of_several_words_needs_all_of_them_in_the_paper() -> None:
    """Words only, a keyword such as "text-to-image" once matched any paper saying
    "text": episodic-memory papers came as "Diffusion and generative models"."""
    diffusion = Interest(
        "topic:diffusion",
        "Diffusion and generative models",
        "Diffusion and generative models.",
        ("text-to-image", "diffusion model"),
    )
    papers = [
        paper(1, "Assessing episodic memory in LLMs", "Models recall a text, then the text again."),
        paper(2, "Fast text-to-image synthesis", "We generate an image from a prompt."),
        *(paper(10 + n, f"Image study {n}", "An image benchmark.") for n in range(4)),
    ]
    ranked = rank([diffusion], papers)
    assert [m.paper_id for m in ranked["topic:diffusion"]] == [2]

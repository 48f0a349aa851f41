"""Matching quality on tests/eval/interests.yaml, measured by newsletter.matching.evaluate.

Thresholds were calibrated on the cases not marked held_out; these floors keep them from
silently regressing, and the held-out floor keeps the calibration honest.
"""

from __future__ import annotations

import pytest

from newsletter.matching import baseline
from newsletter.matching.evaluate import Case, Report, evaluate, hybrid_ranker, load_cases
from tests.matching_support import real_embedder, sample_papers


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return load_cases(sample_papers())


def lexical_report(cases: list[Case]) -> Report:
    return evaluate("lexical", cases, sample_papers(), hybrid_ranker(sample_papers(), None))


def test_the_evaluation_set_is_broad_enough(cases: list[Case]) -> None:
    assert len(cases) >= 15
    assert sum(1 for c in cases if c.off_topic) >= 5
    assert sum(1 for c in cases if c.held_out) >= 10


def test_the_lexical_matcher_beats_the_keyword_baseline(cases: list[Case]) -> None:
    base = evaluate("baseline", cases, sample_papers(), baseline.rank)
    lexical = lexical_report(cases)
    assert lexical.macro_f1 >= 0.77
    assert lexical.macro_f1 >= base.macro_f1 + 0.08


def test_off_topic_interests_get_nothing_by_words(cases: list[Case]) -> None:
    report = lexical_report(cases)
    assert report.off_topic_clean == report.off_topic_total


def test_the_hybrid_matcher_reaches_its_calibrated_quality(cases: list[Case]) -> None:
    hybrid = evaluate(
        "hybrid", cases, sample_papers(), hybrid_ranker(sample_papers(), real_embedder())
    )
    assert hybrid.macro_f1 >= 0.88
    assert hybrid.part(held_out=True).macro_f1 >= 0.85
    assert hybrid.macro_f1 > lexical_report(cases).macro_f1
    assert hybrid.off_topic_clean == hybrid.off_topic_total


def test_a_reader_typing_one_broad_word_gets_that_fields_papers(cases: list[Case]) -> None:
    hybrid = evaluate(
        "hybrid", cases, sample_papers(), hybrid_ranker(sample_papers(), real_embedder())
    )
    found = {r.case.interest: r for r in hybrid.results}
    for word in ("healthcare", "medicine", "health"):
        assert found[word].case.must <= found[word].returned, word
    assert found["robotics"].returned == frozenset()


def test_healthcare_names_the_configured_topic_even_without_the_model(
    cases: list[Case],
) -> None:
    found = {r.case.interest: r for r in lexical_report(cases).results}
    assert found["healthcare"].case.must <= found["healthcare"].returned
    assert found["robotics"].returned == frozenset()

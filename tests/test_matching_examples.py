"""Papers like a reader's examples, and papers held back after "fewer like this"."""

from __future__ import annotations

from newsletter.matching.evaluate import load_papers
from newsletter.matching.examples import held_back, rank_by_examples
from newsletter.matching.types import Candidate, MatchParams

PAPERS = load_papers()
CANDIDATES = [Candidate(i, p.title, p.abstract) for i, p in enumerate(PAPERS)]


def by_title(prefix: str) -> Candidate:
    (found,) = [c for c in CANDIDATES if c.title.startswith(prefix)]
    return found


def test_a_paper_like_the_example_is_picked_with_the_example_as_its_reason() -> None:
    example = by_title("PARE-Net")
    ranked = rank_by_examples([example], ["PARE-Net"], CANDIDATES, MatchParams(), alone=True)
    picks = ranked[example.paper_id]
    titles = [CANDIDATES[m.paper_id].title for m in picks]
    assert any(t.startswith(("FreeReg", "Rotation-Invariant Transformer")) for t in titles)
    assert example.paper_id not in {m.paper_id for m in picks}
    assert {m.reason for m in picks} == {"PARE-Net"}


def test_examples_next_to_an_interest_add_only_closer_papers_than_examples_alone() -> None:
    example = by_title("PARE-Net")
    alone = rank_by_examples([example], ["x"], CANDIDATES, MatchParams(), alone=True)
    beside = rank_by_examples([example], ["x"], CANDIDATES, MatchParams(), alone=False)
    assert {m.paper_id for m in beside[example.paper_id]} <= {
        m.paper_id for m in alone[example.paper_id]
    }


def test_an_unrelated_example_brings_nothing_from_an_unrelated_field() -> None:
    example = Candidate(999, "Grape vine pruning schedules", "Vineyards, soil and harvest timing.")
    ranked = rank_by_examples([example], ["Grapes"], CANDIDATES, MatchParams(), alone=True)
    assert ranked[999] == []


def test_a_paper_marked_fewer_is_held_back_and_so_is_what_is_closest_to_it() -> None:
    marked = by_title("PARE-Net")
    held = held_back([marked], [], CANDIDATES, MatchParams())
    assert marked.paper_id in held
    assert len(held) < len(CANDIDATES) // 2  # not the whole field


def test_an_example_nearer_than_the_fewer_paper_keeps_its_papers() -> None:
    marked, liked = by_title("PARE-Net"), by_title("FreeReg")
    params = MatchParams(fewer_threshold=0.0)  # everything is "close" to the fewer paper
    held = held_back([marked], [liked], CANDIDATES, params)
    assert marked.paper_id in held and liked.paper_id not in held


def test_examples_keep_their_measured_quality_in_words_only_mode() -> None:
    """The README's words-only figures for example papers, as a floor."""
    from newsletter.matching.evaluate import (
        evaluate_examples,
        hybrid_ranker,
        load_cases,
        simulate_feedback,
    )

    cases = load_cases(PAPERS)
    params = MatchParams()
    rank = hybrid_ranker(PAPERS, None, params)

    def score(count: int, with_interest: bool, use_examples: bool = True) -> float:
        return evaluate_examples(
            "x", cases, PAPERS, rank, params, None, count, with_interest, use_examples
        ).macro_f1

    assert score(1, with_interest=False) >= 0.55
    assert score(1, with_interest=True) >= score(1, True, use_examples=False)
    with_feedback = simulate_feedback("x", cases, PAPERS, rank, params, None, True)
    without = simulate_feedback("x", cases, PAPERS, rank, params, None, False)
    assert with_feedback.macro_f1 >= without.macro_f1

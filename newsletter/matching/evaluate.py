"""Matching quality on a hand-labelled evaluation set: macro-F1 and off-topic silence.

An evaluation case is an interest with the papers that must match and those that may.
Per case, with P the papers returned, M the musts and Y the mays:

    tp = |P ∩ M|,  fp = |P − M − Y|,  fn = |M − P|,  F1 = 2·tp / (2·tp + fp + fn)

(a "may" paper counts neither way). A case with no musts scores 1 when nothing outside
its mays was returned, else 0. Macro-F1 is the mean over cases; "off-topic clean" counts
the cases with neither musts nor mays that got nothing at all.

Cases marked `held_out: true` were written after the parameters were last chosen and
were not used to choose them; the report gives macro-F1 on both parts as well as all.
Typed interests are expanded with the topics of the shipped config.yaml, as planning
expands them with the configured topics.

    python -m newsletter.matching.evaluate        # every path, words only and hybrid

Besides typed interests it scores the paths a reader teaches the digest by: example
papers (one or two of a case's musts given, the rest scored; alone and with the typed
interest) and feedback (see `simulate_feedback`).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from newsletter.config import load_settings
from newsletter.matching import baseline
from newsletter.matching.embedder import (
    Embedder,
    EmbedderUnavailable,
    load_embedder,
    paper_text,
    to_bytes,
)
from newsletter.matching.examples import held_back, rank_by_examples
from newsletter.matching.expand import expand, topic
from newsletter.matching.hybrid import rank_hybrid, semantic_text
from newsletter.matching.types import Candidate, Interest, Match, MatchParams

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PAPERS = ROOT / "newsletter" / "data" / "sample-papers.jsonl"
DEFAULT_CASES = ROOT / "tests" / "eval" / "interests.yaml"
DEFAULT_CONFIG = ROOT / "config.yaml"

RankFn = Callable[[Sequence[Interest], Sequence[Candidate]], dict[str, list[Match]]]


@dataclass(frozen=True)
class SamplePaper:
    title: str
    abstract: str


@dataclass(frozen=True)
class Case:
    interest: str
    must: frozenset[int]  # indices into the paper list
    may: frozenset[int]
    held_out: bool = False

    @property
    def off_topic(self) -> bool:
        return not self.must and not self.may


@dataclass(frozen=True)
class CaseResult:
    case: Case
    returned: frozenset[int]
    f1: float

    @property
    def wrong(self) -> frozenset[int]:
        return self.returned - self.case.must - self.case.may

    @property
    def missed(self) -> frozenset[int]:
        return self.case.must - self.returned


@dataclass(frozen=True)
class Report:
    name: str
    results: tuple[CaseResult, ...]

    @property
    def macro_f1(self) -> float:
        return statistics.fmean(r.f1 for r in self.results)

    @property
    def off_topic_total(self) -> int:
        return sum(1 for r in self.results if r.case.off_topic)

    @property
    def off_topic_clean(self) -> int:
        return sum(1 for r in self.results if r.case.off_topic and not r.returned)

    def part(self, held_out: bool) -> Report:
        """The cases used to choose the parameters (False) or held out from that (True)."""
        return Report(self.name, tuple(r for r in self.results if r.case.held_out == held_out))


def load_papers(path: Path = DEFAULT_PAPERS) -> list[SamplePaper]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [SamplePaper(row["title"], row.get("abstract") or "") for row in rows]


def load_cases(papers: Sequence[SamplePaper], path: Path = DEFAULT_CASES) -> list[Case]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Case(
            entry["interest"],
            frozenset(_find(papers, p) for p in entry.get("must") or ()),
            frozenset(_find(papers, p) for p in entry.get("may") or ()),
            bool(entry.get("held_out", False)),
        )
        for entry in entries
    ]


def _find(papers: Sequence[SamplePaper], prefix: str) -> int:
    found = [i for i, paper in enumerate(papers) if paper.title.startswith(prefix)]
    if len(found) != 1:
        raise ValueError(f"evaluation set: {prefix!r} names {len(found)} sample papers, not 1")
    return found[0]


def case_f1(case: Case, returned: frozenset[int]) -> float:
    tp = len(returned & case.must)
    fp = len(returned - case.must - case.may)
    fn = len(case.must - returned)
    if not case.must:
        return 1.0 if fp == 0 else 0.0
    return 2 * tp / (2 * tp + fp + fn)


def evaluate(
    name: str, cases: Sequence[Case], papers: Sequence[SamplePaper], rank: RankFn
) -> Report:
    interests = _typed(cases)
    ranked = rank(interests, _candidates(papers, None))
    results = []
    for case, interest in zip(cases, interests, strict=True):
        returned = frozenset(m.paper_id for m in ranked[interest.key])
        results.append(CaseResult(case, returned, case_f1(case, returned)))
    return Report(name, tuple(results))


def evaluate_examples(
    name: str,
    cases: Sequence[Case],
    papers: Sequence[SamplePaper],
    rank: RankFn,
    params: MatchParams,
    vectors: np.ndarray | None,
    count: int,
    with_interest: bool,
    use_examples: bool = True,
) -> Report:
    """ "Papers like these": for each case with three or more musts, its first `count`
    musts are the reader's examples and the rest are scored (the examples themselves
    are neither rewarded nor punished). `with_interest`: the typed interest as well;
    `use_examples=False`: the interest alone on the same cases, the yardstick."""
    candidates = _candidates(papers, vectors)
    usable = [c for c in cases if len(c.must) >= 3]
    interests = _typed(usable)
    ranked = rank(interests, _candidates(papers, None))
    results = []
    for case, interest in zip(usable, interests, strict=True):
        examples = sorted(case.must)[:count]
        liked = rank_by_examples(
            [candidates[i] for i in examples],
            ["" for _ in examples],
            candidates,
            params,
            alone=not with_interest,
        )
        returned = {m.paper_id for found in liked.values() for m in found if use_examples}
        if with_interest:
            returned |= {m.paper_id for m in ranked[interest.key]}
        scored = Case(case.interest, case.must - set(examples), case.may, case.held_out)
        kept = frozenset(returned - set(examples))
        results.append(CaseResult(scored, kept, case_f1(scored, kept)))
    return Report(name, tuple(results))


def simulate_feedback(
    name: str,
    cases: Sequence[Case],
    papers: Sequence[SamplePaper],
    rank: RankFn,
    params: MatchParams,
    vectors: np.ndarray | None,
    feedback: bool = True,
) -> Report:
    """Two editions: the even-numbered sample papers, then the odd-numbered ones. On
    the first the reader marks "more" on every must it brought and "fewer" on every
    paper it should not have; the second is scored (on its own papers only)."""
    candidates = _candidates(papers, vectors)
    first = [c for c in candidates if c.paper_id % 2 == 0]
    second = [c for c in candidates if c.paper_id % 2 == 1]
    interests = _typed(cases)
    before, after = rank(interests, first), rank(interests, second)
    results = []
    for case, interest in zip(cases, interests, strict=True):
        shown = {m.paper_id for m in before[interest.key]}
        returned = {m.paper_id for m in after[interest.key]}
        if feedback:
            more = [candidates[i] for i in sorted(shown & case.must)]
            fewer = [candidates[i] for i in sorted(shown - case.must - case.may)]
            liked = rank_by_examples(more, ["" for _ in more], second, params)
            returned |= {m.paper_id for found in liked.values() for m in found}
            returned -= held_back(fewer, more, second, params)
        odd = frozenset(c.paper_id for c in second)
        scored = Case(case.interest, case.must & odd, case.may & odd, case.held_out)
        results.append(
            CaseResult(scored, frozenset(returned), case_f1(scored, frozenset(returned)))
        )
    return Report(name, tuple(results))


def _typed(cases: Sequence[Case]) -> list[Interest]:
    """Each case's interest as a reader types it."""
    return [Interest(f"text:{c.interest}", c.interest, c.interest) for c in cases]


def _candidates(papers: Sequence[SamplePaper], vectors: np.ndarray | None) -> list[Candidate]:
    return [
        Candidate(
            i, p.title, p.abstract, embedding=None if vectors is None else to_bytes(vectors[i])
        )
        for i, p in enumerate(papers)
    ]


def load_topics(path: Path = DEFAULT_CONFIG) -> list[Interest]:
    """The topics of the shipped config.yaml, as planning reads them."""
    settings = load_settings(path, environ={})
    return [topic(t.slug, t.name, t.description, t.keywords, t.categories) for t in settings.topics]


def hybrid_ranker(
    papers: Sequence[SamplePaper],
    embedder: Embedder | None,
    params: MatchParams | None = None,
    topics: Sequence[Interest] | None = None,
) -> RankFn:
    """The matcher as planning runs it: papers embedded once, interests per unique text,
    typed interests that name a configured topic matched as that topic."""
    params = params or MatchParams()
    topics = load_topics() if topics is None else topics
    vectors = None
    if embedder is not None:
        vectors = embedder.embed([paper_text(p.title, p.abstract) for p in papers])

    def rank(
        interests: Sequence[Interest], candidates: Sequence[Candidate]
    ) -> dict[str, list[Match]]:
        embed = None if embedder is None else embedder.embed
        interests = expand(interests, topics, embed, params.topic_similarity)
        if vectors is None or embedder is None:
            return rank_hybrid(interests, candidates, None, params)
        with_vectors = [
            Candidate(c.paper_id, c.title, c.abstract, embedding=to_bytes(vectors[c.paper_id]))
            for c in candidates
        ]
        queries = embedder.embed([semantic_text(i) for i in interests])
        return rank_hybrid(interests, with_vectors, queries, params)

    return rank


def print_report(report: Report, papers: Sequence[SamplePaper], verbose: bool) -> None:
    tuned, held = report.part(held_out=False), report.part(held_out=True)
    parts = (
        f"   (tuning {tuned.macro_f1:.3f}, held out {held.macro_f1:.3f})" if held.results else ""
    )
    print(
        f"{report.name:<22} macro-F1 {report.macro_f1:.3f}{parts}   off-topic clean "
        f"{report.off_topic_clean}/{report.off_topic_total}"
    )
    if not verbose:
        return
    for r in report.results:
        wrong = ", ".join(papers[i].title[:40] for i in sorted(r.wrong))
        missed = ", ".join(papers[i].title[:40] for i in sorted(r.missed))
        mark = "*" if r.case.held_out else " "
        print(f" {mark}{r.f1:.2f}  {r.case.interest:<40} wrong: [{wrong}]  missed: [{missed}]")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=Path, default=DEFAULT_PAPERS)
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("-v", "--verbose", action="store_true", help="per-interest errors")
    args = parser.parse_args(argv)
    papers = load_papers(args.papers)
    cases = load_cases(papers, args.cases)
    held = sum(1 for c in cases if c.held_out)
    print(f"{len(cases)} interests ({held} held out, marked *) on {len(papers)} sample papers")
    print_report(evaluate("keyword baseline", cases, papers, baseline.rank), papers, args.verbose)
    print_paths("lexical only", cases, papers, None, args.verbose)
    try:
        embedder = load_embedder(args.model)
    except EmbedderUnavailable as exc:
        print(f"hybrid: skipped ({exc})")
        return
    print_paths("hybrid", cases, papers, embedder, args.verbose)


def print_paths(
    mode: str,
    cases: Sequence[Case],
    papers: Sequence[SamplePaper],
    embedder: Embedder | None,
    verbose: bool,
) -> None:
    """Every path a reader's profile can take, matched the way planning matches it."""
    params = MatchParams()
    rank = hybrid_ranker(papers, embedder, params)
    vectors = None
    if embedder is not None:
        vectors = embedder.embed([paper_text(p.title, p.abstract) for p in papers])
    print_report(evaluate(f"{mode}: interests", cases, papers, rank), papers, verbose)
    for count in (1, 2):
        label = f"{mode}: same cases, interest alone ({count} must{'s' if count > 1 else ''} out)"
        report = evaluate_examples(label, cases, papers, rank, params, vectors, count, True, False)
        print_report(report, papers, verbose)
        for with_interest in (False, True):
            label = f"{mode}: {count} example{'s' if count > 1 else ''}"
            label += " + interest" if with_interest else " alone"
            report = evaluate_examples(
                label, cases, papers, rank, params, vectors, count, with_interest
            )
            print_report(report, papers, verbose)
    for feedback in (False, True):
        label = f"{mode}: 2nd edition, {'with' if feedback else 'no'} feedback"
        report = simulate_feedback(label, cases, papers, rank, params, vectors, feedback)
        print_report(report, papers, verbose)


if __name__ == "__main__":
    main()


__all__ = ["Report", "evaluate", "hybrid_ranker", "load_cases", "load_papers", "np"]

"""Example papers as readers name them: ids, URLs and BibTeX exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import InvalidInput
from newsletter.sources.refs import MAX_REFS, PaperRef, parse_ref, parse_refs, refs_from_bibtex

BIBTEX = Path(__file__).parent / "fixtures" / "bibtex"


@pytest.mark.parametrize(
    "typed",
    [
        "2403.01234",
        "2403.01234v3",
        "arxiv:2403.01234",
        "arXiv:2403.01234v2",
        " https://arxiv.org/abs/2403.01234v2 ",
        "https://arxiv.org/pdf/2403.01234",
        "https://arxiv.org/pdf/2403.01234v1.pdf",
        "https://arxiv.org/html/2403.01234v1",
        "https://huggingface.co/papers/2403.01234",
        "http://export.arxiv.org/abs/2403.01234",
    ],
)
def test_every_usual_way_of_naming_a_paper_gives_its_arxiv_id(typed: str) -> None:
    assert parse_ref(typed) == PaperRef(arxiv_id="arxiv:2403.01234")


def test_old_style_arxiv_ids_are_understood() -> None:
    assert parse_ref("https://arxiv.org/abs/hep-th/9901001") == PaperRef(
        arxiv_id="arxiv:hep-th/9901001"
    )


@pytest.mark.parametrize(
    "typed",
    [
        "attention is all you need",
        "https://evil.example/abs/2403.01234",
        "javascript:alert(1)",
        "https://huggingface.co/models/2403.01234",
        "2403.1",
        "",
    ],
)
def test_what_is_not_a_paper_reference_is_refused_with_the_reason(typed: str) -> None:
    with pytest.raises(InvalidInput, match="arXiv id"):
        parse_ref(typed)


def test_repeated_references_count_once_and_too_many_are_refused() -> None:
    assert parse_refs(["2403.01234", "arxiv:2403.01234v2", ""]) == [
        PaperRef(arxiv_id="arxiv:2403.01234")
    ]
    with pytest.raises(InvalidInput, match=f"at most {MAX_REFS}"):
        parse_refs([f"2403.{n:05d}" for n in range(MAX_REFS + 1)])


def test_a_zotero_export_gives_ids_from_url_or_eprint_and_titles_otherwise() -> None:
    refs = refs_from_bibtex((BIBTEX / "zotero.bib").read_bytes())
    assert refs == [
        PaperRef(arxiv_id="arxiv:1706.03762"),
        PaperRef(arxiv_id="arxiv:2006.11239"),
        PaperRef(title="Reinforcement learning: an introduction"),
    ]


def test_a_google_scholar_export_gives_the_id_in_its_journal_field() -> None:
    refs = refs_from_bibtex((BIBTEX / "scholar.bib").read_bytes())
    assert refs == [PaperRef(arxiv_id="arxiv:2001.08361")]


def test_a_mendeley_export_gives_its_arxiv_id_field() -> None:
    refs = refs_from_bibtex((BIBTEX / "mendeley.bib").read_bytes())
    assert refs == [PaperRef(arxiv_id="arxiv:2103.00020")]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not bibtex at all", "no BibTeX entries"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"@misc{x, year={2020}}", "no entry has an arXiv id or a title"),
    ],
)
def test_a_file_that_is_not_a_usable_bibtex_export_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        refs_from_bibtex(data, origin="library.bib")

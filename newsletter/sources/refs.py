"""Example papers as readers name them: an arXiv id, an arXiv or Hugging Face paper URL,
or the entries of a BibTeX export (Zotero, Google Scholar, Mendeley). Pure: this only
reads references; fetching the papers they name is the readers service's work.

Each export says "arXiv" its own way: Zotero writes `eprint` with `archivePrefix =
{arXiv}` and an arxiv.org `url`, Mendeley `arxivId`, Google Scholar only a `journal`
such as "arXiv preprint arXiv:2403.01234"; a DOI of the form 10.48550/arXiv.ID is an
arXiv id too. An entry with none of these is kept by its title, to be looked up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from newsletter.errors import InvalidInput
from newsletter.sources.records import split_arxiv_id

MAX_REFS = 50  # examples per reader: enough to describe a field, bounded work to fetch
MAX_BIBTEX_BYTES = 2_000_000
_ID_IN_TEXT = re.compile(
    r"(?<![\w.])(?:arxiv[:.\s/]*)?(\d{4}\.\d{4,5}(?:v\d+)?|[a-z-]+(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?)",
    re.IGNORECASE,
)
_PAPER_HOSTS = ("arxiv.org", "www.arxiv.org", "export.arxiv.org", "huggingface.co", "hf.co")


@dataclass(frozen=True)
class PaperRef:
    """One example paper: its arXiv id when known (`arxiv:2403.01234`), else its title."""

    arxiv_id: str | None = None
    title: str | None = None

    @property
    def label(self) -> str:
        return self.arxiv_id or f"“{self.title}”"


def parse_ref(text: str) -> PaperRef:
    """A reference as typed: `2403.01234`, `arxiv:2403.01234v2`, an arXiv abs/pdf/html
    URL or a Hugging Face papers URL. Anything else is refused with the reason."""
    raw = text.strip()
    if not raw:
        raise InvalidInput("an example paper is empty: give an arXiv id or a paper URL")
    found = split_arxiv_id(raw)
    if found is None and "://" in raw:
        found = _id_from_url(raw)
    if found is None:
        raise InvalidInput(
            f"not an arXiv id or paper URL: {raw[:80]!r} (e.g. 2403.01234 or "
            "https://arxiv.org/abs/2403.01234)"
        )
    return PaperRef(arxiv_id=f"arxiv:{found[0]}")


def _id_from_url(url: str) -> tuple[str, int | None] | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in _PAPER_HOSTS:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2 or segments[0] not in ("abs", "pdf", "html", "papers"):
        return None
    tail = "/".join(segments[1:]).removesuffix(".pdf")
    return split_arxiv_id(tail)


def parse_refs(texts: list[str]) -> list[PaperRef]:
    """Several typed references, duplicates dropped, at most MAX_REFS."""
    refs = _unique(parse_ref(t) for t in texts if t.strip())
    if len(refs) > MAX_REFS:
        raise InvalidInput(f"at most {MAX_REFS} example papers, not {len(refs)}")
    return refs


def refs_from_bibtex(data: bytes, origin: str = "the BibTeX file") -> list[PaperRef]:
    """Every entry of a BibTeX export as a reference; an unreadable file is an error."""
    import bibtexparser  # only readers who upload a library pay for the parser
    from bibtexparser.bparser import BibTexParser

    if len(data) > MAX_BIBTEX_BYTES:
        raise InvalidInput(f"{origin} is larger than {MAX_BIBTEX_BYTES // 1_000_000} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{origin} is not UTF-8 text") from None
    parser = BibTexParser(common_strings=True, ignore_nonstandard_types=False)
    try:
        library = bibtexparser.loads(text, parser=parser)
    except Exception as exc:  # the parser raises bare pyparsing errors on bad input
        raise InvalidInput(f"{origin} is not BibTeX ({type(exc).__name__})") from None
    if not library.entries:
        raise InvalidInput(f"{origin} has no BibTeX entries")
    refs = _unique(ref for entry in library.entries if (ref := _entry_ref(entry)))
    if not refs:
        raise InvalidInput(f"{origin}: no entry has an arXiv id or a title")
    return refs[:MAX_REFS]


def _entry_ref(entry: dict[str, str]) -> PaperRef | None:
    fields = {k.lower(): v for k, v in entry.items()}
    for key in ("arxivid", "eprint", "url", "doi", "journal", "note", "howpublished"):
        value = fields.get(key, "")
        if key == "eprint" and fields.get("archiveprefix", "arxiv").lower() != "arxiv":
            continue
        if key == "url":
            found = _id_from_url(value.strip())
        elif key == "doi":
            doi = value.strip().lower()
            found = split_arxiv_id(doi.split("arxiv.", 1)[1]) if "10.48550/arxiv." in doi else None
        elif key in ("arxivid", "eprint"):
            found = split_arxiv_id(value)
        else:
            match = _ID_IN_TEXT.search(value) if "arxiv" in value.lower() else None
            found = split_arxiv_id(match.group(1)) if match else None
        if found:
            return PaperRef(arxiv_id=f"arxiv:{found[0]}")
    title = " ".join(re.sub(r"[{}]", "", fields.get("title", "")).split())
    return PaperRef(title=title[:300]) if title else None


def _unique(refs: Iterable[PaperRef]) -> list[PaperRef]:
    seen: dict[PaperRef, None] = {}
    for ref in refs:
        seen.setdefault(ref)
    return list(seen)

"""Upserting papers, on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from newsletter.runtime import Runtime
from newsletter.sources.records import PaperRecord
from newsletter.store import db
from newsletter.store.papers import (
    UpsertCounts,
    all_papers,
    count_papers,
    set_embeddings,
    unembedded_between,
    upsert_papers,
)

LISTED = datetime(2026, 11, 23, tzinfo=UTC)
PAPER = PaperRecord(
    external_id="arxiv:2403.01234",
    title="Rotation-Invariant Transformer for Point Cloud Matching",
    source="hf",
    abstract="The intrinsic rotation invariance lies at the core of matching point clouds.",
    authors=("Ada Lovelace", "Grace Hopper"),
    upvotes=17,
    version=1,
    listed_at=LISTED,
)
OTHER = PaperRecord(external_id="arxiv:2409.05591", title="MemoRAG", source="hf", upvotes=3)


def upsert(context: Runtime, *records: PaperRecord) -> UpsertCounts:
    with db.transaction(context.sessions) as session:
        return upsert_papers(session, records)


def stored(context: Runtime, external_id: str = PAPER.external_id):  # type: ignore[no-untyped-def]
    with db.transaction(context.sessions) as session:
        return next(p for p in all_papers(session) if p.external_id == external_id)


def test_new_papers_are_inserted_with_every_field(any_context: Runtime) -> None:
    assert upsert(any_context, PAPER, OTHER) == UpsertCounts(new=2)
    row = stored(any_context)
    assert (row.title, row.abstract, row.upvotes, row.version) == (
        PAPER.title,
        PAPER.abstract,
        17,
        1,
    )
    assert row.authors == ["Ada Lovelace", "Grace Hopper"]
    assert row.listed_at == LISTED
    assert row.ingested_at.tzinfo is not None


def test_the_same_records_twice_add_nothing(any_context: Runtime) -> None:
    upsert(any_context, PAPER, OTHER)
    before = stored(any_context).updated_at
    assert upsert(any_context, PAPER, OTHER) == UpsertCounts(unchanged=2)
    with db.transaction(any_context.sessions) as session:
        assert count_papers(session) == 2
    assert stored(any_context).updated_at == before


def test_a_newer_upvote_count_updates_the_row(any_context: Runtime) -> None:
    upsert(any_context, PAPER)
    assert upsert(any_context, replace(PAPER, upvotes=40)) == UpsertCounts(updated=1)
    assert stored(any_context).upvotes == 40


def test_a_newer_version_updates_title_and_version(any_context: Runtime) -> None:
    upsert(any_context, PAPER)
    revised = replace(PAPER, title="Rotation-Invariant Transformer (Revised)", version=2)
    assert upsert(any_context, revised) == UpsertCounts(updated=1)
    row = stored(any_context)
    assert (row.title, row.version) == ("Rotation-Invariant Transformer (Revised)", 2)


def test_an_older_version_does_not_overwrite_the_title(any_context: Runtime) -> None:
    upsert(any_context, replace(PAPER, title="Revised title", version=2))
    old = replace(PAPER, title="Original title", abstract="Old abstract", version=1, upvotes=50)
    assert upsert(any_context, old) == UpsertCounts(updated=1)  # only the count moved
    row = stored(any_context)
    assert (row.title, row.abstract, row.version, row.upvotes) == (
        "Revised title",
        PAPER.abstract,
        2,
        50,
    )


def test_empty_fields_never_erase_known_data(any_context: Runtime) -> None:
    upsert(any_context, PAPER)
    sparse = PaperRecord(external_id=PAPER.external_id, title=PAPER.title, source="hf")
    assert upsert(any_context, sparse) == UpsertCounts(unchanged=1)
    row = stored(any_context)
    assert (row.abstract, row.upvotes, row.authors) == (PAPER.abstract, 17, list(PAPER.authors))


def test_the_first_listing_day_is_kept(any_context: Runtime) -> None:
    upsert(any_context, PAPER)
    upsert(any_context, replace(PAPER, listed_at=datetime(2026, 11, 25, tzinfo=UTC), upvotes=20))
    assert stored(any_context).listed_at == LISTED


def test_a_paper_twice_in_one_batch_is_one_row_with_the_newest_version(
    any_context: Runtime,
) -> None:
    v2 = replace(PAPER, title="v2 title", version=2)
    assert upsert(any_context, v2, replace(PAPER, title="v1 title")) == UpsertCounts(new=1)
    assert stored(any_context).title == "v2 title"


def test_a_changed_abstract_drops_the_stale_embedding(any_context: Runtime) -> None:
    upsert(any_context, PAPER)
    with db.transaction(any_context.sessions) as session:
        row = next(iter(all_papers(session)))
        row.embedding, row.embedding_model = b"\x00" * 8, "model"
    upsert(any_context, replace(PAPER, abstract="A new abstract."))
    assert stored(any_context).embedding is None


def test_thousands_of_records_load_in_one_call(any_context: Runtime) -> None:
    records = [
        PaperRecord(external_id=f"arxiv:2411.{n:05d}", title=f"Paper {n}", source="json")
        for n in range(1200)  # more than one lookup chunk
    ]
    assert upsert(any_context, *records) == UpsertCounts(new=1200)
    assert upsert(any_context, *records) == UpsertCounts(unchanged=1200)


def test_another_source_at_the_same_version_only_fills_gaps(any_context: Runtime) -> None:
    upsert(any_context, PAPER)
    feed = replace(
        PAPER, source="arxiv", title="Differently Worded Title", categories=("cs.CV",), upvotes=None
    )
    assert upsert(any_context, feed) == UpsertCounts(updated=1)
    row = stored(any_context)
    assert (row.title, row.categories, row.source) == (PAPER.title, ["cs.CV"], "hf")


def test_two_sources_of_one_paper_do_not_flip_it_on_every_run(any_context: Runtime) -> None:
    hf = replace(PAPER, url="https://huggingface.co/papers/2403.01234")
    feed = replace(PAPER, source="arxiv", url="https://arxiv.org/abs/2403.01234", upvotes=None)
    upsert(any_context, hf)
    upsert(any_context, feed)
    assert upsert(any_context, hf) == UpsertCounts(unchanged=1)
    assert upsert(any_context, feed) == UpsertCounts(unchanged=1)
    assert stored(any_context).url == "https://huggingface.co/papers/2403.01234"


def test_the_same_source_corrects_its_own_data(any_context: Runtime) -> None:
    upsert(any_context, PAPER)
    assert upsert(any_context, replace(PAPER, title="Corrected")) == UpsertCounts(updated=1)
    assert stored(any_context).title == "Corrected"


def test_only_the_windows_papers_without_this_models_vector_are_to_embed(
    any_context: Runtime,
) -> None:
    records = [
        replace(PAPER, external_id=f"arxiv:2411.0000{n}", title=f"Paper {n}", listed_at=at)
        for n, at in enumerate([LISTED] * 4 + [LISTED - timedelta(days=30)])
    ]
    upsert(any_context, *records)
    with db.transaction(any_context.sessions) as session:
        ids = {p.title: p.id for p in all_papers(session)}
        set_embeddings(session, "model-a", {ids["Paper 1"]: b"\0" * 8})
        set_embeddings(session, "model-b", {ids["Paper 2"]: b"\0" * 8})
        set_embeddings(session, "model-a", {ids["Paper 4"]: b"\0" * 8})
    with db.transaction(any_context.sessions) as session:
        found = unembedded_between(session, LISTED, LISTED + timedelta(days=1), "model-a")
    # Paper 0 has none, paper 2 another model's; 1 has this one's, 4 is outside.
    assert [title for _, title, _ in found] == ["Paper 0", "Paper 2", "Paper 3"]
    assert {abstract for _, _, abstract in found} == {PAPER.abstract}

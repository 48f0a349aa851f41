"""The ingest service and the `newsletter ingest` command, on real stores and servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.errors import InvalidInput, SchemaMissing, SourceError
from newsletter.ingest import SAMPLE_PAPERS, Progress, ingest
from newsletter.runtime import Runtime
from newsletter.sources.fetch import FetchPolicy
from newsletter.store import db
from newsletter.store.papers import all_papers, count_papers
from tests.conftest import CliResult, make_settings
from tests.http_server import Answer, ScriptedServer, scripted_server

FIXTURES = Path(__file__).parent / "fixtures"
HF = str(FIXTURES / "hf-daily-papers.json")
ARXIV = str(FIXTURES / "arxiv-query.xml")
JSONL = str(FIXTURES / "papers.jsonl")
PAGE = str(FIXTURES / "page-small.txt")
QUICK = FetchPolicy(timeout=5, retries=2, backoff=0.01, max_wait=0.05)


def papers(context: Runtime) -> dict[str, tuple[str, int, int | None]]:
    with db.transaction(context.sessions) as session:
        return {p.external_id: (p.title, p.version, p.upvotes) for p in all_papers(session)}


def paper_count(settings: Settings) -> int:
    context = Runtime(settings)
    try:
        with db.transaction(context.sessions) as session:
            return count_papers(session)
    finally:
        context.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as script:
        yield script


# --- the service ---------------------------------------------------------------------


def test_it_loads_every_format_and_reports_per_source(any_context: Runtime) -> None:
    report = ingest(any_context, [HF, ARXIV, JSONL, PAGE])
    rows = [(s.format, s.records, s.new, s.updated, s.unchanged) for s in report.sources]
    assert rows == [
        ("hf", 4, 4, 0, 0),
        ("arxiv", 3, 2, 1, 0),  # 2403.01234v2 is the HF paper, now in version 2
        ("jsonl", 3, 2, 1, 0),  # Copyright Traps: known from HF, gains upvotes
        ("page", 3, 3, 0, 0),
    ]
    assert [len(s.skipped) for s in report.sources] == [1, 0, 2, 0]
    assert (report.new, report.updated, report.skipped) == (11, 2, 3)
    stored = papers(any_context)
    assert len(stored) == 11
    assert stored["arxiv:2403.01234"] == (
        "Rotation-Invariant Transformer for Point Cloud Matching (Revised)",
        2,
        17,  # upvotes from HF survive the arXiv update, which has none
    )


def test_ingesting_the_same_sources_twice_adds_nothing(any_context: Runtime) -> None:
    ingest(any_context, [HF, ARXIV, JSONL, PAGE])
    again = ingest(any_context, [HF, ARXIV, JSONL, PAGE])
    assert (again.new, again.updated) == (0, 0)
    assert again.unchanged == 4 + 3 + 3 + 3
    assert len(papers(any_context)) == 11


@pytest.mark.parametrize(
    "malformed",
    [
        "hf-daily-papers-malformed.json",
        "arxiv-malformed.xml",
        "papers-malformed.jsonl",
        "page-malformed.txt",
    ],
)
def test_a_malformed_source_writes_nothing_at_all(context: Runtime, malformed: str) -> None:
    ingest(context, [PAGE])
    before = papers(context)
    bad = str(FIXTURES / malformed)
    with pytest.raises(SourceError, match=rf"^{bad}: "):
        ingest(context, [HF, bad, JSONL])  # the good source before it is not stored either
    assert papers(context) == before


def test_a_missing_file_is_a_source_error(context: Runtime) -> None:
    with pytest.raises(SourceError, match=r"nope\.json: file not found$"):
        ingest(context, ["nope.json"])
    with pytest.raises(SourceError, match="is a directory"):
        ingest(context, [str(FIXTURES)])


def test_only_http_urls_are_fetched(context: Runtime) -> None:
    with pytest.raises(SourceError, match="only http"):
        ingest(context, ["ftp://example.org/papers.json"])


def test_the_format_option_overrides_detection(context: Runtime) -> None:
    with pytest.raises(SourceError, match=r"page-small\.txt: line 1 is not valid JSON"):
        ingest(context, [PAGE], "jsonl")
    with pytest.raises(InvalidInput, match="unknown format 'csv'"):
        ingest(context, [PAGE], "csv")


def test_without_sources_it_reads_the_configured_ones(tmp_path: Path) -> None:
    sources = [{"format": "hf", "path": HF}, {"path": PAGE}]
    context = Runtime(make_settings(f"sqlite:///{tmp_path / 's.db'}", sources=sources))
    db.upgrade(context.engine)
    try:
        report = ingest(context)
        assert [(s.location, s.format, s.new) for s in report.sources] == [
            (HF, "hf", 4),
            (PAGE, "page", 3),
        ]
    finally:
        context.close()


def test_without_sources_anywhere_it_says_so(context: Runtime) -> None:
    with pytest.raises(InvalidInput, match="no SOURCE given and no `sources`"):
        ingest(context)


def test_a_store_without_schema_asks_for_init(settings: Settings) -> None:
    context = Runtime(settings)
    try:
        with pytest.raises(SchemaMissing, match="newsletter init"):
            ingest(context, [PAGE])
    finally:
        context.close()


def test_progress_reports_each_source_then_storing(context: Runtime) -> None:
    events: list[Progress] = []
    ingest(context, [HF, PAGE], progress=events.append)
    assert [(e.step, e.location, e.done, e.total) for e in events] == [
        ("reading", HF, 0, 2),
        ("read", HF, 1, 2),
        ("reading", PAGE, 1, 2),
        ("read", PAGE, 2, 2),
        ("storing", "", 2, 2),
    ]


def test_the_bundled_sample_loads(context: Runtime) -> None:
    report = ingest(context, [str(SAMPLE_PAPERS)])
    assert (report.sources[0].format, report.new, report.skipped) == ("jsonl", 37, 0)


# --- over HTTP -------------------------------------------------------------------------


def test_it_ingests_from_urls_with_detection(context: Runtime, server: ScriptedServer) -> None:
    hf = server.route("/api/daily_papers", Answer(200, Path(HF).read_bytes()))
    feed = server.route("/api/query?id_list=2403.01234", Answer(200, Path(ARXIV).read_bytes()))
    report = ingest(context, [hf, feed], policy=QUICK)
    assert [(s.format, s.new) for s in report.sources] == [("hf", 4), ("arxiv", 2)]


def test_it_retries_busy_servers(context: Runtime, server: ScriptedServer) -> None:
    busy = server.route("/busy.jsonl", Answer(503), Answer(200, Path(JSONL).read_bytes()))
    limited = server.route(
        "/limited.txt",
        Answer(429, headers={"Retry-After": "1"}),
        Answer(200, Path(PAGE).read_bytes()),
    )
    report = ingest(context, [busy, limited], policy=QUICK)
    assert [s.new for s in report.sources] == [3, 3]
    assert (server.hits("/busy.jsonl"), server.hits("/limited.txt")) == (2, 2)


def test_a_404_is_one_line_and_writes_nothing(context: Runtime, server: ScriptedServer) -> None:
    good = server.route("/papers.jsonl", Answer(200, Path(JSONL).read_bytes()))
    with pytest.raises(SourceError) as caught:
        ingest(context, [good, server.base_url + "/gone.json"], policy=QUICK)
    assert str(caught.value) == f"{server.base_url}/gone.json: HTTP 404 Not Found"
    assert papers(context) == {}


# --- the command -----------------------------------------------------------------------

Run = Callable[..., CliResult]


@pytest.fixture
def config(config_file: Callable[..., Path], run_cli: Run) -> str:
    path = str(config_file())
    assert run_cli("--config", path, "init").exit_code == 0
    return path


def test_the_command_prints_counts_and_skipped_reasons(config: str, run_cli: Run) -> None:
    result = run_cli("--config", config, "ingest", HF, JSONL)
    assert result.exit_code == 0, result.stderr
    assert "6 new, 1 updated, 0 unchanged, 3 skipped" in result.stdout
    assert f"{HF} record 3: no paper.id" in result.stdout
    assert f"{JSONL} line 5: missing title" in result.stdout
    assert "hf-daily-papers.json" in result.stdout  # the per-source table


def test_the_command_run_twice_adds_nothing(config: str, run_cli: Run, sqlite_url: str) -> None:
    run_cli("--config", config, "ingest", ARXIV)
    result = run_cli("--config", config, "ingest", ARXIV)
    assert result.exit_code == 0
    assert "0 new, 0 updated, 3 unchanged" in result.stdout
    assert paper_count(make_settings(sqlite_url)) == 3


def test_a_malformed_file_fails_in_one_line_and_leaves_the_store(
    config: str, run_cli: Run, sqlite_url: str
) -> None:
    run_cli("--config", config, "ingest", PAGE)
    before = paper_count(make_settings(sqlite_url))
    bad = str(FIXTURES / "hf-daily-papers-malformed.json")
    result = run_cli("--config", config, "ingest", HF, bad)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: {bad}: not valid JSON")
    assert "Traceback" not in result.stderr
    assert paper_count(make_settings(sqlite_url)) == before == 3


def test_a_missing_file_is_a_one_line_error(config: str, run_cli: Run) -> None:
    result = run_cli("--config", config, "ingest", "missing.jsonl")
    assert (result.exit_code, result.stderr) == (1, "Error: missing.jsonl: file not found\n")


def test_without_schema_it_says_to_run_init(config_file: Callable[..., Path], run_cli: Run) -> None:
    result = run_cli("--config", str(config_file()), "ingest", PAGE)
    assert result.exit_code == 1
    assert "run `newsletter init`" in result.stderr


def test_the_command_reads_configured_sources(
    config_file: Callable[..., Path], run_cli: Run
) -> None:
    path = str(config_file(sources=[{"format": "hf", "path": HF}]))
    run_cli("--config", path, "init")
    result = run_cli("--config", path, "ingest")
    assert result.exit_code == 0, result.stderr
    assert "4 new" in result.stdout


def test_the_help_shows_formats_and_an_example(run_cli: Run) -> None:
    result = run_cli("ingest", "--help")
    assert "auto|hf|arxiv|json|jsonl|page" in result.stdout
    assert "newsletter ingest papers.jsonl" in result.stdout

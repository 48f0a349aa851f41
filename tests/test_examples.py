"""Readers teach the digest: `subscribe --paper`, `feedback`, and what planning makes of
them, through the real commands, with the arXiv API played by a local HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from newsletter.readers import subscriptions
from newsletter.runtime import Runtime
from newsletter.sources.jsonfile import JsonlSource
from newsletter.sources.records import PaperRecord
from newsletter.store import db
from newsletter.store.examples import felt_papers
from newsletter.store.papers import paper_ids_for, upsert_papers
from newsletter.store.subscribers import get_subscriber
from tests.conftest import CliResult
from tests.http_server import Answer, ScriptedServer, scripted_server
from tests.process_helpers import current_window_instant

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = Path(__file__).resolve().parent.parent / "newsletter" / "data" / "sample-papers.jsonl"
EXAMPLE_QUERY = "/api/query?id_list=2311.04601&max_results=1"
Cli = Callable[..., CliResult]


@pytest.fixture
def arxiv() -> Iterator[ScriptedServer]:
    with scripted_server() as server:
        server.route(EXAMPLE_QUERY, Answer(body=(FIXTURES / "arxiv-example.xml").read_bytes()))
        # arXiv leaves out the ids it does not know
        server.route(
            "/api/query?id_list=2311.04601%2C2311.99999&max_results=2",
            Answer(body=(FIXTURES / "arxiv-example.xml").read_bytes()),
        )
        yield server


@pytest.fixture
def cli(config_file: Callable[..., Path], run_cli: Cli, arxiv: ScriptedServer) -> Cli:
    path = config_file(
        matching={"semantic": "off"}, examples={"arxiv_api": f"{arxiv.base_url}/api/query"}
    )
    return lambda *args: run_cli("--config", str(path), *args)


def sample_papers_this_week(context: Runtime) -> list[PaperRecord]:
    """The bundled sample papers, listed inside the current edition's window."""
    when = current_window_instant(context)
    parsed = JsonlSource().parse(SAMPLE.read_bytes(), "sample").records
    records = [replace(r, listed_at=when) for r in parsed]
    with db.transaction(context.sessions) as session:
        upsert_papers(session, records)
    return records


def marks(context: Runtime, email: str) -> list[tuple[str, str, str]]:
    with db.transaction(context.sessions) as session:
        subscriber = get_subscriber(session, email)
        assert subscriber is not None
        return [(p.title, p.feeling, p.origin) for p in felt_papers(session, subscriber.id)]


def test_subscribe_with_a_paper_fetches_it_from_arxiv_and_keeps_it_as_an_example(
    cli: Cli, context: Runtime, arxiv: ScriptedServer
) -> None:
    result = cli("subscribe", "ada@example.org", "--paper", "2311.04601v1", "--confirmed")
    assert result.exit_code == 0, result.stderr
    assert "1 example paper" in result.stdout
    assert marks(context, "ada@example.org") == [
        ("Learning Rotation-Invariant Features for Point Cloud Registration", "like", "admin")
    ]
    again = cli(
        "subscribe", "bob@example.org", "--paper", "https://arxiv.org/abs/2311.04601", "--confirmed"
    )
    assert again.exit_code == 0, again.stderr
    assert arxiv.hits(EXAMPLE_QUERY) == 1  # stored once, then found in the store


@pytest.mark.parametrize(
    ("paper", "problem"),
    [
        ("2311.99999", "not found on arXiv: arxiv:2311.99999"),
        ("attention is all you need", "not an arXiv id or paper URL"),
    ],
)
def test_an_example_that_cannot_be_found_fails_the_subscription_and_writes_nothing(
    cli: Cli, context: Runtime, paper: str, problem: str
) -> None:
    result = cli("subscribe", "ada@example.org", "--paper", "2311.04601", "--paper", paper)
    assert result.exit_code != 0
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert subscriptions.list_all(context) == []
    with db.transaction(context.sessions) as session:
        assert paper_ids_for(session, ["arxiv:2311.04601"]) == {}


def test_an_unreachable_arxiv_is_a_one_line_error(
    config_file: Callable[..., Path], run_cli: Cli, context: Runtime
) -> None:
    path = config_file(examples={"arxiv_api": "http://127.0.0.1:9/api/query"})
    result = run_cli("--config", str(path), "subscribe", "ada@example.org", "--paper", "2311.04601")
    assert result.exit_code != 0
    assert "could not look up example papers on arXiv" in result.stderr
    assert "Traceback" not in result.stderr
    assert subscriptions.list_all(context) == []


def test_the_digest_brings_papers_like_the_example_and_names_it(cli: Cli, context: Runtime) -> None:
    sample_papers_this_week(context)
    cli("subscribe", "ada@example.org", "--paper", "2311.04601", "--confirmed")
    preview = cli("preview", "ada@example.org", "--text")
    assert preview.exit_code == 0, preview.stderr
    like = "Like: Learning Rotation-Invariant Features for Point Cloud Registration"
    assert like in preview.stdout
    assert "PARE-Net" in preview.stdout  # a sample paper on point cloud registration
    assert "Matched your" not in preview.stdout  # nothing but the example was asked for


def test_fewer_keeps_the_paper_out_of_later_previews(cli: Cli, context: Runtime) -> None:
    records = sample_papers_this_week(context)
    cli("subscribe", "ada@example.org", "--topic", "vision", "--confirmed")
    before = cli("preview", "ada@example.org", "--text").stdout
    shown = next(r for r in records if r.title.split(":")[0] in before)
    result = cli("feedback", "ada@example.org", shown.external_id, "fewer")
    assert result.exit_code == 0, result.stderr
    assert "held back" in result.stdout
    after = cli("preview", "ada@example.org", "--text").stdout
    assert shown.title.split(":")[0] not in after
    assert marks(context, "ada@example.org") == [(shown.title, "fewer", "admin")]


def test_more_makes_the_paper_an_example_and_a_later_mark_replaces_it(
    cli: Cli, context: Runtime
) -> None:
    records = sample_papers_this_week(context)
    cli("subscribe", "ada@example.org", "--topic", "llms", "--confirmed")
    paper = records[0]
    assert cli("feedback", "ada@example.org", paper.external_id, "more").exit_code == 0
    assert marks(context, "ada@example.org") == [(paper.title, "like", "admin")]
    assert cli("feedback", "ada@example.org", paper.external_id, "fewer").exit_code == 0
    assert marks(context, "ada@example.org") == [(paper.title, "fewer", "admin")]


@pytest.mark.parametrize(
    ("email", "paper", "problem"),
    [
        ("nobody@example.org", "1", "no subscriber nobody@example.org"),
        ("ada@example.org", "2311.77777", "no stored paper '2311.77777'"),
        ("ada@example.org", "987654", "no stored paper '987654'"),
    ],
)
def test_feedback_for_an_unknown_reader_or_paper_is_a_one_line_error(
    cli: Cli, context: Runtime, email: str, paper: str, problem: str
) -> None:
    sample_papers_this_week(context)
    cli("subscribe", "ada@example.org", "--topic", "llms", "--confirmed")
    result = cli("feedback", email, paper, "more")
    assert result.exit_code != 0
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_subscribe_takes_example_papers_from_a_bibtex_export(
    cli: Cli, context: Runtime, tmp_path: Path
) -> None:
    library = tmp_path / "library.bib"
    library.write_text(
        "@misc{x, title={Learning Rotation-Invariant Features}, url={http://arxiv.org/abs/2311.04601}}",
        encoding="utf-8",
    )
    result = cli("subscribe", "ada@example.org", "--bibtex", str(library), "--confirmed")
    assert result.exit_code == 0, result.stderr
    assert [title for title, _, _ in marks(context, "ada@example.org")] == [
        "Learning Rotation-Invariant Features for Point Cloud Registration"
    ]


EMPTY_FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>ArXiv Query</title>
<id>http://arxiv.org/api/empty</id></feed>"""


def test_a_library_entry_arxiv_does_not_have_is_left_out_and_named(
    cli: Cli, context: Runtime, arxiv: ScriptedServer, tmp_path: Path
) -> None:
    arxiv.route(
        "/api/query?search_query=ti%3A%22Reinforcement+learning+an+introduction%22&max_results=3",
        Answer(body=EMPTY_FEED),
    )
    library = tmp_path / "library.bib"
    library.write_text(
        "@misc{a, title={Rotation-invariant features}, eprint={2311.04601},"
        " archivePrefix={arXiv}}\n"
        "@book{b, title={Reinforcement learning: an introduction}, year={2018}}\n",
        encoding="utf-8",
    )
    result = cli("subscribe", "ada@example.org", "--bibtex", str(library), "--confirmed")
    assert result.exit_code == 0, result.stderr
    assert "Left out “Reinforcement learning: an introduction”: not on arXiv." in (
        " ".join(result.stdout.split())
    )
    assert [title for title, _, _ in marks(context, "ada@example.org")] == [
        "Learning Rotation-Invariant Features for Point Cloud Registration"
    ]

"""`newsletter match`: what a subscriber with a given interest would get."""

from __future__ import annotations

import json

import click
from rich.table import Table

from newsletter.cli.base import State, cli, console, pass_state
from newsletter.cli.embedding import embedding_bar
from newsletter.planning import relevance


@cli.command(
    epilog=(
        "Examples: newsletter match healthcare 'diffusion models for video' --days 7\n\n"
        "          newsletter match llms --json   (llms is a topic slug from config.yaml)"
    )
)
@click.argument("queries", nargs=-1, required=True, metavar="QUERY...")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    help="Only papers listed in the last N days [default: every paper in the store].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: QUERY → papers.")
@pass_state
def match(state: State, queries: tuple[str, ...], days: int | None, as_json: bool) -> None:
    """The papers a subscriber interested in each QUERY would get, best first.

    A QUERY is a topic slug from config.yaml or free text. Ranking is exactly the one
    the weekly digest uses (relevance threshold, then relevance mixed with trending),
    limited to digest.max_papers. Score and relevance are on a 0–1 scale: a paper is
    picked at relevance ≥ matching.threshold (with the model, from
    matching.standout_threshold where it stands out from the window's papers), and the
    score (its digest order) mixes relevance with how much the paper is trending.
    """
    context = state.context()
    with embedding_bar() as embedding:
        picks = relevance.match_queries(context, queries, days, progress=embedding)
    if as_json:
        click.echo(json.dumps({q: [_as_dict(p) for p in found] for q, found in picks.items()}))
        return
    for query, found in picks.items():
        _print_table(query, found)


def _as_dict(pick: relevance.QueryPick) -> dict[str, object]:
    return {
        "id": pick.external_id,
        "title": pick.title,
        "score": round(pick.score, 4),
        "relevance": round(pick.relevance, 4),
        "reason": pick.reason,
    }


def _print_table(query: str, found: list[relevance.QueryPick]) -> None:
    if not found:
        console.print(f"“{query}”: no paper is relevant enough.", markup=False)
        return
    table = Table(title=f"“{query}”", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("relevance", justify="right")
    table.add_column("paper")
    table.add_column("id", overflow="fold")
    for n, pick in enumerate(found, 1):
        table.add_row(
            str(n), f"{pick.score:.3f}", f"{pick.relevance:.3f}", pick.title, pick.external_id
        )
    console.print(table)

"""Schema and subscriber commands: init, subscribe, unsubscribe, subscribers, import."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from newsletter.cli.base import State, cli, console, pass_state, plural
from newsletter.errors import InvalidInput
from newsletter.readers import subscriptions
from newsletter.store import db
from newsletter.store.statuses import Origin


@cli.command(epilog="Example: newsletter init")
@pass_state
def init(state: State) -> None:
    """Create the database schema, or upgrade it to this version."""
    context = state.context(require_schema=False)
    before, after = db.upgrade(context.engine)
    url = context.engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"Schema of {url} is up to date (revision {after}).")
    elif before is None:
        console.print(f"Created the schema in {url} (revision {after}).")
    else:
        console.print(f"Upgraded the schema of {url} from {before} to {after}.")


@cli.command(
    epilog="Examples:\n\n"
    "  newsletter subscribe ada@example.org --topic llms --confirmed\n\n"
    "  newsletter subscribe ada@example.org --paper 2403.01234 "
    "--paper https://huggingface.co/papers/2401.04088"
)
@click.argument("email")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="SLUG",
    help="A topic from config.yaml (repeatable).",
)
@click.option(
    "--interest",
    "interests",
    multiple=True,
    metavar="TEXT",
    help="A free-text interest (repeatable).",
)
@click.option(
    "--paper",
    "papers",
    multiple=True,
    metavar="ID",
    help="An example paper: arXiv id or arXiv / Hugging Face URL (repeatable). "
    "Papers not stored yet are fetched from the arXiv API.",
)
@click.option(
    "--bibtex",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Example papers from a BibTeX export (Zotero, Google Scholar, Mendeley).",
)
@click.option("--confirmed", is_flag=True, help="Active at once, without a confirmation email.")
@pass_state
def subscribe(
    state: State,
    email: str,
    topics: tuple[str, ...],
    interests: tuple[str, ...],
    papers: tuple[str, ...],
    bibtex: Path | None,
    confirmed: bool,
) -> None:
    """Add a subscriber (pending until confirmed) or update a known one's topics."""
    # Loaded by the commands that use them: `import-subscribers` starts without the
    # arXiv client and the email renderer.
    from newsletter.delivery import notices
    from newsletter.readers import examples
    from newsletter.sources.refs import parse_refs, refs_from_bibtex

    context = state.context()
    refs = parse_refs(list(papers))
    library = refs_from_bibtex(bibtex.read_bytes(), origin=str(bibtex)) if bibtex else []
    found = None
    if refs or library:
        with console.status(f"Looking up {plural(len(refs) + len(library), 'example paper')}…"):
            found = examples.find_papers(context, refs)
            if library:  # a library may hold books and journal papers: those are skipped
                more = examples.find_papers(context, library, lenient=True)
                found = examples.joined(found, more)
                for entry in more.skipped:
                    console.print(f"Left out {entry}: not on arXiv.")
    result = subscriptions.subscribe(
        context, email, topics, interests, confirmed=confirmed, examples=found, origin=Origin.ADMIN
    )
    info = result.subscriber
    verb = "Added" if result.created else "Updated"
    given = f"; {plural(len(found.external_ids), 'example paper')}" if found else ""
    console.print(
        f"{verb} {info.email} ({info.status}; topics: {', '.join(info.topics) or 'none'}{given})."
    )
    if result.needs_confirmation:
        notices.send_confirmation(context, info)
        console.print(f"Sent a confirmation email to {info.email}.")


@cli.command(
    epilog="Examples:\n\n  newsletter feedback ada@example.org 2403.01234 more\n\n"
    "  newsletter feedback ada@example.org arxiv:2403.01234 fewer"
)
@click.argument("email")
@click.argument("paper_id", metavar="PAPER_ID")
@click.argument("direction", type=click.Choice(["more", "fewer"]))
@pass_state
def feedback(state: State, email: str, paper_id: str, direction: str) -> None:
    """What a digest's "More like this" / "Fewer like this" do, for a reader.

    PAPER_ID is a stored paper's arXiv id (2403.01234, arxiv:2403.01234, a paper URL) or
    its number in the store. "more" makes it one of the reader's example papers;
    "fewer" keeps it, and new papers close to it, out of their later digests. Undo it
    on the reader's preferences page.
    """
    from newsletter.readers import examples

    given = examples.feedback_by_email(state.context(), email, paper_id, direction == "more")
    what = "an example paper" if given.feeling == "like" else "held back ('fewer like this')"
    console.print(f"“{given.title}” is now {what} for {email}.")


@cli.command(epilog="Example: newsletter unsubscribe ada@example.org")
@click.argument("email")
@pass_state
def unsubscribe(state: State, email: str) -> None:
    """Stop all mail to an address, including editions already planned."""
    info = subscriptions.unsubscribe(state.context(), email)
    console.print(f"{info.email} is {info.status}; nothing more will be sent to it.")


@cli.command(epilog="Example: newsletter subscribers --json")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@pass_state
def subscribers(state: State, as_json: bool) -> None:
    """List subscribers with their status, topics, interests, time zone and paused state."""
    people = subscriptions.list_all(state.context())
    if as_json:
        rows = [
            {
                "email": p.email,
                "status": p.status,
                "topics": list(p.topics),
                "interests": list(p.interests),
                "timezone": p.timezone,  # null: the edition's (digest.timezone)
                "paused": p.paused,
            }
            for p in people
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("email", "status", "topics", "interests", "time zone")
    for p in people:
        status = f"{p.status} (paused)" if p.paused else p.status
        zone = p.timezone or "edition's"
        table.add_row(p.email, status, ", ".join(p.topics), "; ".join(p.interests), zone)
    console.print(table)
    console.print(f"{plural(len(people), 'subscriber')}.")


@cli.command("import-subscribers", epilog="Example: newsletter import-subscribers readers.csv")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def import_subscribers(state: State, csv_file: Path) -> None:
    """Import active subscribers from a CSV with a header: `email,topics[,interests]`.

    Topics (slugs from config.yaml) and typed interests are separated by `;`. A known
    address gets the row's topics (and its interests, when the column is there); an
    address repeated in the file is imported from its first row and reported.
    """
    report = subscriptions.import_csv(state.context(), csv_file)
    for problem in report.problems:
        console.print(f"skipped {problem}", markup=False)
    replaced = " (the file's topics replace theirs)" if report.updated else ""
    console.print(
        f"Imported {report.added} new and {plural(report.updated, 'existing subscriber')}"
        f"{replaced}; {plural(len(report.problems), 'row')} skipped."
    )
    if report.problems and not (report.added or report.updated):
        raise InvalidInput(f"{csv_file}: no row could be imported")

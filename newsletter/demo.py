"""The demo: the whole flow on the embedded defaults, with no network.

A fresh SQLite database in a work folder, a recorded Hugging Face daily-papers response
(real papers with authors, upvotes, comments and links) re-dated into this week's
edition, three readers with different interests, an SMTP capture server on a free
loopback port, and a real `send-now` through it. Every received message is saved as
.eml and its HTML part as .html, so there is something to open; a config.yaml next to
the database lets `newsletter serve` answer the links in those emails.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from newsletter import ingest
from newsletter.config import DigestConfig, Settings
from newsletter.delivery import dispatch
from newsletter.errors import InvalidInput
from newsletter.mail.capture import CaptureServer
from newsletter.planning import weeks
from newsletter.readers import subscriptions
from newsletter.runtime import Runtime
from newsletter.store import db, plans
from newsletter.store.models import utcnow

# A recorded /api/daily_papers answer (see data/README.md); its days are moved at run time.
DAILY_PAPERS = Path(__file__).parent / "data" / "demo-daily-papers.json"
SITE = "http://127.0.0.1:8000"  # where `newsletter serve` listens by default

# Three readers who want different things: two pick topics, one types interests.
READERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("ada@example.org", ("llms", "rag"), (), "Europe/London"),
    ("grace@example.org", ("computer-vision",), ("point cloud registration",), "America/New_York"),
    ("alan@example.org", (), ("memory in language models", "healthcare"), "Asia/Tokyo"),
)


@dataclass
class DemoResult:
    folder: Path
    database: Path
    config: Path  # serves the demo database: `newsletter --config CONFIG serve`
    edition_key: str
    papers: int
    sent: int
    messages: list[Path] = field(default_factory=list)  # the .html files
    picks: dict[str, list[str]] = field(default_factory=dict)  # reader → paper titles


def run(
    settings: Settings,
    folder: Path,
    echo: Callable[[str], None] = print,
    now: datetime | None = None,
) -> DemoResult:
    """Run the demo in `folder` (emptied first, so running twice works) as of `now`."""
    if folder.exists():
        shutil.rmtree(folder)
    mail_dir = folder / "mail"
    mail_dir.mkdir(parents=True)
    database = folder / "demo.db"
    now = now or utcnow()
    with CaptureServer(folder=mail_dir) as smtp:
        demo_settings = _demo_settings(settings, database, smtp)
        context = Runtime(demo_settings)
        try:
            result = _run(context, folder, database, mail_dir, now, echo)
        finally:
            context.close()
    _write_serve_config(result.config, settings, demo_settings)
    return result


def _demo_settings(settings: Settings, database: Path, smtp: CaptureServer) -> Settings:
    if not settings.topics:
        raise InvalidInput(
            "the demo needs topics to pick from, but the config sets `topics` to an empty list "
            "(without the key the shipped topics apply)"
        )
    return settings.with_overrides(
        site={"base_url": SITE},
        database={"url": f"sqlite:///{database}"},
        smtp={
            "host": smtp.host,
            "port": smtp.port,
            "security": "none",
            "username": None,
            "password": None,
            "max_rate": None,
        },
    ).model_copy(update={"dkim": None, "sources": (), "secret_key": None})


def _run(
    context: Runtime,
    folder: Path,
    database: Path,
    mail_dir: Path,
    now: datetime,
    echo: Callable[[str], None],
) -> DemoResult:
    db.upgrade(context.engine)
    papers = folder / "daily_papers.json"
    papers.write_text(json.dumps(redated(context.settings.digest, now)), encoding="utf-8")
    report = ingest.ingest(context, [str(papers)], "hf")
    echo(f"Ingested {report.new} papers (a recorded Hugging Face daily list) into {database}.")
    for address, topics, interests, zone in READERS:
        known = {t.slug for t in context.settings.topics}
        subscriptions.subscribe(
            context,
            address,
            [t for t in topics if t in known],
            interests,
            confirmed=True,
            timezone=zone,
        )
    echo(f"Subscribed {len(READERS)} demo readers.")
    result = dispatch.send_now(context, clock=lambda: now)
    counters = result.counters
    sent = f"{counters.sent} message{'' if counters.sent == 1 else 's'}"
    echo(f"Sent edition {result.edition_key}: {sent} to the capture server.")
    html_files = _save_html_parts(mail_dir)
    return DemoResult(
        folder=folder,
        database=database,
        config=folder / "config.yaml",
        edition_key=result.edition_key,
        papers=report.new,
        sent=counters.sent,
        messages=html_files,
        picks=_picks(context),
    )


def redated(config: DigestConfig, now: datetime) -> list[dict[str, Any]]:
    """The recorded daily papers, moved by whole days into the edition current at `now`.

    The latest listing lands within the last day before the window's end (or before
    now, when the edition's send time has not come yet); the days keep their spacing.
    """
    items: list[dict[str, Any]] = json.loads(DAILY_PAPERS.read_text(encoding="utf-8"))
    listed = [_listed(item) for item in items]
    window = weeks.current_schedule(config, now)
    end = min(window.window_end, now) - timedelta(seconds=1)
    shift = timedelta(days=(end - max(listed)).days)
    for item, when in zip(items, listed, strict=True):
        stamp = (when + shift).isoformat().replace("+00:00", "Z")
        item["publishedAt"] = item["paper"]["submittedOnDailyAt"] = stamp
    return items


def _listed(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["paper"]["submittedOnDailyAt"]).astimezone(UTC)


def _write_serve_config(path: Path, settings: Settings, demo: Settings) -> None:
    """A config for `serve` on the demo database: the demo's settings, the real SMTP."""
    raw = demo.model_dump(mode="json", exclude={"secret_key", "dkim"}, exclude_none=True)
    raw["smtp"] = settings.smtp.model_dump(mode="json", exclude={"password"}, exclude_none=True)
    head = "# Written by `newsletter demo`: serves the demo database, so its emails' links work.\n"
    path.write_text(head + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def _save_html_parts(mail_dir: Path) -> list[Path]:
    saved = []
    for eml in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("html",))
        if part is None:
            continue
        recipient = str(message["To"]).split("<")[-1].rstrip(">").replace("@", "_at_")
        target = eml.with_name(f"{eml.stem}-{recipient}.html")
        target.write_text(part.get_content(), encoding="utf-8")
        saved.append(target)
    return saved


def _picks(context: Runtime) -> dict[str, list[str]]:
    picks: dict[str, list[str]] = {address: [] for address, *_ in READERS}
    with db.transaction(context.sessions) as session:
        for address, title in plans.sent_titles(session):
            picks.setdefault(address, []).append(title)
    return picks

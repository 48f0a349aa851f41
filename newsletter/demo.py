"""The demo: the whole flow on the embedded defaults, with no network.

A fresh SQLite database in a work folder, the bundled sample papers, three readers with
different interests, an SMTP capture server on a free loopback port, and a real
`send-now` through it. Every received message is saved as .eml and its HTML part as
.html, so there is something to open.
"""

from __future__ import annotations

import email
import email.policy
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from newsletter import db, digest, ingest, sending, subscriptions
from newsletter.config import Settings
from newsletter.context import Context
from newsletter.errors import InvalidInput
from newsletter.models import Delivery, DeliveryPaper, Paper, Subscriber
from newsletter.smtpcapture import CaptureServer

SAMPLE_PAPERS = Path(__file__).parent / "data" / "sample-papers.jsonl"

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
    edition_key: str
    papers: int
    sent: int
    messages: list[Path] = field(default_factory=list)  # the .html files
    picks: dict[str, list[str]] = field(default_factory=dict)  # reader → paper titles


def run(settings: Settings, folder: Path, echo: Callable[[str], None] = print) -> DemoResult:
    """Run the demo in `folder` (emptied first, so running twice works)."""
    if folder.exists():
        shutil.rmtree(folder)
    mail_dir = folder / "mail"
    mail_dir.mkdir(parents=True)
    database = folder / "demo.db"
    with CaptureServer(folder=mail_dir) as smtp:
        demo_settings = _demo_settings(settings, database, smtp)
        context = Context(demo_settings)
        try:
            return _run(context, folder, database, mail_dir, echo)
        finally:
            context.close()


def _demo_settings(settings: Settings, database: Path, smtp: CaptureServer) -> Settings:
    if not settings.topics:
        raise InvalidInput(
            "the demo needs topics to pick from, but the config sets `topics` to an empty list "
            "(without the key the shipped topics apply)"
        )
    return settings.with_overrides(
        database={"url": f"sqlite:///{database}"},
        smtp={
            "host": smtp.host,
            "port": smtp.port,
            "security": "none",
            "username": None,
            "password": None,
            "max_rate": None,
        },
    ).model_copy(update={"dkim": None, "sources": ()})


def _run(
    context: Context, folder: Path, database: Path, mail_dir: Path, echo: Callable[[str], None]
) -> DemoResult:
    db.upgrade(context.engine)
    report = ingest.ingest(context, [str(SAMPLE_PAPERS)], "jsonl")
    echo(f"Ingested {report.new} sample papers into {database}.")
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
    now = _edition_time(context)
    result = sending.send_now(context, clock=lambda: now)
    counters = result.counters
    echo(f"Sent edition {result.edition_key}: {counters.sent} message(s) to the capture server.")
    html_files = _save_html_parts(mail_dir)
    return DemoResult(
        folder=folder,
        database=database,
        edition_key=result.edition_key,
        papers=report.new,
        sent=counters.sent,
        messages=html_files,
        picks=_picks(context),
    )


def _edition_time(context: Context) -> datetime:
    """A moment in the week whose edition covers the sample papers.

    The sample was featured on one day; its edition is the first send time after that
    day, so the demo runs as if it were just after that send time.
    """
    config = context.settings.digest
    with db.transaction(context.sessions) as session:
        listed = session.scalar(select(Paper.listed_at).order_by(Paper.listed_at.desc()).limit(1))
    assert listed is not None, "the sample data set is empty"
    schedule = digest.current_schedule(config, listed)
    if schedule.scheduled_for <= listed:
        schedule = digest.current_schedule(config, listed + timedelta(days=7))
    return schedule.scheduled_for + timedelta(minutes=1)


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


def _picks(context: Context) -> dict[str, list[str]]:
    query = (
        select(Subscriber.email, Paper.title)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .join(DeliveryPaper, DeliveryPaper.delivery_id == Delivery.id)
        .join(Paper, Paper.id == DeliveryPaper.paper_id)
        .where(Delivery.status == "sent")
        .order_by(Subscriber.email, DeliveryPaper.position)
    )
    picks: dict[str, list[str]] = {address: [] for address, *_ in READERS}
    with db.transaction(context.sessions) as session:
        for address, title in session.execute(query):
            picks.setdefault(address, []).append(title)
    return picks

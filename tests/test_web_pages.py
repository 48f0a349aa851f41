"""Read-only pages: home with trending papers, the archive, health, headers and errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.delivery import dispatch
from newsletter.mail.capture import CaptureServer
from newsletter.readers import subscriptions
from newsletter.store import db
from newsletter.store.models import Paper
from newsletter.tokens import make_token
from tests.delivery_helpers import configured
from tests.process_helpers import current_window_instant
from tests.web_support import Rig, add_edition, add_papers, rig, tampered, text_of


@pytest.fixture
def web(tmp_path: Path, smtp_server: CaptureServer) -> Iterator[Rig]:
    with rig(tmp_path, smtp_server, home_papers=3) as r:
        yield r


def test_home_lists_this_weeks_most_upvoted_papers_first(web: Rig) -> None:
    add_papers(web.context, 5)
    page = web.client.get("/").text
    assert (
        page.index("Paper number 5") < page.index("Paper number 4") < page.index("Paper number 3")
    )
    assert "Paper number 2" not in page  # only web.home_papers of them
    assert "▲ 50" in page and 'href="https://example.org/papers/5"' in page


def test_home_leaves_out_papers_older_than_the_digest_window(web: Rig) -> None:
    add_papers(web.context, 1)
    with db.transaction(web.context.sessions) as session:
        session.add(
            Paper(
                external_id="arxiv:2401.99999",
                title="An old favourite",
                upvotes=999,
                source="test",
                listed_at=datetime(2020, 1, 1, tzinfo=UTC),
            )
        )
    page = web.client.get("/").text
    assert "Paper number 1" in page and "An old favourite" not in page


def test_paper_counts_hide_zeros_and_agree_in_number(web: Rig) -> None:
    with db.transaction(web.context.sessions) as session:
        for i, (upvotes, comments) in enumerate([(0, 0), (3, 1), (7, 2)]):
            session.add(
                Paper(
                    external_id=f"arxiv:2501.0000{i}",
                    title=f"Counted paper {i}",
                    upvotes=upvotes,
                    comments=comments,
                    source="test",
                    listed_at=datetime.now(UTC),
                )
            )
    page = web.client.get("/").text
    assert "▲ 0" not in page and "0 comments" not in page
    assert "1 comment<" in page and "1 comments" not in page and "2 comments" in page


def test_home_without_papers_says_so(web: Rig) -> None:
    page = web.client.get("/")
    assert page.status_code == 200 and "No papers yet" in page.text


def test_paper_text_is_escaped(web: Rig) -> None:
    with db.transaction(web.context.sessions) as session:
        session.add(
            Paper(
                external_id="arxiv:2501.00001",
                title='<img src=x onerror="alert(1)">',
                abstract="<script>alert(2)</script>",
                source="test",
                url="javascript:alert(3)",
                listed_at=datetime.now(UTC),
            )
        )
    page = web.client.get("/").text
    assert "<img src=x" not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x" in page and "javascript:" not in page


def test_the_archive_lists_editions_and_shows_the_general_version(web: Rig) -> None:
    ids = add_papers(web.context, 3)
    add_edition(web.context, "2026-W48", [ids[1], ids[0], ids[2]])
    listing = web.client.get("/archive")
    assert listing.status_code == 200 and 'href="/archive/2026-W48"' in listing.text
    assert "3 papers" in listing.text
    page = web.client.get("/archive/2026-W48").text
    assert (
        page.index("Paper number 2") < page.index("Paper number 1") < page.index("Paper number 3")
    )


def test_the_archive_without_editions_says_so(web: Rig) -> None:
    assert "No editions yet" in web.client.get("/archive").text


@pytest.mark.parametrize("key", ["2026-W01", "nonsense", "..%2F..%2Fetc"])
def test_an_unknown_edition_is_404(web: Rig, key: str) -> None:
    page = web.client.get(f"/archive/{key}")
    assert page.status_code == 404 and "not found" in page.text.lower()


def test_unknown_pages_get_the_404_page(web: Rig) -> None:
    page = web.client.get("/no/such/page")
    assert page.status_code == 404 and "<html" in page.text


def test_healthz_reports_ok(web: Rig) -> None:
    answer = web.client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_every_page_sends_the_security_headers(web: Rig) -> None:
    for path in ("/", "/archive", "/check-your-inbox", "/nope", "/static/site.css"):
        headers = web.client.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_pages_hold_no_inline_script_or_style(web: Rig) -> None:
    add_papers(web.context, 2)
    page = web.client.get("/").text
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert '<script src="/static/timezone.js" defer></script>' in page


def test_token_pages_are_not_cached(web: Rig) -> None:
    assert web.client.get("/preferences/x").headers["cache-control"] == "no-store"


def test_the_static_files_are_served(web: Rig) -> None:
    assert "Intl.DateTimeFormat" in web.client.get("/static/timezone.js").text
    assert web.client.get("/static/site.css").status_code == 200


def test_an_invalid_path_parameter_gets_the_400_page_not_a_json_error(web: Rig) -> None:
    answer = web.client.get("/archive/" + "x" * 41)
    assert answer.status_code == 400 and "Bad request" in answer.text
    assert answer.headers["content-type"].startswith("text/html")


def test_the_app_publishes_no_api_schema(web: Rig) -> None:
    assert web.client.get("/openapi.json").status_code == 404


def sent_digest(web: Rig, address: str, topics: list[str]) -> tuple[int, str]:
    """Send this week's edition to one new reader for real; their digest's text part."""
    listed = current_window_instant(web.context)
    with db.transaction(web.context.sessions) as session:
        for i, title in enumerate(["Large language model tricks", "Image segmentation", "Memory"]):
            session.add(
                Paper(
                    external_id=f"arxiv:2501.0100{i}",
                    title=title,
                    abstract=f"We study {title.lower()}.",
                    upvotes=10 * (i + 1),
                    source="test",
                    listed_at=listed - timedelta(hours=i),
                )
            )
    sid = subscriptions.subscribe(web.context, address, topics, confirmed=True).subscriber.id
    context = configured(web.context, matching={"semantic": "off"})
    dispatch.send_now(context, email=address)
    [message] = [m for m in web.smtp.messages if m.recipients == (address,)]
    return sid, text_of(message)


def digest_link(text: str) -> str:
    match = re.search(r"View in browser: https?://[^/\s]+(/digest/\S+)", text)
    assert match, text
    return match.group(1)


def test_view_in_browser_opens_the_readers_own_digest(web: Rig) -> None:
    sid, text = sent_digest(web, "ada@example.org", ["llms"])
    path = digest_link(text)
    page = web.client.get(path)
    assert page.status_code == 200 and "Your papers" in page.text
    assert "Large language model tricks" in page.text
    assert "Image segmentation" not in page.text  # in everyone's edition, not in hers
    assert "Matched your topic: Large language models" in page.text
    assert f"/preferences/{make_token(web.context.secret_key or '', 'preferences', sid)}" in (
        page.text
    )


def test_view_in_browser_of_a_reader_who_picked_nothing_shows_the_general_digest(
    web: Rig,
) -> None:
    _, text = sent_digest(web, "ada@example.org", [])
    page = web.client.get(digest_link(text))
    assert page.status_code == 200 and "general trending digest" in page.text
    assert "Image segmentation" in page.text and "Large language model tricks" in page.text


def test_a_digest_link_works_only_for_its_reader_and_purpose(web: Rig) -> None:
    sid, text = sent_digest(web, "ada@example.org", ["llms"])
    path = digest_link(text)
    key = path.split("/")[2]
    secret = web.context.secret_key or ""
    other = subscriptions.subscribe(web.context, "bob@example.org", ["llms"], confirmed=True)
    for bad in (
        f"/digest/{key}/{make_token(secret, 'unsubscribe', sid)}",  # another purpose
        f"/digest/{key}/{make_token(secret, 'digest', other.subscriber.id)}",  # no delivery
        f"/digest/{key}/{tampered(path.rsplit('/', 1)[1])}",
        f"/digest/2001-W01/{make_token(secret, 'digest', sid)}",  # another edition
    ):
        assert web.client.get(bad).status_code == 404, bad
    assert web.client.post(path).status_code == 405  # read only

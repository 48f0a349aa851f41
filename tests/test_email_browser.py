"""The digest in a real browser engine: no horizontal overflow on a phone, every title shown.

Screenshots land in test-artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.render.samples import sample_items
from tests.email_support import HOSTILE, WEEK, composer, hostile_items, longest_items

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]  # fmt: skip
THUMBNAIL = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="630">'
    b'<rect width="1200" height="630" fill="#6366f1"/></svg>'
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def open_html(browser: Any, html: str, width: int, scheme: str = "light") -> tuple[Any, list[str]]:
    """A page showing `html`; thumbnails are served locally, any other request is recorded."""
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
    other: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if "thumbs.example.org" in url or "cdn-thumbnails" in url:
            request_route.fulfill(body=THUMBNAIL, content_type="image/svg+xml")
        else:
            other.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.set_content(html, wait_until="load")
    return page, other


def digest_html(items: tuple = ()) -> str:  # type: ignore[type-arg]
    c = composer()
    view = c.digest_view(subscriber_id=7, email="reader@example.org", items=items, **WEEK)
    return c.renderer.digest(view).html


@pytest.mark.parametrize("width", [375, 800])
def test_the_digest_fits_the_screen_and_shows_every_title(browser: Any, width: int) -> None:
    items = sample_items(10)
    page, other = open_html(browser, digest_html(items), width)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for item in items:
            title = page.get_by_text(item.paper.title, exact=True)
            assert title.count() == 1 and title.is_visible(), item.paper.title
        assert page.get_by_text("Unsubscribe", exact=True).is_visible()
        assert not other, f"the email loaded remote resources: {other}"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"digest-{width}-light.png"), full_page=True)
    finally:
        page.close()


def test_the_longest_titles_and_urls_do_not_overflow_a_phone(browser: Any) -> None:
    page, _ = open_html(browser, digest_html(longest_items(10)), 375)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        page.close()


def test_hostile_titles_render_as_visible_text_and_run_nothing(browser: Any) -> None:
    page, _ = open_html(browser, digest_html(hostile_items(3)), 375)
    try:
        assert page.evaluate("document.querySelectorAll('body script').length") == 0
        assert page.get_by_text(f"{HOSTILE} 0", exact=True).is_visible()
    finally:
        page.close()


def test_dark_mode_switches_the_background(browser: Any) -> None:
    html = digest_html(sample_items(3))
    colors = {}
    for scheme in ("light", "dark"):
        page, _ = open_html(browser, html, 375, scheme)
        try:
            colors[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"digest-375-{scheme}-top.png"))
        finally:
            page.close()
    assert colors["light"] == "rgb(243, 244, 246)"
    assert colors["dark"] == "rgb(15, 17, 21)"

"""The admin dashboard in real headless Chromium: log in, the overview with its SVG
chart at phone and desktop widths, send-now with live progress, find a reader and
preview their email."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.mail.capture import CaptureServer, _free_port
from newsletter.runtime import Runtime
from newsletter.store import db
from tests.admin_support import ADMIN, PASSWORD, add_fresh_papers, admin_settings
from tests.delivery_helpers import add_readers
from tests.smtp_faults import fault_server
from tests.test_web_browser import ARGS, ARTIFACTS, CHROMIUM, served

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"
    ),
]

# Horizontal overflow of the page itself: what sticks out past the viewport, not
# counting what scrolls inside a table scroller.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('.table-scroll')) continue;
    const box = el.getBoundingClientRect();
    if (box.right > width + 1) wide.push(el.tagName + '.' + el.className);
  }
  return {scroll: document.documentElement.scrollWidth, width, wide};
}"""


@pytest.fixture
def slow_smtp() -> Iterator[CaptureServer]:
    """A relay that takes a moment per message, so the progress can be watched."""
    with fault_server() as server:
        server.handler.delay = 0.03  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def dashboard(tmp_path: Path, slow_smtp: CaptureServer) -> Iterator[tuple[str, Runtime]]:
    settings = admin_settings(f"sqlite:///{tmp_path / 'admin.db'}", slow_smtp)
    context = Runtime(settings)
    db.upgrade(context.engine)
    add_readers(context, 20)
    add_fresh_papers(context)
    try:
        with served(context, _free_port()) as base:
            yield base, context
    finally:
        context.close()


def _no_page_overflow(page: Any, width: int) -> None:
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= width, found
    assert found["wide"] == [], found


def test_an_admin_logs_in_sends_now_finds_a_reader_and_previews_their_email(
    dashboard: tuple[str, Runtime], slow_smtp: CaptureServer
) -> None:
    from playwright.sync_api import sync_playwright

    base, _ = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(base + "/admin")
            page.wait_for_url("**/admin/login")
            page.fill("#email", ADMIN)
            page.fill("#password", PASSWORD)
            page.click("button:has-text('Log in')")
            page.wait_for_url("**/admin")
            assert page.locator("h1", has_text="Overview").is_visible()
            chart = page.locator(".chart svg")
            assert chart.is_visible() and chart.locator("circle").count() == 12
            assert chart.bounding_box()["width"] > 500  # type: ignore[index]
            _no_page_overflow(page, 1280)
            page.screenshot(path=str(ARTIFACTS / "admin-1280.png"), full_page=True)

            # A reader's next email, on a phone, before this week's edition goes out.
            page.set_viewport_size({"width": 375, "height": 812})
            page.click("nav.admin-nav >> text=Readers")
            page.fill("#q", "reader00007")
            page.click("button:has-text('Search')")
            page.click("text=reader00007@example.org")
            page.wait_for_selector("h1:has-text('reader00007@example.org')")
            _no_page_overflow(page, 375)
            page.click("text=Preview their email")
            page.wait_for_selector("h1:has-text('Next email to')")
            frame = page.frame_locator("iframe.email-frame")
            frame.locator("a", has_text="Paper").first.wait_for(timeout=30_000)  # a title link
            assert page.locator(".preview-subject").inner_text()
            _no_page_overflow(page, 375)
            page.screenshot(path=str(ARTIFACTS / "admin-preview-375.png"), full_page=True)
            frame = page.locator("iframe.email-frame")
            frame.screenshot(path=str(ARTIFACTS / "admin-email-375.png"))
            page.set_viewport_size({"width": 1280, "height": 900})
            page.click("nav.admin-nav >> text=Overview")
            page.click("a.button:has-text('Send now')")
            page.wait_for_url("**/admin/send")
            page.click("#start")
            page.wait_for_url("**/admin/send")
            # The page was drawn as the run began; the script moves it on to the end.
            assert page.locator("#run-state").inner_text() in ("planning", "sending")
            page.wait_for_selector("#run[data-state=done]", timeout=60_000)
            assert page.locator("#run-sent").inner_text() == "20"
            assert page.locator("#run-total").inner_text() == "20"
            assert page.locator("#run-failed").inner_text() == "0"
            assert len(slow_smtp.messages) == 20

            page.set_viewport_size({"width": 375, "height": 812})
            page.goto(base + "/admin")
            assert page.locator(".chart svg").bounding_box()["width"] <= 375  # type: ignore[index]
            assert page.locator(".editions-table").is_visible()
            _no_page_overflow(page, 375)
            scroller = page.locator(".editions-table").locator("xpath=..")
            assert scroller.evaluate("e => e.scrollWidth > e.clientWidth")  # scrolls inside
            page.screenshot(path=str(ARTIFACTS / "admin-375.png"), full_page=True)

            assert errors == [], errors  # no CSP violations or script errors
        finally:
            browser.close()

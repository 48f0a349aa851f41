"""In real headless Chromium: a reader subscribes with an arXiv id, gets a digest of
papers like it, clicks "More like this", sees it on the preferences page, and undoes it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.delivery import dispatch
from newsletter.mail.capture import CaptureServer
from newsletter.readers import examples, subscriptions
from newsletter.runtime import Runtime
from tests.http_server import Answer, ScriptedServer, scripted_server
from tests.test_examples import EXAMPLE_QUERY, FIXTURES, sample_papers_this_week
from tests.test_web_browser import ARGS, ARTIFACTS, CHROMIUM, served_site, wait_for_mail
from tests.web_support import link, text_of

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"
    ),
]


@pytest.fixture
def arxiv() -> Iterator[ScriptedServer]:
    with scripted_server() as server:
        server.route(EXAMPLE_QUERY, Answer(body=(FIXTURES / "arxiv-example.xml").read_bytes()))
        yield server


@pytest.fixture
def site(
    tmp_path: Path, smtp_server: CaptureServer, arxiv: ScriptedServer
) -> Iterator[tuple[str, Runtime]]:
    with served_site(
        tmp_path,
        smtp_server,
        matching={"semantic": "off"},
        examples={"arxiv_api": f"{arxiv.base_url}/api/query"},
    ) as served:
        yield served


def test_a_reader_teaches_the_digest_from_the_subscribe_form_and_the_email(
    site: tuple[str, Runtime], smtp_server: CaptureServer
) -> None:
    from playwright.sync_api import sync_playwright

    base, context = site
    sample_papers_this_week(context)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 375, "height": 812}).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(base + "/")
            page.fill("#email", "reader@example.org")
            page.fill("#papers", "https://arxiv.org/abs/2311.04601")
            page.click("button[type=submit]")
            page.wait_for_url("**/check-your-inbox")
            page.goto(base + link(wait_for_mail(smtp_server, 1), "confirm"))
            page.click("text=Yes, subscribe me")
            page.wait_for_selector("text=You're subscribed!")
            wait_for_mail(smtp_server, 2)  # the welcome

            dispatch.send_now(context, email="reader@example.org")
            digest = text_of(wait_for_mail(smtp_server, 3))
            assert "Like: Learning Rotation-Invariant Features for Point Cloud Registration" in (
                digest
            )
            more = re.search(r"More like this: (\S+)", digest)
            assert more, digest

            [reader] = subscriptions.list_all(context)
            before = [(p.title, p.feeling) for p in examples.felt_papers(context, reader.id)]
            page.goto(more.group(1))
            page.wait_for_selector("text=More papers like this one?")
            assert [
                (p.title, p.feeling) for p in examples.felt_papers(context, reader.id)
            ] == before  # opening the link (as a mail scanner would) changed nothing
            title = page.locator(".paper-title").inner_text()
            page.click("button:has-text('More like this')")
            page.wait_for_selector("text=Saved")
            page.click("text=your preferences page")
            page.wait_for_selector("#papers")
            page.screenshot(path=str(ARTIFACTS / "preferences-examples-375.png"), full_page=True)
            item = page.locator("ul.felt li", has_text=title)
            assert item.count() == 1 and "Example" in item.inner_text()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the phone layout scrolls sideways ({width}px)"

            item.locator("button:has-text('Undo')").click()
            page.wait_for_selector("#papers")
            assert page.locator("ul.felt li", has_text=title).count() == 0
            assert title not in [p.title for p in examples.felt_papers(context, reader.id)]
            assert errors == [], errors
        finally:
            browser.close()

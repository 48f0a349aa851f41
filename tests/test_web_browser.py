"""End to end in real headless Chromium: subscribe, confirm, preferences, unsubscribe."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from newsletter.delivery.compose import Composer
from newsletter.mail.capture import CaptureServer, Received, _free_port
from newsletter.readers import subscriptions
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.web import create_app
from tests.conftest import ROOT, make_settings
from tests.web_support import add_papers, link

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"
    ),
]


@contextmanager
def served_site(
    tmp_path: Path, smtp_server: CaptureServer, **sections: Any
) -> Iterator[tuple[str, Runtime]]:
    """The app served by uvicorn in a thread on a free loopback port; `sections` add to
    the settings."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        f"sqlite:///{tmp_path / 'browser.db'}",
        smtp={"host": smtp_server.host, "port": smtp_server.port},
        site={"base_url": base},
        **sections,
    )
    context = Runtime(settings)
    db.upgrade(context.engine)
    try:
        with served(context, port):
            yield base, context
    finally:
        context.close()


@contextmanager
def served(context: Runtime, port: int) -> Iterator[str]:
    """`context`'s app served by uvicorn in a thread on loopback `port`; its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(context), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def site(tmp_path: Path, smtp_server: CaptureServer) -> Iterator[tuple[str, Runtime]]:
    with served_site(tmp_path, smtp_server) as served:
        yield served


def wait_for_mail(smtp: CaptureServer, count: int) -> Received:
    """Mail goes out after the response (a background task): wait for it to land."""
    done = threading.Event()
    for _ in range(500):
        if len(smtp.messages) >= count:
            return smtp.messages[count - 1]
        done.wait(0.02)
    raise AssertionError(f"expected {count} messages, got {len(smtp.messages)}")


def unsubscribe_link_of_a_digest(context: Runtime, subscriber_id: int, address: str) -> str:
    composer = Composer(context.settings, context.secret_key)
    message = composer.digest(
        subscriber_id=subscriber_id,
        email=address,
        edition_key="2026-W48",
        week_start=date(2026, 11, 23),
        week_end=date(2026, 11, 29),
        items=(),
    )
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    match = re.search(r"<(https?://[^>]+/unsubscribe/[^>]+)>", str(parsed["List-Unsubscribe"]))
    assert match, parsed["List-Unsubscribe"]
    return match.group(1)


def test_a_reader_subscribes_confirms_edits_and_unsubscribes_in_a_browser(
    site: tuple[str, Runtime], smtp_server: CaptureServer
) -> None:
    from playwright.sync_api import sync_playwright

    base, context = site
    add_papers(context, 6)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(
                timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900}
            ).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(base + "/")
            assert page.get_by_text("Get trending papers in your email inbox!").is_visible()
            assert page.locator("#timezone").input_value() == "Asia/Tokyo"  # from the browser
            page.screenshot(path=str(ARTIFACTS / "home-1280.png"), full_page=True)
            page.set_viewport_size({"width": 375, "height": 812})
            page.screenshot(path=str(ARTIFACTS / "home-375.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the phone layout scrolls sideways ({width}px)"

            page.fill("#email", "reader@example.org")
            page.check("input[name=topic][value=llms]")
            page.fill("#interests", "sparse attention")
            page.click("button[type=submit]")
            page.wait_for_url("**/check-your-inbox")
            assert "Check your inbox" in page.content()

            confirmation = wait_for_mail(smtp_server, 1)
            page.goto(base + link(confirmation, "confirm"))
            page.click("text=Yes, subscribe me")
            page.wait_for_selector("text=You're subscribed!")
            wait_for_mail(smtp_server, 2)  # the welcome
            [reader] = subscriptions.list_all(context)
            assert (reader.status, reader.timezone) == ("active", "Asia/Tokyo")

            page.click("text=Choose topics and time zone")
            page.check("input[name=topic][value=vision]")
            page.check("input[name=paused]")
            page.click("text=Save preferences")
            page.wait_for_selector("text=Saved.")
            reader = subscriptions.get_preferences(context, reader.id)
            assert reader.topics == ("llms", "vision") and reader.paused

            page.goto(unsubscribe_link_of_a_digest(context, reader.id, reader.email))
            page.click("button:has-text('Unsubscribe')")
            page.wait_for_selector("text=You're unsubscribed")
            assert subscriptions.get_preferences(context, reader.id).status == "unsubscribed"
            wait_for_mail(smtp_server, 3)  # the goodbye
            assert errors == [], errors  # no CSP violations or script errors
        finally:
            browser.close()


def test_the_web_pages_follow_a_dark_color_scheme_like_the_emails(
    site: tuple[str, Runtime],
) -> None:
    from playwright.sync_api import sync_playwright

    base, context = site
    add_papers(context, 2)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            colors = {}
            for scheme in ("light", "dark"):
                page = browser.new_context(color_scheme=scheme).new_page()
                page.goto(base + "/")
                colors[scheme] = page.evaluate(
                    "[getComputedStyle(document.documentElement).backgroundColor,"
                    " getComputedStyle(document.querySelector('.card')).backgroundColor,"
                    " getComputedStyle(document.querySelector('.paper-title a')).color]"
                )
            assert colors["light"][:2] == ["rgb(249, 250, 251)", "rgb(255, 255, 255)"]
            assert colors["dark"] == ["rgb(15, 17, 21)", "rgb(24, 27, 34)", "rgb(243, 244, 246)"]
        finally:
            browser.close()

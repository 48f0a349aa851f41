"""The admin dashboard over HTTP, through the real app: login, sessions, the overview
(the same numbers as `newsletter status`), pausing, readers' export and erasure,
send-now from the page, previews; and `newsletter admin-password`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
import yaml
from argon2 import PasswordHasher
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from newsletter.mail.capture import CaptureServer
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import returns as returns_store
from newsletter.store.models import (
    Edition,
    Subscriber,
)
from newsletter.store.statuses import MailEventKind, MailEventSource
from newsletter.store.subscribers import add_subscriber
from newsletter.web import admin, create_app
from newsletter.web.admin import login
from newsletter.web.admin.auth import Admins
from tests.admin_support import (
    ADMIN,
    PASSWORD,
    add_fresh_papers,
    admin_settings,
    csrf_of,
    log_in,
    sent_edition,
    signed_in,
    stats_of,
)
from tests.conftest import ROOT, CliResult, make_settings
from tests.delivery_helpers import add_readers
from tests.smtp_faults import fault_server


@pytest.fixture
def site(admin_site: Callable[..., tuple[Runtime, TestClient]]) -> tuple[Runtime, TestClient]:
    return admin_site()


# --- login and sessions -----------------------------------------------------------------


def test_an_admin_logs_in_with_the_configured_password_and_gets_a_strict_session_cookie(
    site: tuple[Runtime, TestClient],
) -> None:
    _, client = site
    response = log_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("admin_session=")
    for flag in ("HttpOnly", "SameSite=strict", "Path=/admin", "Max-Age=43200"):
        assert flag in cookie
    assert "Secure" not in cookie  # the test site is plain http
    page = client.get("/admin")
    assert page.status_code == 200 and "Overview" in page.text and ADMIN in page.text


def test_the_session_cookie_is_secure_on_an_https_site(
    sqlite_url: str, smtp_server: CaptureServer
) -> None:
    settings = admin_settings(sqlite_url, smtp_server)
    settings = settings.with_overrides(site={"base_url": "https://news.example.org"})
    context = Runtime(settings)
    db.upgrade(context.engine)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        assert "Secure" in log_in(client).headers["set-cookie"]
    context.close()


def test_a_wrong_password_and_an_unknown_address_get_the_same_refusal(
    site: tuple[Runtime, TestClient],
) -> None:
    _, client = site
    wrong = log_in(client, password="not the password at all")
    unknown = log_in(client, email="nobody@example.org")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong email or password." in response.text
        assert "admin_session" not in response.headers.get("set-cookie", "")
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_an_unknown_address_costs_a_password_check_like_a_known_one(
    sqlite_url: str, smtp_server: CaptureServer
) -> None:
    """No timing tells whether an address is an admin's: an unknown one is checked
    against a dummy hash of the same cost (a dict lookup alone takes microseconds)."""
    admins = Admins(admin_settings(sqlite_url, smtp_server).admins)
    admins.check("warm@example.org", "x")  # the dummy hash is made at the first login

    def median_seconds(email: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            assert admins.check(email, "not the password at all") is None
            times.append(time.perf_counter() - start)
        return sorted(times)[2]

    known, unknown = median_seconds(ADMIN), median_seconds("nobody@example.org")
    assert unknown > known / 3 and known > unknown / 3, (known, unknown)
    assert admins.check(ADMIN.upper(), PASSWORD) is not None  # addresses ignore case


def test_logins_are_limited_per_client_even_with_the_right_password(
    admin_site: Callable[..., tuple[Runtime, TestClient]],
) -> None:
    _, client = admin_site(admin_login_attempts_per_hour=3)
    for _ in range(3):
        assert log_in(client, password="guess guess guess").status_code == 401
    refused = log_in(client)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "admin_session" not in refused.headers.get("set-cookie", "")


def test_a_login_without_a_valid_csrf_token_is_refused(
    site: tuple[Runtime, TestClient],
) -> None:
    _, client = site
    client.get("/admin/login")  # sets the CSRF cookie
    data = {"csrf_token": "forged.token.value", "email": ADMIN, "password": PASSWORD}
    response = client.post("/admin/login", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert "admin_session" not in response.headers.get("set-cookie", "")


def test_a_session_ends_after_admin_session_hours(
    admin_site: Callable[..., tuple[Runtime, TestClient]],
) -> None:
    _, client = admin_site(admin_session_hours=2)
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=True):
        assert log_in(client).status_code == 303
    with time_machine.travel(start + timedelta(hours=1, minutes=50), tick=True):
        assert client.get("/admin", follow_redirects=False).status_code == 200
    with time_machine.travel(start + timedelta(hours=2, minutes=5), tick=True):
        late = client.get("/admin", follow_redirects=False)
    assert late.status_code == 303 and late.headers["location"] == "/admin/login"


def test_a_session_ends_when_the_admins_password_hash_changes(
    sqlite_url: str, smtp_server: CaptureServer
) -> None:
    context = Runtime(admin_settings(sqlite_url, smtp_server))
    db.upgrade(context.engine)
    with TestClient(create_app(context)) as client:
        log_in(client)
        cookie = client.cookies["admin_session"]
    rehashed = make_settings(
        sqlite_url,
        admins=[{"email": ADMIN, "password_hash": PasswordHasher().hash("another password!")}],
    )
    other = Runtime(rehashed)
    with TestClient(create_app(other)) as client:
        client.cookies.set("admin_session", cookie, path="/admin")
        assert client.get("/admin", follow_redirects=False).status_code == 303
    other.close()
    context.close()


def test_logging_out_ends_the_session_even_for_a_copy_of_its_cookie(
    site: tuple[Runtime, TestClient],
) -> None:
    _, client = signed_in(site)
    assert client.get("/admin/login", follow_redirects=False).headers["location"] == "/admin"
    cookie = client.cookies["admin_session"]
    token = csrf_of(client.get("/admin"))
    response = client.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert client.get("/admin", follow_redirects=False).status_code == 303
    client.cookies.set("admin_session", cookie, path="/admin")  # kept by someone
    assert client.get("/admin", follow_redirects=False).status_code == 303


def _admin_routes() -> list[tuple[str, str]]:
    """Every route of the protected admin routers, with its path parameters filled in."""
    found = []
    for router in admin.PROTECTED:
        for route in router.routes:
            assert isinstance(route, APIRoute) and route.path.startswith("/admin")
            path = route.path.replace("{reader_id}", "1").replace("{key}", "2026-W49")
            found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def test_without_a_session_every_admin_route_redirects_to_the_login_page(
    site: tuple[Runtime, TestClient],
) -> None:
    context, client = site
    add_readers(context, 1)
    # The only open admin routes are the login page and logout; the rest is PROTECTED.
    open_routes = [r for r in login.router.routes if isinstance(r, APIRoute)]
    assert {r.path for r in open_routes} == {"/admin/login", "/admin/logout"}
    assert [r for r in admin.ROUTERS if r not in admin.PROTECTED] == [login.router]
    routes = _admin_routes()
    assert {path for _, path in routes} >= {
        "/admin",
        "/admin/readers",
        "/admin/readers/1",
        "/admin/readers/1/export.json",
        "/admin/readers/1/delete",
        "/admin/readers/1/preview",
        "/admin/readers/1/preview/email",
        "/admin/send",
        "/admin/send/progress",
        "/admin/editions/2026-W49/pause",
        "/admin/editions/2026-W49/resume",
    }
    token = csrf_of(client.get("/admin/login"))
    for cookie in (None, "forged.session.cookie"):
        if cookie:
            client.cookies.set("admin_session", cookie, path="/admin")
        for method, path in routes:
            data = {"csrf_token": token, "confirm": "yes"} if method == "POST" else None
            response = client.request(method, path, data=data, follow_redirects=False)
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"] == "/admin/login"
    with db.transaction(context.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1


# --- the overview and `newsletter status` -----------------------------------------------


def test_status_and_the_dashboard_show_the_same_numbers(
    site: tuple[Runtime, TestClient],
    sqlite_url: str,
    smtp_server: CaptureServer,
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
) -> None:
    context, client = signed_in(site)
    emails = sent_edition(context, readers=5)
    with db.transaction(context.sessions) as session:
        for email in ("eyes@example.org", "lens@example.org"):
            add_subscriber(session, email, status="active", topics=["vision"])
        session.execute(update(Subscriber).where(Subscriber.id > 5).values(paused=True))
    now = datetime.now(UTC)
    with db.transaction(context.sessions) as session:
        for kind, email in (
            (MailEventKind.HARD_BOUNCE, emails[0]),
            (MailEventKind.COMPLAINT, emails[1]),
        ):
            target = returns_store.target_of_email(session, email)
            returns_store.add_event(session, kind, MailEventSource.SMTP, target, "test", now)
    config = tmp_path / "status.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": sqlite_url},
                "secret_key": "test-secret-key-0123456789",
                "topics": [t.model_dump(exclude_defaults=True) for t in context.settings.topics],
            }
        ),
        encoding="utf-8",
    )
    result = run_cli("--config", str(config), "status", "--json")
    assert result.exit_code == 0, result.stderr
    cli = json.loads(result.stdout)
    shown = stats_of(client.get("/admin"))

    assert cli["readers"]["by_status"] == {
        "pending": 0,
        "active": 7,
        "unsubscribed": 0,
        "bounced": 0,
    }
    for status, count in cli["readers"]["by_status"].items():
        assert shown[f"readers.{status}"] == str(count)
    assert shown["readers.paused"] == str(cli["readers"]["paused"]) == "2"
    for slug, count in cli["readers"]["by_topic"].items():
        assert shown[f"topic.{slug}"] == str(count)
    assert cli["readers"]["by_topic"] == {"llms": 5, "vision": 2, "memory": 0}
    back = cli["returns"]
    assert (back["sent"], back["hard_bounces"], back["complaints"]) == (5, 1, 1)
    assert shown["returns.sent"] == "5"
    assert shown["returns.bounce_rate"] == f"{back['bounce_rate']:.2%}" == "20.00%"
    assert shown["returns.complaint_rate"] == f"{back['complaint_rate']:.2%}" == "20.00%"
    current = cli["current"]
    for field in ("planned", "sent", "failed", "skipped"):
        assert shown[f"edition.{current['key']}.{field}"] == str(current[field])
    assert current["hard_bounces"] == 1 and current["complaints"] == 1
    assert shown["next_edition"] == cli["next_edition"]
    assert cli["readers"]["growth"][-1]["readers"] == 7
    assert shown["growth.last"] == "7"

    text = run_cli("--config", str(config), "status")
    assert "Readers: 0 pending, 7 active, 0 unsubscribed, 0 bounced (2 paused)." in text.stdout
    assert "5 sent, 1 hard bounces (20.00%), 1 complaints (20.00%)" in text.stdout


def test_the_overview_draws_the_readers_growth_as_an_inline_svg(
    site: tuple[Runtime, TestClient],
) -> None:
    context, client = signed_in(site)
    add_readers(context, 3)
    page = client.get("/admin")
    svg = re.search(r"<svg[^>]*>.*?</svg>", page.text, re.S)
    assert svg is not None
    assert svg.group(0).count("<circle") == 12  # one point per week
    assert "from 0 to 3" in svg.group(0)  # the readers joined this week
    assert "<script" not in page.text.split("</header>")[1]
    assert "connect-src 'self'" in page.headers["content-security-policy"]


# --- editions ---------------------------------------------------------------------------


def _edition_status(context: Runtime) -> tuple[str, str | None]:
    with db.transaction(context.sessions) as session:
        row = session.execute(select(Edition.status, Edition.paused_reason)).one()
    return row.status, row.paused_reason


def test_an_admin_pauses_and_resumes_an_edition(site: tuple[Runtime, TestClient]) -> None:
    context, client = signed_in(site)
    add_readers(context, 2)
    add_fresh_papers(context)
    from newsletter.planning import planner

    key = planner.plan_edition(context, datetime.now(UTC)).edition.key
    token = csrf_of(client.get("/admin"))
    assert "Pause</button>" in client.get("/admin").text

    forged = client.post(f"/admin/editions/{key}/pause", data={"csrf_token": "x.y.z"})
    assert forged.status_code == 403 and _edition_status(context)[0] == "sending"
    assert client.get(f"/admin/editions/{key}/pause").status_code == 405

    paused = client.post(
        f"/admin/editions/{key}/pause", data={"csrf_token": token}, follow_redirects=False
    )
    assert paused.status_code == 303
    assert _edition_status(context) == ("paused", f"paused from the dashboard by {ADMIN}")
    assert f"Edition {key} paused." in client.get(paused.headers["location"]).text
    again = client.post(f"/admin/editions/{key}/pause", data={"csrf_token": token})
    assert again.status_code == 409

    resumed = client.post(
        f"/admin/editions/{key}/resume", data={"csrf_token": token}, follow_redirects=False
    )
    assert resumed.status_code == 303 and _edition_status(context) == ("sending", None)
    missing = client.post("/admin/editions/1999-W01/resume", data={"csrf_token": token})
    assert missing.status_code == 404


# --- send-now ---------------------------------------------------------------------------


def test_send_now_runs_in_the_background_one_run_at_a_time_and_reports_progress(
    sqlite_url: str,
) -> None:
    with fault_server() as slow:
        slow.handler.delay = 0.05  # type: ignore[attr-defined]
        context = Runtime(admin_settings(sqlite_url, slow))
        db.upgrade(context.engine)
        add_readers(context, 8)
        add_fresh_papers(context)
        with TestClient(create_app(context)) as client:
            log_in(client)
            token = csrf_of(client.get("/admin/send"))
            started = client.post("/admin/send", data={"csrf_token": token}, follow_redirects=False)
            assert started.status_code == 303 and started.headers["location"] == "/admin/send"
            second = client.post("/admin/send", data={"csrf_token": token})
            assert second.status_code == 409
            seen = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                run = client.get("/admin/send/progress").json()
                seen.append(run["state"])
                if not run["running"]:
                    break
                time.sleep(0.05)
            assert run["state"] == "done", run
            assert (run["total"], run["sent"], run["failed"]) == (8, 8, 0)
            assert "sending" in seen and run["started_by"] == ADMIN
            assert len(slow.messages) == 8
            again = client.post("/admin/send", data={"csrf_token": token}, follow_redirects=False)
            assert again.status_code == 303  # a finished run leaves room for the next
            client.app.state.admin.send_run.join(30)  # type: ignore[attr-defined]
            assert len(slow.messages) == 8  # and it mails nobody twice
        context.close()


# --- newsletter admin-password ------------------------------------------------------------


def _admin_password(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "admin-password"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_admin_password_prints_an_argon2_hash_of_the_password_on_stdin() -> None:
    result = _admin_password(PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert printed.startswith("$argon2id$") and "\n" not in printed
    assert PasswordHasher().verify(printed, PASSWORD)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("", "no password given"), ("\n", "no password given"), ("short\n", "too short")],
)
def test_admin_password_refuses_an_empty_or_short_password_in_one_line(
    stdin: str, message: str
) -> None:
    result = _admin_password(stdin)
    assert result.returncode != 0 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1

"""What every admin page shares: the admin's state on the app, the session check that
guards every /admin route, and rendering with the CSRF token and the admin CSP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.runtime import Runtime
from newsletter.web.admin.auth import SESSION_COOKIE, Admin, Admins, Sessions
from newsletter.web.admin.previews import PreviewCache
from newsletter.web.admin.sendrun import SendRun
from newsletter.web.forms import Field, Form, FormRules
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.routes import WebState, checked_form, form_page, rules_problem
from newsletter.web.security import CSP

LOGIN_PATH = "/admin/login"
# The site's policy plus what the dashboard needs: the send page polls its progress
# (fetch) and the preview page frames the email, both same-origin only.
ADMIN_CSP = CSP + "; connect-src 'self'; frame-src 'self'"

_csrf = Field("csrf_token", 200, pattern=r"[A-Za-z0-9_.\-]*")
BUTTON = FormRules((_csrf,), required=("csrf_token",))
LOGIN = FormRules(
    (_csrf, Field("email", 320), Field("password", 1024)),
    required=("csrf_token", "email", "password"),
)
DELETE = FormRules(
    (_csrf, Field("confirm", 3, choices=("yes",))), required=("csrf_token", "confirm")
)


@dataclass
class AdminState:
    admins: Admins
    sessions: Sessions
    login_limiter: RateLimiter
    send_run: SendRun
    previews: PreviewCache


def new_state(context: Runtime) -> AdminState:
    web = context.settings.web
    admins = Admins(context.settings.admins)
    attempts = web.admin_login_attempts_per_hour
    return AdminState(
        admins=admins,
        sessions=Sessions(context.secret_key, admins, web.admin_session_hours),
        login_limiter=RateLimiter(attempts, attempts),
        send_run=SendRun(context),
        previews=PreviewCache(),
    )


def admin_state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


AdminWeb = Annotated[AdminState, Depends(admin_state)]


class NotSignedIn(Exception):
    """Raised by `signed_in`; the app answers it with a redirect to the login page."""


def signed_in(request: Request) -> Admin:
    """The dependency of every protected route: the admin of a valid session."""
    admin = admin_state(request).sessions.admin_of(request.cookies.get(SESSION_COOKIE))
    if admin is None:
        raise NotSignedIn
    return admin


SignedIn = Annotated[Admin, Depends(signed_in)]


async def to_login(request: Request, exc: Exception) -> Response:
    # 303 so that a POST whose session expired becomes a GET of the login page.
    return RedirectResponse(LOGIN_PATH, status_code=303)


def page(
    request: Request, web: WebState, name: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """An admin page: every one may hold a form, so every one carries the CSRF token."""
    response = form_page(request, web, name, status_code, **values)
    response.headers["content-security-policy"] = ADMIN_CSP
    return response


async def posted(request: Request, web: WebState, rules: FormRules) -> Form | HTMLResponse:
    """The posted form when it carries a valid CSRF token and follows `rules`."""
    form = await checked_form(request, web, rules)
    if isinstance(form, HTMLResponse):
        return form
    return rules_problem(web, rules, form) or form

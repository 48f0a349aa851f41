"""What every page shares: the app's state, form pages with their CSRF token, the error
pages, reading posted forms and the signed links. The pages themselves are in
subscribe.py, preferences.py and archive.py; app.py includes their routers.

Pages are thin: parse the form, check CSRF and the token, call one service, render.
State changes happen only on POST. Every answer about an address is the same whether
or not that address is known, so the site never reveals who subscribes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from newsletter.errors import ExpiredToken, InvalidToken, NewsletterError, NotFound
from newsletter.readers import archive, subscriptions
from newsletter.readers.examples import Found, find_papers
from newsletter.readers.subscriptions import SubscriberInfo
from newsletter.runtime import Runtime
from newsletter.sources.refs import parse_refs
from newsletter.tokens import read_token
from newsletter.web.forms import (
    PAPERS_MAX,
    BadForm,
    Form,
    FormRules,
    UnsupportedMediaType,
    WebForms,
    read_form,
)
from newsletter.web.pages import Pages
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.security import CSRF_COOKIE, CSRF_FIELD, Csrf

log = logging.getLogger("newsletter.web")
_COOKIE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
# A signed link token: checked here, not by FastAPI, so a cut-off or mangled link gets
# the same friendly 404 page as a tampered one, not a bare validation error.
# itsdangerous marks a compressed payload with a leading "." (long ones: a digest's
# feedback token, ids of ten digits).
_TOKEN_SHAPE = re.compile(r"^\.?[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+$")
_TOKEN_MAX = 400


class PendingPurge:
    """Deletes expired pending subscriptions at most once per `interval` seconds.

    A delete on every subscribe would double the writers a burst brings to SQLite, and
    an error escaping a background task resets the reader's connection: log it instead.
    """

    def __init__(self, context: Runtime, interval: float = 3600.0) -> None:
        self.context = context
        self.interval = interval
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.interval:
                return
            self._last = now
        try:
            subscriptions.purge_pending(self.context)
        except Exception:
            log.exception("could not purge expired pending subscriptions")


@dataclass
class WebState:
    context: Runtime
    pages: Pages
    csrf: Csrf
    limiter: RateLimiter
    secure_cookies: bool
    forms: WebForms
    purge: PendingPurge
    trending: archive.TrendingCache


def web(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


Web = Annotated[WebState, Depends(web)]


@lru_cache(maxsize=1)
def timezones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


# --- helpers -----------------------------------------------------------------------


def form_page(
    request: Request, state: WebState, name: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """A page holding a form: reuse or set the CSRF cookie and sign it into the form."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    fresh = not _COOKIE_SHAPE.match(cookie)
    if fresh:
        cookie = state.csrf.new_cookie()
    response = state.pages.render(
        name,
        status_code,
        csrf_field=CSRF_FIELD,
        csrf_token=state.csrf.field_for(cookie),
        timezones=timezones(),
        interests_max=state.forms.interests_max,
        papers_max=PAPERS_MAX,
        **values,
    )
    if fresh:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="lax",
            secure=state.secure_cookies,
            path="/",
        )
    return response


def error_page(state: WebState, status_code: int, title: str, message: str) -> HTMLResponse:
    return state.pages.render("error.html", status_code, title=title, message=message)


def link_problem(state: WebState, expired: bool) -> HTMLResponse:
    """One answer for every link that leads nowhere: 404, whatever the address behind it."""
    return state.pages.render("token_invalid.html", 404, expired=expired, unsubscribed=False)


def left_already(state: WebState) -> HTMLResponse:
    """A confirm link of a reader who has since unsubscribed: say so, not "expired".

    Only the owner of the signed link sees it, so it reveals nothing to anyone else.
    """
    return state.pages.render("token_invalid.html", 200, expired=False, unsubscribed=True)


async def parsed_form(
    request: Request, state: WebState, rules: FormRules, allow_multipart: bool = False
) -> Form | HTMLResponse:
    try:
        return await read_form(request, rules, allow_multipart=allow_multipart)
    except UnsupportedMediaType as exc:
        return error_page(state, 415, "Unsupported form", sentence(str(exc)))
    except BadForm as exc:
        return error_page(state, 400, "Bad request", sentence(str(exc)))


def rules_problem(state: WebState, rules: FormRules, form: Form) -> HTMLResponse | None:
    problem = rules.problem(form)
    return error_page(state, 400, "Bad request", sentence(problem)) if problem else None


async def checked_form(request: Request, state: WebState, rules: FormRules) -> Form | HTMLResponse:
    """The posted form when it is readable and carries a valid CSRF token.

    Its field rules are checked by the caller, which can show the form again with the reason.
    """
    form = await parsed_form(request, state, rules)
    if isinstance(form, HTMLResponse):
        return form
    if not state.csrf.valid(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        return forbidden(state)
    return form


def forbidden(state: WebState) -> HTMLResponse:
    return error_page(
        state,
        403,
        "Please try again",
        "This form has expired or your browser did not send its cookie. "
        "Reload the page and submit it again.",
    )


def subscriber_id(state: WebState, purpose: str, token: str) -> int | HTMLResponse:
    max_age = None
    if purpose == "confirm":  # a confirmation is only good while the request is pending
        max_age = state.context.settings.web.pending_expiry_days * 86400
    if not token_shape_ok(token):
        return link_problem(state, expired=False)
    try:
        return read_token(state.context.secret_key, purpose, token, max_age=max_age)
    except ExpiredToken:
        return link_problem(state, expired=True)
    except InvalidToken:
        return link_problem(state, expired=False)


def token_shape_ok(token: str) -> bool:
    return len(token) <= _TOKEN_MAX and _TOKEN_SHAPE.match(token) is not None


def reader_for(state: WebState, purpose: str, token: str) -> SubscriberInfo | HTMLResponse:
    """The reader a link names, or the friendly "link not valid" page."""
    sid = subscriber_id(state, purpose, token)
    if isinstance(sid, HTMLResponse):
        return sid
    try:
        return subscriptions.get_preferences(state.context, sid)
    except NotFound:
        return link_problem(state, expired=True)


def send_later(
    background: BackgroundTasks,
    send: Callable[[Runtime, SubscriberInfo], object],
    state: WebState,
    info: SubscriberInfo,
) -> None:
    """Mail after the answer is sent, so timing says nothing about the address either."""

    def run() -> None:
        try:
            send(state.context, info)
        except NewsletterError as exc:
            log.warning("could not send %s to subscriber %s: %s", send.__name__, info.id, exc)
        except Exception:
            log.exception("could not send %s to subscriber %s", send.__name__, info.id)

    background.add_task(run)


async def found_papers(state: WebState, typed: str) -> Found | None:
    """Example papers typed one per line, looked up (on arXiv when not stored) on a
    worker thread; None when none were typed."""
    refs = parse_refs(interest_lines(typed))
    if not refs:
        return None
    return await run_in_threadpool(find_papers, state.context, refs)


def interest_lines(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n;]+", text) if line.strip()]


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def over_limit(
    state: WebState, limiter: RateLimiter, request: Request, message: str
) -> HTMLResponse | None:
    """429 with Retry-After when this client has used up `limiter`, else None; every
    call spends a token."""
    key = client_key(request)
    if limiter.allow(key):
        return None
    response = error_page(state, 429, "Too many requests", message)
    response.headers["Retry-After"] = str(limiter.retry_after(key))
    return response

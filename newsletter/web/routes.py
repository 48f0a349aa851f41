"""The pages. Thin: parse the form, check CSRF and the token, call one service, render.

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

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.delivery import notices
from newsletter.errors import ExpiredToken, InvalidInput, InvalidToken, NewsletterError, NotFound
from newsletter.readers import archive, subscriptions
from newsletter.readers.subscriptions import SubscriberInfo
from newsletter.runtime import Context
from newsletter.tokens import make_token, read_token
from newsletter.web.forms import BadForm, Form, FormRules, UnsupportedMediaType, read_form
from newsletter.web.pages import Pages
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.security import CSRF_COOKIE, CSRF_FIELD, Csrf
from newsletter.web.spec import (
    LINK_TOKEN_MAX,
    LINK_TOKEN_PATTERN,
    LINK_TOKEN_SCHEMA,
    WebForms,
    html_responses,
)

log = logging.getLogger("newsletter.web")
router = APIRouter()
HONEYPOT = "website"
ONE_CLICK = "One-Click"
_COOKIE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
_TOKEN_SHAPE = re.compile(LINK_TOKEN_PATTERN)
# The shape is published but not enforced by FastAPI: a cut-off or mangled link gets the
# same friendly 404 page as a tampered one, not a bare validation error.
Token = Annotated[str, Path(json_schema_extra=LINK_TOKEN_SCHEMA)]


class PendingPurge:
    """Deletes expired pending subscriptions at most once per `interval` seconds.

    A delete on every subscribe would double the writers a burst brings to SQLite, and
    an error escaping a background task resets the reader's connection: log it instead.
    """

    def __init__(self, context: Context, interval: float = 3600.0) -> None:
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
    context: Context
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
    if len(token) > LINK_TOKEN_MAX or not _TOKEN_SHAPE.match(token):
        return link_problem(state, expired=False)
    try:
        return read_token(state.context.secret_key, purpose, token, max_age=max_age)
    except ExpiredToken:
        return link_problem(state, expired=True)
    except InvalidToken:
        return link_problem(state, expired=False)


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
    send: Callable[[Context, SubscriberInfo], object],
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


def interest_lines(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n;]+", text) if line.strip()]


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- home and subscribe ------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, summary="Trending papers and the subscribe form")
def index(request: Request, state: Web) -> HTMLResponse:
    return home(request, state)


def home(request: Request, state: WebState, status_code: int = 200, **values: Any) -> HTMLResponse:
    trending = state.trending.get(state.context)
    defaults: dict[str, Any] = {
        "error": None,
        "email": "",
        "chosen": (),
        "interests": "",
        "zone": "",
    }
    return form_page(
        request, state, "index.html", status_code, trending=trending, **{**defaults, **values}
    )


@router.post(
    "/subscribe",
    response_class=HTMLResponse,
    status_code=303,
    summary="Ask for a subscription; a confirmation email follows",
    responses=html_responses(303, 400, 403, 413, 415, 429),
)
async def subscribe(request: Request, state: Web, background: BackgroundTasks) -> Response:
    key = client_key(request)
    if not state.limiter.allow(key):
        response = error_page(
            state, 429, "Too many requests", "Please wait a little before subscribing again."
        )
        response.headers["Retry-After"] = str(state.limiter.retry_after(key))
        return response
    form = await checked_form(request, state, state.forms.subscribe)
    if isinstance(form, HTMLResponse):
        return form
    done = RedirectResponse("/check-your-inbox", status_code=303)
    if form.get(HONEYPOT):  # only bots fill the hidden field; tell them nothing
        return done
    email, topics = form.get("email"), form.getlist("topic")
    interests, zone = form.get("interests"), form.get("timezone")
    try:
        problem = state.forms.subscribe.problem(form)
        if problem:
            raise InvalidInput(problem)
        # On a worker thread: waiting for SQLite's write lock must not stall the server.
        result = await run_in_threadpool(
            subscriptions.request_subscription,
            state.context,
            email,
            topics,
            interest_lines(interests),
            timezone=zone or None,
        )
    except InvalidInput as exc:
        return home(
            request,
            state,
            400,
            error=str(exc),
            email=email,
            chosen=topics,
            interests=interests,
            zone=zone,
        )
    if result.send_confirmation:
        claimed_at = result.claimed_at

        def send_confirmation(context: Context, info: SubscriberInfo) -> None:
            notices.send_confirmation(context, info, claimed_at=claimed_at)

        send_later(background, send_confirmation, state, result.subscriber)
    background.add_task(state.purge)
    return done


@router.get("/check-your-inbox", response_class=HTMLResponse, summary="After subscribing")
def check_inbox(state: Web) -> HTMLResponse:
    days = state.context.settings.web.pending_expiry_days
    return state.pages.render("check_inbox.html", days=days)


# --- confirm -----------------------------------------------------------------------


@router.get(
    "/confirm/{token}",
    response_class=HTMLResponse,
    summary="Show the confirm button (mail scanners follow links; only POST confirms)",
    responses=html_responses(404),
)
def confirm_page(request: Request, state: Web, token: Token) -> HTMLResponse:
    info = reader_for(state, "confirm", token)
    if isinstance(info, HTMLResponse):
        return info
    if info.status == "active":
        return confirmed(state, info, already=True)
    if info.status == "unsubscribed":
        return left_already(state)
    if info.status != "pending":
        return link_problem(state, expired=True)
    return form_page(request, state, "confirm.html", email=info.email)


@router.post(
    "/confirm/{token}",
    response_class=HTMLResponse,
    summary="Confirm the subscription and send the welcome email",
    responses=html_responses(400, 403, 404, 413, 415),
)
async def confirm(
    request: Request, state: Web, token: Token, background: BackgroundTasks
) -> HTMLResponse:
    form = await checked_form(request, state, state.forms.confirm)
    if isinstance(form, HTMLResponse):
        return form
    problem = rules_problem(state, state.forms.confirm, form)
    if problem:
        return problem
    sid = subscriber_id(state, "confirm", token)
    if isinstance(sid, HTMLResponse):
        return sid
    try:
        change = subscriptions.confirm(state.context, sid)
    except NotFound:
        return link_problem(state, expired=True)
    if change.subscriber.status == "unsubscribed":
        return left_already(state)
    if change.subscriber.status != "active":
        return link_problem(state, expired=True)
    if change.changed:
        send_later(background, notices.send_welcome, state, change.subscriber)
    return confirmed(state, change.subscriber, already=not change.changed)


def confirmed(state: WebState, info: SubscriberInfo, already: bool) -> HTMLResponse:
    preferences = make_token(state.context.secret_key, "preferences", info.id)
    return state.pages.render(
        "confirmed.html",
        email=info.email,
        already=already,
        preferences_url=f"/preferences/{preferences}",
    )


# --- preferences -------------------------------------------------------------------


@router.get(
    "/preferences/{token}",
    response_class=HTMLResponse,
    summary="The reader's topics, interests, time zone and pause",
    responses=html_responses(404),
)
def preferences_page(request: Request, state: Web, token: Token) -> HTMLResponse:
    info = reader_for(state, "preferences", token)
    if isinstance(info, HTMLResponse):
        return info
    return preferences_form(request, state, token, info)


def preferences_form(
    request: Request,
    state: WebState,
    token: str,
    info: SubscriberInfo,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    unsubscribe = make_token(state.context.secret_key, "unsubscribe", info.id)
    defaults: dict[str, Any] = {
        "saved": False,
        "error": None,
        "chosen": info.topics,
        "interests": "\n".join(info.interests),
        "zone": info.timezone or "",
        "paused": info.paused,
    }
    return form_page(
        request,
        state,
        "preferences.html",
        status_code,
        info=info,
        token=token,
        unsubscribe_url=f"/unsubscribe/{unsubscribe}",
        **{**defaults, **values},
    )


@router.post(
    "/preferences/{token}",
    response_class=HTMLResponse,
    summary="Save topics, interests, time zone and pause",
    responses=html_responses(400, 403, 404, 413, 415),
)
async def save_preferences(request: Request, state: Web, token: Token) -> HTMLResponse:
    form = await checked_form(request, state, state.forms.preferences)
    if isinstance(form, HTMLResponse):
        return form
    sid = subscriber_id(state, "preferences", token)
    if isinstance(sid, HTMLResponse):
        return sid
    topics, interests, zone = form.getlist("topic"), form.get("interests"), form.get("timezone")
    paused = form.get("paused") == "on"
    try:
        problem = state.forms.preferences.problem(form)
        if problem:
            raise InvalidInput(problem)
        info = subscriptions.update_preferences(
            state.context,
            sid,
            topics=topics,
            interests=interest_lines(interests),
            timezone=zone or None,
            paused=paused,
        )
    except NotFound:
        return link_problem(state, expired=True)
    except InvalidInput as exc:
        info = subscriptions.get_preferences(state.context, sid)
        return preferences_form(
            request,
            state,
            token,
            info,
            400,
            error=str(exc),
            chosen=topics,
            interests=interests,
            zone=zone,
            paused=paused,
        )
    return preferences_form(request, state, token, info, saved=True)


# --- unsubscribe -------------------------------------------------------------------


@router.get(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    summary="Show the unsubscribe button (only POST unsubscribes)",
    responses=html_responses(404),
)
def unsubscribe_page(request: Request, state: Web, token: Token) -> HTMLResponse:
    sid = subscriber_id(state, "unsubscribe", token)
    if isinstance(sid, HTMLResponse):
        return sid
    try:
        info = subscriptions.get_preferences(state.context, sid)
    except NotFound:
        return state.pages.render("unsubscribed.html", goodbye=False)
    if info.status in ("unsubscribed", "bounced"):
        return state.pages.render("unsubscribed.html", goodbye=False)
    return form_page(request, state, "unsubscribe.html", email=info.email)


@router.post(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    summary="Unsubscribe: the page's button, or an RFC 8058 one-click POST",
    description=(
        "A browser form (with its CSRF token) or, without cookies or CSRF, the RFC 8058 "
        "one-click body `List-Unsubscribe=One-Click`, answered 200 with no redirect."
    ),
    responses=html_responses(400, 403, 404, 413, 415),
)
async def unsubscribe(
    request: Request, state: Web, token: Token, background: BackgroundTasks
) -> HTMLResponse:
    rules = state.forms.unsubscribe
    form = await parsed_form(request, state, rules, allow_multipart=True)
    if isinstance(form, HTMLResponse):
        return form
    one_click = form.get("List-Unsubscribe") == ONE_CLICK
    csrf_ok = state.csrf.valid(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD))
    if not (one_click or csrf_ok):
        return forbidden(state)
    problem = rules_problem(state, rules, form)
    if problem:
        return problem
    sid = subscriber_id(state, "unsubscribe", token)
    if isinstance(sid, HTMLResponse):
        return sid
    try:
        change = subscriptions.unsubscribe_by_id(state.context, sid)
    except NotFound:  # purged: nothing will be sent to it anyway
        return state.pages.render("unsubscribed.html", goodbye=False)
    # One-click comes from a mailbox provider, not the reader: send them nothing at all.
    goodbye = change.changed and not one_click
    if goodbye:
        send_later(background, notices.send_goodbye, state, change.subscriber)
    return state.pages.render("unsubscribed.html", goodbye=goodbye)


# --- archive and health ------------------------------------------------------------


@router.get("/archive", response_class=HTMLResponse, summary="Past editions")
def archive_list(state: Web) -> HTMLResponse:
    return state.pages.render("archive.html", editions=archive.editions(state.context))


@router.get(
    "/archive/{edition}",
    response_class=HTMLResponse,
    summary="The general (non-personal) version of one edition",
    responses=html_responses(404),
)
def archive_edition(
    state: Web, edition: Annotated[str, Path(min_length=1, max_length=40)]
) -> HTMLResponse:
    page = archive.edition(state.context, edition)
    if page is None:
        return error_page(state, 404, "Edition not found", "There is no edition with that name.")
    return state.pages.render("edition.html", page=page)


@router.get(
    "/digest/{edition}/{token}",
    response_class=HTMLResponse,
    summary="A reader's own digest of one edition: the email's 'View in browser' (read only)",
    responses=html_responses(404),
)
def reader_digest(
    state: Web, edition: Annotated[str, Path(min_length=1, max_length=40)], token: Token
) -> HTMLResponse:
    sid = subscriber_id(state, "digest", token)
    if isinstance(sid, HTMLResponse):
        return sid
    page = archive.reader_digest(state.context, edition, sid)
    if page is None:
        return error_page(state, 404, "Digest not found", "There is no such digest.")
    preferences = make_token(state.context.secret_key, "preferences", sid)
    return state.pages.render(
        "digest.html",
        page=page,
        preferences_url=f"/preferences/{preferences}",
        archive_url=f"/archive/{page.edition.key}",
    )


@router.get(
    "/healthz",
    summary="Liveness and database check for monitors",
    responses={503: {"description": "The database is unreachable or not migrated"}},
)
def healthz(state: Web) -> JSONResponse:
    try:
        state.context.require_schema()
    except NewsletterError as exc:
        return JSONResponse({"status": "error", "detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})

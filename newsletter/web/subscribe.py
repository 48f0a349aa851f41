"""The home page with its subscribe form, and the double opt-in: subscribe, confirm."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.delivery import notices
from newsletter.errors import InvalidInput, NotFound
from newsletter.readers import subscriptions
from newsletter.readers.subscriptions import SubscriberInfo
from newsletter.runtime import Runtime
from newsletter.tokens import make_token
from newsletter.web.routes import (
    Web,
    WebState,
    checked_form,
    form_page,
    found_papers,
    interest_lines,
    left_already,
    link_problem,
    over_limit,
    reader_for,
    rules_problem,
    send_later,
    subscriber_id,
)

router = APIRouter()
HONEYPOT = "website"


@router.get("/")
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
        "papers": "",
    }
    return form_page(
        request, state, "index.html", status_code, trending=trending, **{**defaults, **values}
    )


@router.post("/subscribe")
async def subscribe(request: Request, state: Web, background: BackgroundTasks) -> Response:
    """Ask for a subscription; 303 to "check your inbox", and a confirmation email follows."""
    limited = over_limit(
        state, state.limiter, request, "Please wait a little before subscribing again."
    )
    if limited is not None:
        return limited
    form = await checked_form(request, state, state.forms.subscribe)
    if isinstance(form, HTMLResponse):
        return form
    done = RedirectResponse("/check-your-inbox", status_code=303)
    if form.get(HONEYPOT):  # only bots fill the hidden field; tell them nothing
        return done
    email, topics = form.get("email"), form.getlist("topic")
    interests, zone, papers = form.get("interests"), form.get("timezone"), form.get("papers")
    try:
        problem = state.forms.subscribe.problem(form)
        if problem:
            raise InvalidInput(problem)
        found = await found_papers(state, papers)
        # On a worker thread: waiting for SQLite's write lock must not stall the server.
        result = await run_in_threadpool(
            partial(
                subscriptions.request_subscription,
                state.context,
                email,
                topics,
                interest_lines(interests),
                timezone=zone or None,
                examples=found,
            )
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
            papers=papers,
        )
    if result.send_confirmation:
        claimed_at = result.claimed_at

        def send_confirmation(context: Runtime, info: SubscriberInfo) -> None:
            notices.send_confirmation(context, info, claimed_at=claimed_at)

        send_later(background, send_confirmation, state, result.subscriber)
    background.add_task(state.purge)
    return done


@router.get("/check-your-inbox")
def check_inbox(state: Web) -> HTMLResponse:
    days = state.context.settings.web.pending_expiry_days
    return state.pages.render("check_inbox.html", days=days)


# --- confirm -----------------------------------------------------------------------


@router.get("/confirm/{token}")
def confirm_page(request: Request, state: Web, token: str) -> HTMLResponse:
    """The confirm button: mail scanners follow links, so only the POST confirms."""
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


@router.post("/confirm/{token}")
async def confirm(
    request: Request, state: Web, token: str, background: BackgroundTasks
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

"""A reader's own pages, from the links in every email: preferences and unsubscribe."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse

from newsletter.delivery import notices
from newsletter.errors import InvalidInput, NotFound
from newsletter.readers import examples, subscriptions
from newsletter.readers.subscriptions import SubscriberInfo
from newsletter.tokens import make_token
from newsletter.web.routes import (
    Web,
    WebState,
    checked_form,
    forbidden,
    form_page,
    interest_lines,
    link_problem,
    parsed_form,
    reader_for,
    rules_problem,
    send_later,
    subscriber_id,
)
from newsletter.web.security import CSRF_COOKIE, CSRF_FIELD

router = APIRouter()
ONE_CLICK = "One-Click"


@router.get("/preferences/{token}")
def preferences_page(request: Request, state: Web, token: str) -> HTMLResponse:
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
        "papers": "",
        "added": None,
        "skipped": (),
        "felt": examples.felt_papers(state.context, info.id),
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


@router.post("/preferences/{token}")
async def save_preferences(request: Request, state: Web, token: str) -> HTMLResponse:
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


@router.get("/unsubscribe/{token}")
def unsubscribe_page(request: Request, state: Web, token: str) -> HTMLResponse:
    """The unsubscribe button: only the POST unsubscribes."""
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


@router.post("/unsubscribe/{token}")
async def unsubscribe(
    request: Request, state: Web, token: str, background: BackgroundTasks
) -> HTMLResponse:
    """The page's button (with its CSRF token) or, without cookies or CSRF, the RFC 8058
    one-click body `List-Unsubscribe=One-Click`, answered 200 with no redirect."""
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

"""A digest's "More like this" / "Fewer like this" links, and the preferences page's
example papers (add, and undo any mark).

Link scanners of corporate mail filters fetch every URL in an email: a GET only shows
the paper and one button, and only the button's POST changes the reader's profile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from newsletter.errors import InvalidInput, InvalidToken, NotFound
from newsletter.readers import examples, subscriptions
from newsletter.sources.refs import MAX_BIBTEX_BYTES, PaperRef, parse_refs, refs_from_bibtex
from newsletter.store.statuses import Origin
from newsletter.tokens import make_token, read_cards_token
from newsletter.web.preferences import preferences_form
from newsletter.web.routes import (
    Web,
    WebState,
    checked_form,
    error_page,
    forbidden,
    form_page,
    interest_lines,
    link_problem,
    subscriber_id,
    token_shape_ok,
)
from newsletter.web.security import CSRF_COOKIE, CSRF_FIELD

router = APIRouter()
DIRECTIONS = ("more", "fewer")
# A library export uploaded on the preferences page: a larger body than a form's.
BIBTEX_PATH = re.compile(r"/preferences/[^/]+/bibtex")
BIBTEX_UPLOAD_BYTES = MAX_BIBTEX_BYTES + 16_384


def _marked(
    state: WebState, token: str, paper_id: int, direction: str
) -> tuple[int, int] | HTMLResponse:
    """(reader, paper) a feedback link names, or the friendly "link not valid" page: the
    token must be signed for the reader and carry that paper."""
    if not token_shape_ok(token) or direction not in DIRECTIONS:
        return link_problem(state, expired=False)
    try:
        reader, papers = read_cards_token(state.context.secret_key, token)
    except InvalidToken:
        return link_problem(state, expired=False)
    if paper_id not in papers:
        return link_problem(state, expired=False)
    return reader, paper_id


@router.get("/feedback/{token}/{paper_id}/{direction}")
def feedback_page(
    request: Request, state: Web, token: str, paper_id: int, direction: str
) -> HTMLResponse:
    marked = _marked(state, token, paper_id, direction)
    if isinstance(marked, HTMLResponse):
        return marked
    title = examples.paper_title_of(state.context, marked[1])
    if title is None:
        return link_problem(state, expired=True)
    return form_page(request, state, "feedback.html", title=title, more=direction == "more")


@router.post("/feedback/{token}/{paper_id}/{direction}")
async def give_feedback(
    request: Request, state: Web, token: str, paper_id: int, direction: str
) -> Response:
    form = await checked_form(request, state, state.forms.confirm)
    if isinstance(form, HTMLResponse):
        return form
    marked = _marked(state, token, paper_id, direction)
    if isinstance(marked, HTMLResponse):
        return marked
    reader, paper = marked
    try:
        given = await run_in_threadpool(
            examples.give_feedback, state.context, reader, paper, direction == "more", Origin.EMAIL
        )
    except NotFound:
        return link_problem(state, expired=True)
    except InvalidInput as exc:
        return state.pages.render("error.html", 400, title="Not saved", message=str(exc))
    preferences = make_token(state.context.secret_key, "preferences", reader)
    return state.pages.render(
        "feedback_done.html",
        title=given.title,
        more=direction == "more",
        preferences_url=f"/preferences/{preferences}",
    )


@router.post("/preferences/{token}/papers")
async def add_papers(request: Request, state: Web, token: str) -> HTMLResponse:
    """Example papers typed on the preferences page (ids or links, one per line)."""
    form = await checked_form(request, state, state.forms.papers)
    if isinstance(form, HTMLResponse):
        return form
    typed = form.get("papers")

    def refs() -> list[PaperRef]:
        problem = state.forms.papers.problem(form)
        if problem:
            raise InvalidInput(problem)
        return parse_refs(interest_lines(typed))

    return await _add_examples(request, state, token, refs, lenient=False, papers=typed)


@router.post("/preferences/{token}/bibtex")
async def add_bibtex(request: Request, state: Web, token: str) -> HTMLResponse:
    """Example papers from an uploaded BibTeX file (Zotero, Google Scholar, Mendeley)."""
    upload = await _bibtex_upload(request, state)
    if isinstance(upload, HTMLResponse):
        return upload
    return await _add_examples(
        request,
        state,
        token,
        lambda: refs_from_bibtex(upload, origin="the BibTeX file"),
        lenient=True,
    )


async def _add_examples(
    request: Request,
    state: WebState,
    token: str,
    refs: Callable[[], list[PaperRef]],
    *,
    lenient: bool,
    papers: str = "",
) -> HTMLResponse:
    """Add the papers `refs` names (fetched from arXiv when not stored) and show the
    preferences page again: with how many were added, or why none were."""
    sid = subscriber_id(state, "preferences", token)
    if isinstance(sid, HTMLResponse):
        return sid
    try:
        named = refs()
        found = await run_in_threadpool(
            partial(examples.add_examples, lenient=lenient),
            state.context,
            sid,
            named,
            Origin.GIVEN,
        )
        info = subscriptions.get_preferences(state.context, sid)
    except NotFound:
        return link_problem(state, expired=True)
    except InvalidInput as exc:
        info = subscriptions.get_preferences(state.context, sid)
        return preferences_form(request, state, token, info, 400, error=str(exc), papers=papers)
    return preferences_form(
        request,
        state,
        token,
        info,
        added=len(found.external_ids),
        skipped=found.skipped,
    )


async def _bibtex_upload(request: Request, state: WebState) -> bytes | HTMLResponse:
    """The uploaded file's bytes, once the form's CSRF token checks out."""
    try:
        async with request.form(max_files=1, max_fields=2) as form:
            csrf = form.get(CSRF_FIELD)
            upload = form.get("bibtex")
            data = await upload.read() if isinstance(upload, UploadFile) else None
    except (HTTPException, MultiPartException, AssertionError):
        return error_page(state, 400, "Bad request", "The upload cannot be read.")
    if not isinstance(csrf, str) or not state.csrf.valid(request.cookies.get(CSRF_COOKIE), csrf):
        return forbidden(state)
    if not data:
        return error_page(state, 400, "Bad request", "Choose a BibTeX file to upload.")
    return data


@router.post("/preferences/{token}/papers/{paper_id}/forget")
async def forget_paper(request: Request, state: Web, token: str, paper_id: int) -> Response:
    form = await checked_form(request, state, state.forms.confirm)
    if isinstance(form, HTMLResponse):
        return form
    sid = subscriber_id(state, "preferences", token)
    if isinstance(sid, HTMLResponse):
        return sid
    await run_in_threadpool(examples.forget, state.context, sid, paper_id)
    return RedirectResponse(f"/preferences/{token}#examples", status_code=303)

"""The edition archive, a reader's digest in the browser, and the health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, JSONResponse

from newsletter.errors import NewsletterError
from newsletter.readers import archive
from newsletter.tokens import make_token
from newsletter.web.routes import Web, error_page, subscriber_id

router = APIRouter()


@router.get("/archive")
def archive_list(state: Web) -> HTMLResponse:
    return state.pages.render("archive.html", editions=archive.editions(state.context))


@router.get("/archive/{edition}")
def archive_edition(
    state: Web, edition: Annotated[str, Path(min_length=1, max_length=40)]
) -> HTMLResponse:
    page = archive.edition(state.context, edition)
    if page is None:
        return error_page(state, 404, "Edition not found", "There is no edition with that name.")
    return state.pages.render("edition.html", page=page)


@router.get("/digest/{edition}/{token}")
def reader_digest(
    state: Web, edition: Annotated[str, Path(min_length=1, max_length=40)], token: str
) -> HTMLResponse:
    """A reader's own digest of one edition: the email's "View in browser" (read only)."""
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


@router.get("/healthz")
def healthz(state: Web) -> JSONResponse:
    """For monitors: 503 when the database is unreachable or not migrated."""
    try:
        state.context.require_schema()
    except NewsletterError as exc:
        return JSONResponse({"status": "error", "detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})

"""/admin/readers: find a reader by address, see them, export their data as JSON,
preview their next email, delete them (erasure)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.errors import NewsletterError, NotFound, NothingToSend
from newsletter.readers import records
from newsletter.readers.records import ReaderRecord
from newsletter.web.admin.previews import RenderedPreview
from newsletter.web.admin.state import (
    ADMIN_CSP,
    DELETE,
    AdminState,
    AdminWeb,
    SignedIn,
    page,
    posted,
    signed_in,
)
from newsletter.web.routes import Web, WebState, error_page, sentence

router = APIRouter(dependencies=[Depends(signed_in)])
SEARCH_MAX = 320
# The framed email: its own inline styles, remote images over https, nothing else; the
# sandbox keeps any script or form in it inert even if one slipped through rendering.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


@router.get("/admin/readers")
async def find(request: Request, web: Web, who: SignedIn, q: str = "") -> HTMLResponse:
    query = q[:SEARCH_MAX]
    found = await run_in_threadpool(records.find_readers, web.context, query)
    return page(
        request,
        web,
        "admin/readers.html",
        admin=who,
        q=query,
        found=found,
        limit=records.SEARCH_LIMIT,
    )


@router.get("/admin/readers/{reader_id}")
async def reader(request: Request, web: Web, who: SignedIn, reader_id: int) -> HTMLResponse:
    found = await _reader(web, reader_id)
    if isinstance(found, HTMLResponse):
        return found
    return page(request, web, "admin/reader.html", admin=who, reader=found)


@router.get("/admin/readers/{reader_id}/export.json")
async def export(web: Web, who: SignedIn, reader_id: int) -> Response:
    try:
        data = await run_in_threadpool(records.export_reader, web.context, reader_id)
    except NotFound:
        return _missing(web)
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="reader-{reader_id}.json"'},
    )


@router.post("/admin/readers/{reader_id}/delete")
async def delete(
    request: Request, web: Web, admin: AdminWeb, who: SignedIn, reader_id: int
) -> Response:
    form = await posted(request, web, DELETE)
    if isinstance(form, HTMLResponse):
        return form
    try:
        await run_in_threadpool(records.delete_reader, web.context, reader_id)
    except NotFound:
        return _missing(web)
    admin.previews.forget(reader_id)
    return RedirectResponse("/admin?done=deleted", status_code=303)


@router.get("/admin/readers/{reader_id}/preview")
async def preview(
    request: Request, web: Web, admin: AdminWeb, who: SignedIn, reader_id: int
) -> HTMLResponse:
    found = await _preview(web, admin, reader_id)
    if isinstance(found, HTMLResponse):
        return found
    reader, rendered = found
    nothing = rendered if isinstance(rendered, str) else ""
    shown = None if isinstance(rendered, str) else rendered
    return page(
        request, web, "admin/preview.html", admin=who, reader=reader, preview=shown, nothing=nothing
    )


@router.get("/admin/readers/{reader_id}/preview/email")
async def preview_email(web: Web, admin: AdminWeb, who: SignedIn, reader_id: int) -> Response:
    """The email's HTML alone, for the preview page's sandboxed frame."""
    found = await _preview(web, admin, reader_id)
    if isinstance(found, HTMLResponse):
        return found
    rendered = found[1]
    if isinstance(rendered, str):
        return error_page(web, 409, "No preview", rendered)
    return HTMLResponse(
        rendered.html,
        headers={"content-security-policy": EMAIL_CSP, "x-frame-options": "SAMEORIGIN"},
    )


async def _preview(
    web: WebState, admin: AdminState, reader_id: int
) -> tuple[ReaderRecord, RenderedPreview | str] | HTMLResponse:
    """The reader and their next email (from the preview cache), or the sentence saying
    why nothing would be sent; a page for a reader that is missing or cannot be
    previewed."""
    found = await _reader(web, reader_id)
    if isinstance(found, HTMLResponse):
        return found
    try:
        rendered = await run_in_threadpool(
            admin.previews.get, web.context, reader_id, found.info.email
        )
    except NothingToSend as exc:
        return found, sentence(str(exc))
    except NewsletterError as exc:
        return error_page(web, 409, "No preview", sentence(str(exc)))
    return found, rendered


async def _reader(web: WebState, reader_id: int) -> ReaderRecord | HTMLResponse:
    try:
        return await run_in_threadpool(records.get_reader, web.context, reader_id)
    except NotFound:
        return _missing(web)


def _missing(web: WebState) -> HTMLResponse:
    response = error_page(web, 404, "Not found", "There is no reader with this id.")
    response.headers["content-security-policy"] = ADMIN_CSP
    return response

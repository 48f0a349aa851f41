"""/admin: the overview (the same numbers as `newsletter status`), and pausing or
resuming an edition."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter import status
from newsletter.delivery import control
from newsletter.errors import InvalidInput, NotFound
from newsletter.store.editions import EditionInfo
from newsletter.web.admin.chart import growth_chart
from newsletter.web.admin.state import BUTTON, AdminWeb, SignedIn, page, posted, signed_in
from newsletter.web.routes import Web, WebState, error_page, sentence

router = APIRouter(dependencies=[Depends(signed_in)])


@router.get("/admin")
async def overview(request: Request, web: Web, admin: AdminWeb, who: SignedIn) -> HTMLResponse:
    found = await run_in_threadpool(status.overview, web.context)
    return page(
        request,
        web,
        "admin/overview.html",
        admin=who,
        overview=found,
        report=found.report,
        chart=growth_chart(found.readers.growth),
        run=admin.send_run.view(),
        notice=_notice(request),
    )


@router.post("/admin/editions/{key}/pause")
async def pause(request: Request, web: Web, who: SignedIn, key: str) -> Response:
    form = await posted(request, web, BUTTON)
    if isinstance(form, HTMLResponse):
        return form
    reason = f"paused from the dashboard by {who.email}"
    return await _change(web, lambda: control.pause(web.context, key, reason), "paused")


@router.post("/admin/editions/{key}/resume")
async def resume(request: Request, web: Web, who: SignedIn, key: str) -> Response:
    form = await posted(request, web, BUTTON)
    if isinstance(form, HTMLResponse):
        return form
    return await _change(web, lambda: control.resume(web.context, key), "resumed")


async def _change(web: WebState, change: Callable[[], EditionInfo], done: str) -> Response:
    try:
        edition = await run_in_threadpool(change)
    except NotFound as exc:
        return error_page(web, 404, "Not found", sentence(str(exc)))
    except InvalidInput as exc:
        return error_page(web, 409, "Cannot do that now", sentence(str(exc)))
    return RedirectResponse(f"/admin?done={done}&edition={edition.key}", status_code=303)


def _notice(request: Request) -> str | None:
    """The line confirming the last action (from the redirect's query: known words only)."""
    done, key = request.query_params.get("done"), request.query_params.get("edition", "")
    if done in ("paused", "resumed") and len(key) <= 16:
        return f"Edition {key} {done}."
    if done == "deleted":
        return "The reader and their history were deleted."
    return None

"""/admin/send: start send-now and watch it; the page polls /admin/send/progress
(static/admin-send.js), and without script a refresh shows the same numbers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from newsletter.web.admin.state import BUTTON, AdminWeb, SignedIn, page, posted, signed_in
from newsletter.web.routes import Web, error_page

router = APIRouter(dependencies=[Depends(signed_in)])


@router.get("/admin/send")
def send_page(request: Request, web: Web, admin: AdminWeb, who: SignedIn) -> HTMLResponse:
    return page(request, web, "admin/send.html", admin=who, run=admin.send_run.view())


@router.post("/admin/send")
async def start(request: Request, web: Web, admin: AdminWeb, who: SignedIn) -> Response:
    form = await posted(request, web, BUTTON)
    if isinstance(form, HTMLResponse):
        return form
    if not admin.send_run.start(who.email):
        return error_page(
            web, 409, "Already sending", "A send-now run is in progress: wait for it to finish."
        )
    return RedirectResponse("/admin/send", status_code=303)


@router.get("/admin/send/progress")
def progress(admin: AdminWeb, who: SignedIn) -> JSONResponse:
    return JSONResponse(admin.send_run.view().as_json())

"""/admin/login and logout: the only admin routes open without a session."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.web.admin.auth import SESSION_COOKIE
from newsletter.web.admin.state import BUTTON, LOGIN, AdminWeb, page, posted
from newsletter.web.routes import Web, client_key, over_limit

router = APIRouter()
log = logging.getLogger("newsletter.web.admin")


@router.get("/admin/login")
def login_page(request: Request, web: Web, admin: AdminWeb) -> Response:
    if admin.sessions.admin_of(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse("/admin", status_code=303)  # signed in already
    return page(request, web, "admin/login.html", error=None, email="")


@router.post("/admin/login")
async def login(request: Request, web: Web, admin: AdminWeb) -> Response:
    # Every attempt spends a token, right or wrong: guessing is what is being limited.
    limited = over_limit(
        web, admin.login_limiter, request, "Too many login attempts. Please wait and try again."
    )
    if limited is not None:
        return limited
    form = await posted(request, web, LOGIN)
    if isinstance(form, HTMLResponse):
        return form
    email = form.get("email")
    # argon2 takes tens of milliseconds of CPU: off the event loop.
    found = await run_in_threadpool(admin.admins.check, email, form.get("password"))
    if found is None:
        log.warning("failed admin login from %s", client_key(request))
        error = "Wrong email or password."
        return page(request, web, "admin/login.html", 401, error=error, email=email)
    signed = RedirectResponse("/admin", status_code=303)
    signed.set_cookie(
        SESSION_COOKIE,
        admin.sessions.cookie_for(found),
        max_age=admin.sessions.max_age,
        httponly=True,
        samesite="strict",
        secure=web.secure_cookies,
        path="/admin",
    )
    return signed


@router.post("/admin/logout")
async def logout(request: Request, web: Web, admin: AdminWeb) -> Response:
    form = await posted(request, web, BUTTON)
    if isinstance(form, HTMLResponse):
        return form
    admin.sessions.revoke(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/admin", httponly=True, samesite="strict", secure=web.secure_cookies
    )
    return response

"""The app factory: routes, static files, middlewares and the error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import newsletter.web.admin as admin_web
from newsletter.readers.archive import TrendingCache
from newsletter.returns.webhooks.receive import Relays
from newsletter.runtime import Runtime
from newsletter.web import archive, feedback, preferences, subscribe, webhooks
from newsletter.web.feedback import BIBTEX_PATH, BIBTEX_UPLOAD_BYTES
from newsletter.web.forms import web_forms
from newsletter.web.pages import Pages
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.routes import PendingPurge, WebState, timezones
from newsletter.web.security import BodyLimit, Csrf, SecurityHeaders

STATIC = Path(__file__).parent / "static"
ROUTERS = (subscribe.router, preferences.router, feedback.router, archive.router, webhooks.router)
TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    413: "Request too large",
    415: "Unsupported form",
    429: "Too many requests",
}
# /admin: the login page, the overview, readers, send-now (see web/admin). Its own
# statement keeps the public routers' line as it is; mypy typed that one a fixed tuple.
ROUTERS = (*ROUTERS, *admin_web.ROUTERS)  # type: ignore[assignment]


def create_app(context: Runtime) -> FastAPI:
    settings = context.settings
    app = FastAPI(openapi_url=None)  # HTML forms for readers, not an API: nothing to publish
    pages = Pages(settings)
    https = settings.site.base_url.startswith("https://")
    forms = web_forms(settings, timezones())
    app.state.web = WebState(
        context=context,
        pages=pages,
        csrf=Csrf(context.secret_key),
        limiter=RateLimiter(settings.web.subscribe_rate_per_hour, settings.web.subscribe_burst),
        secure_cookies=https,
        forms=forms,
        purge=PendingPurge(context),
        trending=TrendingCache(),
    )
    app.state.relays = Relays(context)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _error_pages(app, pages)
    admin_web.install(app, context)

    async def too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(pages, 413, "The request body is larger than this site accepts.")
        await response(scope, receive, send)

    app.add_middleware(
        BodyLimit,
        max_bytes=settings.web.max_body_bytes,
        too_large=too_large,
        uploads=(
            (BIBTEX_PATH, BIBTEX_UPLOAD_BYTES),
            (webhooks.WEBHOOK_PATH, webhooks.WEBHOOK_BODY_BYTES),
        ),
    )
    app.add_middleware(SecurityHeaders, https=https)
    app.add_middleware(HeadAsGet)
    _path_only_slash_redirects(app)
    return app


class HeadAsGet:
    """HEAD answers what GET would, without the body (RFC 9110); FastAPI routes answer
    only the methods they name, and monitors probe with HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _path_only_slash_redirects(app: FastAPI) -> None:
    """Redirect /archive/ to /archive (and the other way) with a path-only Location.

    Starlette's own redirect builds an absolute URL from the request's Host header, so
    a forged Host would send readers (or a cache) to another site.
    """
    router = app.router
    router.redirect_slashes = False
    not_found = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path != "/":
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            routed = any(
                route.matches({**scope, "path": other})[0] != Match.NONE for route in router.routes
            )
            if routed and other.startswith("/") and not other.startswith("//"):
                query = scope.get("query_string", b"").decode("latin-1")
                location = other + (f"?{query}" if query else "")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = default


def _error(pages: Pages, status_code: int, message: str) -> HTMLResponse:
    title = TITLES.get(status_code, "Something went wrong")
    return pages.render("error.html", status_code, title=title, message=message)


def _error_pages(app: FastAPI, pages: Pages) -> None:
    async def http_error(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, HTTPException)
        message = "There is nothing at this address." if exc.status_code == 404 else ""
        response = _error(pages, exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            # GET and POST of one path are separate routes; Starlette names only the first.
            allowed = allowed_methods(request.url.path)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    async def invalid(request: Request, exc: Exception) -> HTMLResponse:
        return _error(pages, 400, "Part of the request is not valid.")

    async def crashed(request: Request, exc: Exception) -> HTMLResponse:
        return _error(pages, 500, "Please try again in a moment.")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(500, crashed)


def allowed_methods(path: str) -> list[str]:
    """Every method some page route answers at `path`."""
    methods: set[str] = set()
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path_regex.match(path):
                methods.update(route.methods or ())
    if "GET" in methods:
        methods.add("HEAD")  # see HeadAsGet
    return sorted(methods)

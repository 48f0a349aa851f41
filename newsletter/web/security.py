"""Request hardening: security headers, a body size limit and CSRF tokens.

The two middlewares are plain ASGI so they also guard responses the framework
builds itself (404, 405) and bodies streamed without a Content-Length.
"""

from __future__ import annotations

import hmac
import re
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style anywhere: every script and stylesheet is a same-origin file.
# Paper thumbnails are remote https images (shown on a papers page), nothing else is.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Links carry signed tokens in their path: never leak them to the sites we link to.
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "interest-cohort=(), camera=(), microphone=(), geolocation=()",
}

CSRF_COOKIE = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 24 * 3600


class SecurityHeaders:
    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if self.https:
                    headers.setdefault("strict-transport-security", "max-age=31536000")
                if not static:  # pages can hold a reader's address or a token
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """Raised from `receive` when a request body passes the limit."""


class BodyLimit:
    """Answer 413 to bodies over `max_bytes`, declared or streamed; paths matching one
    of `uploads` (a file upload) have that larger limit instead."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        too_large: ASGIApp,
        uploads: tuple[tuple[re.Pattern[str], int], ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large  # the app that renders the 413 page
        self.uploads = uploads

    def _limit(self, path: str) -> int:
        return next((n for pattern, n in self.uploads if pattern.fullmatch(path)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self.too_large(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Csrf:
    """Signed double submit: a random cookie, and a form field that is its signature.

    A cross-site page can make the browser send the cookie but can neither read it
    nor forge the signed field; the field alone is useless without the cookie.
    """

    def __init__(self, secret_key: str) -> None:
        self._signer = URLSafeTimedSerializer(secret_key, salt="newsletter.web.csrf")

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def field_for(self, cookie: str) -> str:
        token: str = self._signer.dumps(cookie)
        return token

    def valid(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field:
            return False
        try:
            signed = self._signer.loads(field, max_age=CSRF_MAX_AGE)
        except BadSignature:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, cookie)

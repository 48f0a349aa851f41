"""The forms' field rules and the OpenAPI details, so the published schema says what the app does.

Forms are parsed and checked by hand (strict UTF-8, see forms.py); their request bodies
are published from the same `FormRules` the routes check. FastAPI's automatic 422
answers are replaced by the 400 page the app returns.

Sizes: every form that passes its declared rules fits in `web.max_body_bytes` even when
each character is a percent-encoded 4-byte one, so a schema-valid form is never refused
as too large; the free-text interests get whatever room the other fields leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from newsletter.config import Settings
from newsletter.readers.subscriptions import MAX_INTEREST_LENGTH, MAX_INTERESTS
from newsletter.web.forms import Field, FormRules

DESCRIPTIONS = {
    200: "The page",
    303: "Accepted; see the next page",
    400: "Bad request: the form breaks the rules declared for it, or a value is refused "
    "(an address email-validator does not accept); the page says which",
    403: "Missing or wrong CSRF token: send the `csrf` cookie set by the page that holds the "
    "form, and its signed value in the `csrf_token` field (reload the form)",
    404: "Not found. For a link (confirm, preferences, unsubscribe): the link is malformed, "
    "tampered with, made for another page, expired, or its subscription is gone; the page "
    "offers to start again and says nothing about any address",
    413: "Request body larger than the site accepts (web.max_body_bytes); "
    "no form that follows its declared rules is that large",
    415: "The body is not sent as a form",
    429: "Too many requests from this address; see Retry-After",
}
LINK_TOKEN_PATTERN = r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+$"
LINK_TOKEN_MAX = 400
LINK_TOKEN_SCHEMA: dict[str, Any] = {
    "pattern": LINK_TOKEN_PATTERN,
    "maxLength": LINK_TOKEN_MAX,
    "description": "The signed token from an email link; any other value answers 404",
}
CSRF_SCHEME = "csrfCookie"
CSRF_DESCRIPTION = "The signed value of the `csrf` cookie, as printed in the page's form"
_WIDE = 12  # bytes of one percent-encoded 4-byte UTF-8 character
_ASCII = 3  # bytes of one percent-encoded ASCII character


@dataclass(frozen=True)
class WebForms:
    """The rules of every form of the site, for one configuration."""

    subscribe: FormRules
    confirm: FormRules
    preferences: FormRules
    unsubscribe: FormRules
    interests_max: int

    def by_operation(self) -> dict[tuple[str, str], tuple[FormRules, bool]]:
        """(path, method) → (rules, multipart allowed), for the published request bodies."""
        return {
            ("/subscribe", "post"): (self.subscribe, False),
            ("/confirm/{token}", "post"): (self.confirm, False),
            ("/preferences/{token}", "post"): (self.preferences, False),
            ("/unsubscribe/{token}", "post"): (self.unsubscribe, True),
        }


def web_forms(settings: Settings, timezones: tuple[str, ...]) -> WebForms:
    slugs = tuple(t.slug for t in settings.topics)
    csrf = Field("csrf_token", 200, pattern=r"[A-Za-z0-9_.\-]*", description=CSRF_DESCRIPTION)
    topic = Field(
        "topic",
        max(map(len, slugs), default=1),
        choices=slugs,
        max_items=max(len(slugs), 1),
        label="topic",
    )
    email = Field(
        "email",
        254,
        email=True,
        label="the email address",
        description="An address email-validator accepts (no reserved domain such as .test "
        "or .local); any other answers 400 and the form again, with the reason",
    )
    zone = Field(
        "timezone",
        64,
        choices=("", *timezones),
        description="An IANA time zone name (the browser fills in its own); empty: the "
        "digest's time zone; any other answers 400 and the form again, with the reason",
        label="time zone",
    )
    website = Field("website", 100, pattern=r"[^\x00]*", description="Honeypot: leave empty")
    fixed = (
        _worst_bytes(csrf, _ASCII)
        + _worst_bytes(topic, _ASCII)
        + _worst_bytes(zone, _WIDE)
        + _worst_bytes(email, _WIDE)  # a refused, non-ASCII address still has to be read
        + _worst_bytes(website, _WIDE)
    )
    room = (settings.web.max_body_bytes - fixed - len("interests=&")) // _WIDE
    # Never below one full interest: a tiny body limit wins over the fit promise above.
    interests_max = max(MAX_INTEREST_LENGTH, min(room, MAX_INTERESTS * (MAX_INTEREST_LENGTH + 1)))
    interests = Field(
        "interests",
        interests_max,
        pattern=_interests_pattern(),
        label="the interests",
        description=(
            f"Up to {MAX_INTERESTS} interests separated by new lines or ';', "
            f"each at most {MAX_INTEREST_LENGTH} characters"
        ),
    )
    paused = Field("paused", 2, choices=("on",))
    one_click = Field("List-Unsubscribe", 9, choices=("One-Click",))
    return WebForms(
        subscribe=FormRules(
            (csrf, email, topic, interests, zone, website),
            required=("csrf_token", "email"),
        ),
        confirm=FormRules((csrf,), required=("csrf_token",)),
        preferences=FormRules((csrf, topic, interests, zone, paused), required=("csrf_token",)),
        # Mailbox providers post RFC 8058 one-click bodies: anything else in them is ignored.
        unsubscribe=FormRules((one_click, csrf), closed=False),
        interests_max=interests_max,
    )


def _interests_pattern() -> str:
    line = rf"[^;\r\n\x00]{{0,{MAX_INTEREST_LENGTH}}}"
    return rf"{line}(?:[;\r\n]+{line}){{0,{MAX_INTERESTS - 1}}}"


def _worst_bytes(field: Field, per_char: int) -> int:
    """The most bytes `field` can take in a urlencoded body while it follows its rules."""
    return (len(field.name) + 2 + field.max_length * per_char) * field.max_items


def html_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"description": DESCRIPTIONS[code], "content": {"text/html": {}}} for code in codes
    }


def install_openapi(app: FastAPI, forms: WebForms) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _replace_validation_errors(schema)
            _add_form_bodies(schema, forms)
            _redirects_without_body(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_form_bodies(schema: dict[str, Any], forms: WebForms) -> None:
    paths = schema.get("paths", {})
    for (path, method), (rules, multipart) in forms.by_operation().items():
        operation = paths.get(path, {}).get(method)
        if operation is None:
            continue
        body = rules.json_schema()
        encoding = {f.name: {"style": "form", "explode": True} for f in rules.fields}
        content: dict[str, Any] = {
            "application/x-www-form-urlencoded": {"schema": body, "encoding": encoding}
        }
        if multipart:
            content["multipart/form-data"] = {"schema": body}
        operation["requestBody"] = {"required": True, "content": content}
        if "csrf_token" in rules.required:
            operation["security"] = [{CSRF_SCHEME: []}]
    if any("csrf_token" in rules.required for rules, _ in forms.by_operation().values()):
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[CSRF_SCHEME] = {
            "type": "apiKey",
            "in": "cookie",
            "name": "csrf",
            "description": "Double-submit CSRF protection: the random `csrf` cookie set by "
            "the page holding the form, sent back with its signed value in the form's "
            "`csrf_token` field; without both the form is refused with 403",
        }


def _redirects_without_body(schema: dict[str, Any]) -> None:
    """A 303 is an empty answer with a Location, whatever the route's response class."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            redirect = operation.get("responses", {}).get("303")
            if redirect is not None:
                redirect.pop("content", None)
                redirect["headers"] = {
                    "Location": {"description": "The next page", "schema": {"type": "string"}}
                }


def _replace_validation_errors(schema: dict[str, Any]) -> None:
    """The app answers invalid parameters with its 400 page, never FastAPI's 422 JSON."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault(
                    "400", {"description": DESCRIPTIONS[400], "content": {"text/html": {}}}
                )
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    if "components" in schema and not components:
        schema["components"].pop("schemas", None)
        if not schema["components"]:
            schema.pop("components")

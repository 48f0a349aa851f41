"""OpenAPI details for HTML routes, so the published schema says what the app does.

Forms are parsed by hand (strict UTF-8, see forms.py), so their bodies are declared
here; FastAPI's automatic 422 answers are replaced by the 400 page the app returns.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

DESCRIPTIONS = {
    303: "Accepted; see the next page",
    400: "Bad request: unreadable form, invalid field, or an expired or tampered link",
    403: "Missing or wrong CSRF token (reload the form)",
    404: "Not found",
    413: "Request body too large",
    429: "Too many requests from this address; see Retry-After",
}

_TEXT = {"type": "string", "maxLength": 1000}
_SUBSCRIBE_FIELDS = {
    "csrf_token": _TEXT,
    "email": {"type": "string", "maxLength": 320},
    "topic": {"type": "array", "items": {"type": "string", "maxLength": 100}},
    "interests": {"type": "string", "maxLength": 4000},
    "timezone": {"type": "string", "maxLength": 64},
    "paused": {"type": "string", "enum": ["on"]},
    "website": {"type": "string", "description": "Honeypot: leave empty"},
}
FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": _SUBSCRIBE_FIELDS},
                "encoding": {"topic": {"style": "form", "explode": True}},
            }
        },
    }
}
_ONE_CLICK_SCHEMA = {
    "type": "object",
    "properties": {
        "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]},
        "csrf_token": _TEXT,
    },
}
ONE_CLICK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _ONE_CLICK_SCHEMA},
            "multipart/form-data": {"schema": _ONE_CLICK_SCHEMA},
        },
    }
}


def html_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"description": DESCRIPTIONS[code], "content": {"text/html": {}}} for code in codes
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _replace_validation_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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

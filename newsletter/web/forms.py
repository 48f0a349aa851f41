"""Strict parsing of urlencoded form bodies.

Starlette decodes form fields leniently (invalid UTF-8 becomes U+FFFD); here a body
that is not clean UTF-8 is refused, so what is stored is exactly what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

FORM_TYPE = "application/x-www-form-urlencoded"
MULTIPART_TYPE = "multipart/form-data"
MAX_FIELDS = 64


class BadForm(Exception):
    """The request body is not a form this app can read; str() says why."""


@dataclass(frozen=True)
class Form:
    pairs: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.pairs if key == name), default)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


async def read_form(request: Request, allow_multipart: bool = False) -> Form:
    """The urlencoded form of the request (or multipart, which RFC 8058 senders may use)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if allow_multipart and content_type == MULTIPART_TYPE:
        return await _read_multipart(request)
    if content_type != FORM_TYPE:
        raise BadForm(f"send the form as {FORM_TYPE}")
    body = await request.body()
    try:
        text = body.decode("ascii")  # urlencoded bodies are ASCII; anything else is raw bytes
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise BadForm("the form is not valid UTF-8") from None
    except ValueError:
        raise BadForm(f"the form has more than {MAX_FIELDS} fields") from None
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        raise BadForm("the form contains a NUL character")
    return Form(tuple(pairs))


async def _read_multipart(request: Request) -> Form:
    try:
        async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
            pairs = tuple((k, v) for k, v in form.multi_items() if isinstance(v, str))
    except HTTPException as exc:  # Starlette's own multipart errors (malformed, too many parts)
        raise BadForm(f"the form cannot be read: {exc.detail}") from None
    except MultiPartException as exc:
        raise BadForm(f"the form cannot be read: {exc.message}") from None
    return Form(pairs)

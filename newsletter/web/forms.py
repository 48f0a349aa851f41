"""Strict parsing of form bodies, and the field rules each form is checked against.

Starlette decodes form fields leniently (invalid UTF-8 becomes U+FFFD); here a body
that is not clean UTF-8 is refused, so what is stored is exactly what was typed.

The same `FormRules` produce the published OpenAPI request bodies (spec.py), so the
schema and the checks cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

FORM_TYPE = "application/x-www-form-urlencoded"
MULTIPART_TYPE = "multipart/form-data"
OPEN_FORM_FIELDS = 1000  # forms that ignore unknown fields still get a bound


class BadForm(Exception):
    """The request body is not a form this app can read; str() says why."""


class UnsupportedMediaType(BadForm):
    """The body is not sent as a form at all (answered 415)."""


@dataclass(frozen=True)
class Form:
    pairs: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.pairs if key == name), default)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def names(self) -> set[str]:
        return {key for key, _ in self.pairs}


@dataclass(frozen=True)
class Field:
    """One form field. `pattern` must match the whole value (it is anchored when published)."""

    name: str
    max_length: int
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    max_items: int = 1  # more than one: a checkbox group, sent as repeated fields
    email: bool = False
    description: str = ""
    label: str = ""  # how messages name the field; its name when empty

    @cached_property
    def _regex(self) -> re.Pattern[str] | None:
        return re.compile(self.pattern) if self.pattern is not None else None

    def problem(self, values: list[str]) -> str | None:
        label = self.label or repr(self.name)
        if len(values) > self.max_items:
            return f"{label} is sent too many times"
        for value in values:
            if self.choices is not None and value not in self.choices:
                return f"unknown {label} {value[:40]!r}"
            if len(value) > self.max_length:
                return f"{label} is too long (at most {self.max_length} characters)"
            if "\x00" in value or (self._regex is not None and not self._regex.fullmatch(value)):
                return f"{label} is not valid"
        return None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
        if self.choices is not None:
            schema["enum"] = list(self.choices)
        if self.email:
            schema["format"] = "email"
        if self.max_items > 1:
            schema = {"type": "array", "items": schema, "maxItems": self.max_items}
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class FormRules:
    """The fields of one form. A closed form refuses fields it does not know."""

    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    closed: bool = True

    @property
    def max_fields(self) -> int:
        return sum(f.max_items for f in self.fields) if self.closed else OPEN_FORM_FIELDS

    def problem(self, form: Form) -> str | None:
        """Why the form breaks its rules (a sentence fragment), or None."""
        known = {f.name for f in self.fields}
        if self.closed:
            unknown = sorted(form.names() - known)
            if unknown:
                return f"the form has a field it does not expect ({unknown[0][:40]!r})"
        for name in self.required:
            if not form.getlist(name):
                return f"the field {name!r} is required"
        for field in self.fields:
            problem = field.problem(form.getlist(field.name))
            if problem:
                return problem
        return None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.closed:
            schema["additionalProperties"] = False
        return schema


async def read_form(request: Request, rules: FormRules, allow_multipart: bool = False) -> Form:
    """The urlencoded form of the request (or multipart, which RFC 8058 senders may use)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if allow_multipart and content_type == MULTIPART_TYPE:
        return await _read_multipart(request, rules.max_fields)
    if content_type != FORM_TYPE:
        raise UnsupportedMediaType(f"send the form as {FORM_TYPE}")
    body = await request.body()
    try:
        text = body.decode("ascii")  # urlencoded bodies are ASCII; anything else is raw bytes
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=rules.max_fields,
        )
    except UnicodeDecodeError:
        raise BadForm("the form is not valid UTF-8") from None
    except ValueError:
        raise BadForm(f"the form has more than {rules.max_fields} fields") from None
    return Form(tuple(pairs))


async def _read_multipart(request: Request, max_fields: int) -> Form:
    try:
        async with request.form(max_files=0, max_fields=max_fields) as form:
            pairs = tuple((k, v) for k, v in form.multi_items() if isinstance(v, str))
    except HTTPException as exc:  # Starlette's own multipart errors (malformed, too many parts)
        raise BadForm(f"the form cannot be read: {exc.detail}") from None
    except MultiPartException as exc:
        raise BadForm(f"the form cannot be read: {exc.message}") from None
    return Form(pairs)

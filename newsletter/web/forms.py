"""Strict parsing of form bodies, and the field rules each form is checked against.

Starlette decodes form fields leniently (invalid UTF-8 becomes U+FFFD); here a body
that is not clean UTF-8 is refused, so what is stored is exactly what was typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from newsletter.config import Settings
from newsletter.readers.subscriptions import MAX_INTEREST_LENGTH, MAX_INTERESTS

FORM_TYPE = "application/x-www-form-urlencoded"
MULTIPART_TYPE = "multipart/form-data"
PAPERS_MAX = 1000  # characters of typed example papers: about twenty paper links
OPEN_FORM_FIELDS = 1000  # forms that ignore unknown fields still get a bound
_WIDE = 12  # bytes of one percent-encoded 4-byte UTF-8 character
_ASCII = 3  # bytes of one percent-encoded ASCII character


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
    """One form field. `pattern` must match the whole value."""

    name: str
    max_length: int
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    max_items: int = 1  # more than one: a checkbox group, sent as repeated fields
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


@dataclass(frozen=True)
class WebForms:
    """The rules of every form of the site, for one configuration."""

    subscribe: FormRules
    confirm: FormRules
    preferences: FormRules
    papers: FormRules  # the preferences page's "add example papers"
    unsubscribe: FormRules
    interests_max: int  # also the interests box's maxlength


def web_forms(settings: Settings, timezones: tuple[str, ...]) -> WebForms:
    slugs = tuple(t.slug for t in settings.topics)
    csrf = Field("csrf_token", 200, pattern=r"[A-Za-z0-9_.\-]*")
    topic = Field(
        "topic",
        max(map(len, slugs), default=1),
        choices=slugs,
        max_items=max(len(slugs), 1),
        label="topic",
    )
    email = Field("email", 254, label="the email address")
    zone = Field("timezone", 64, choices=("", *timezones), label="time zone")
    website = Field("website", 100, pattern=r"[^\x00]*")  # the honeypot
    # Example papers: arXiv ids and paper URLs, one per line (printable ASCII only).
    papers = Field("papers", PAPERS_MAX, pattern=r"[\x20-\x7e\r\n]*", label="the example papers")
    # Free text may be any character (a refused value still has to be read): 12 bytes each.
    fixed = (
        _worst_bytes(csrf, _ASCII)
        + _worst_bytes(topic, _ASCII)
        + _worst_bytes(zone, _WIDE)
        + _worst_bytes(email, _WIDE)
        + _worst_bytes(website, _WIDE)
        + _worst_bytes(papers, _ASCII)
    )
    interests_max = _interests_max(settings.web.max_body_bytes, fixed)
    interests = Field(
        "interests", interests_max, pattern=_interests_pattern(), label="the interests"
    )
    paused = Field("paused", 2, choices=("on",))
    one_click = Field("List-Unsubscribe", 9, choices=("One-Click",))
    return WebForms(
        subscribe=FormRules(
            (csrf, email, topic, interests, zone, website, papers),
            required=("csrf_token", "email"),
        ),
        confirm=FormRules((csrf,), required=("csrf_token",)),
        preferences=FormRules((csrf, topic, interests, zone, paused), required=("csrf_token",)),
        papers=FormRules((csrf, papers), required=("csrf_token", "papers")),
        # Mailbox providers post RFC 8058 one-click bodies: anything else in them is ignored.
        unsubscribe=FormRules((one_click, csrf), closed=False),
        interests_max=interests_max,
    )


def _interests_max(max_body_bytes: int, fixed: int) -> int:
    """The interests' length limit: what the body limit leaves once the other fields of
    the subscribe form take their most bytes (`fixed`), so a form that follows its rules,
    as the page lets a browser fill it in, is never refused as too large (413)."""
    room = (max_body_bytes - fixed - len("interests=&")) // _WIDE
    # Never below one full interest: a tiny body limit wins over the fit promise above.
    return max(MAX_INTEREST_LENGTH, min(room, MAX_INTERESTS * (MAX_INTEREST_LENGTH + 1)))


def _interests_pattern() -> str:
    line = rf"[^;\r\n\x00]{{0,{MAX_INTEREST_LENGTH}}}"
    return rf"{line}(?:[;\r\n]+{line}){{0,{MAX_INTERESTS - 1}}}"


def _worst_bytes(field: Field, per_char: int) -> int:
    """The most bytes `field` can take in a urlencoded body while it follows its rules."""
    return (len(field.name) + 2 + field.max_length * per_char) * field.max_items


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

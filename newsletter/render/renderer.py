"""Turn view dataclasses into a subject, a text part and an HTML part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2

import newsletter
from newsletter.errors import TemplateError
from newsletter.render.filters import FILTERS
from newsletter.render.mjml import compile_mjml, compile_once, read_from
from newsletter.views import DigestView, Recipient, SiteView

Kind = Literal["digest", "confirm", "welcome", "goodbye"]
KINDS: tuple[Kind, ...] = ("digest", "confirm", "welcome", "goodbye")
NoticeKind = Literal["confirm", "welcome", "goodbye"]


def default_templates_dir() -> Path:
    return Path(newsletter.__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class NoticeView:
    """A one-off notice: confirm (action_url is the confirm link), welcome, goodbye."""

    site: SiteView
    recipient: Recipient
    action_url: str = ""
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _environment(loader: jinja2.BaseLoader | None, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


class Renderer:
    """Loads `templates/email/` once; compiles each MJML template once, on first use."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.directory = (templates_dir or default_templates_dir()) / "email"
        if not self.directory.is_dir():
            raise TemplateError(f"email templates folder {self.directory} does not exist")
        loader = jinja2.FileSystemLoader(self.directory)
        self._text = _environment(loader, autoescape=False)
        # MJML sources and compiled HTML alike: autoescape on, no data is ever |safe.
        self._markup = _environment(loader, autoescape=True)
        self._html: dict[str, jinja2.Template] = {}

    def prepare(self) -> None:
        """Compile every kind now, so a broken template fails at start, not mid-send."""
        for kind in KINDS:
            self.html_template(kind)

    def html_template(self, kind: Kind) -> jinja2.Template:
        template = self._html.get(kind)
        if template is None:
            read = read_from(self.directory)
            html = compile_once(read(f"{kind}.mjml.j2"), read)
            template = self._html[kind] = self._markup.from_string(html)
        return template

    def digest(self, view: DigestView) -> RenderedEmail:
        return self._render(
            "digest", {"digest": view, "site": view.site, "recipient": view.recipient}
        )

    def notice(self, kind: NoticeKind, view: NoticeView) -> RenderedEmail:
        return self._render(kind, {"notice": view, "site": view.site, "recipient": view.recipient})

    def html_per_email(self, kind: Kind, context: dict[str, Any]) -> str:
        """The slow reference path: Jinja over the MJML source, then MJML, every time."""
        return compile_mjml(self._template(self._markup, f"{kind}.mjml.j2").render(context))

    def context_for(self, view: DigestView | NoticeView) -> dict[str, Any]:
        key = "digest" if isinstance(view, DigestView) else "notice"
        return {key: view, "site": view.site, "recipient": view.recipient}

    def _render(self, kind: Kind, context: dict[str, Any]) -> RenderedEmail:
        subject = self._template(self._text, f"{kind}.subject.txt").render(context)
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=self._template(self._text, f"{kind}.txt.j2").render(context),
            html=self.html_template(kind).render(context),
        )

    def _template(self, env: jinja2.Environment, name: str) -> jinja2.Template:
        try:
            return env.get_template(name)
        except jinja2.TemplateNotFound:
            raise TemplateError(f"email template {name!r} is missing") from None

"""Turn view dataclasses into a subject, a text part and an HTML part."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2
from markupsafe import Markup

import newsletter
from newsletter.errors import TemplateError
from newsletter.render.content import DigestItem, DigestView, PaperView, Recipient, SiteView
from newsletter.render.filters import FILTERS
from newsletter.render.mjml import compile_mjml, compile_once, read_from, squeeze

Kind = Literal["digest", "confirm", "welcome", "goodbye"]
KINDS: tuple[Kind, ...] = ("digest", "confirm", "welcome", "goodbye")
NoticeKind = Literal["confirm", "welcome", "goodbye"]
Card = tuple[Markup, str]  # a paper's card as HTML and as plain text
# Paper cards kept per process: a send repeats a few thousand (paper, topic) pairs
# across every reader, each card a few KB of HTML and text.
CARD_CACHE = 4096


def default_templates_dir() -> Path:
    return Path(newsletter.__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class NoticeView:
    """A one-off notice: confirm (action_url is the confirm link), welcome, goodbye."""

    site: SiteView
    recipient: Recipient
    action_url: str = ""
    topics: tuple[str, ...] = ()  # names of the topics the reader picked
    interests: tuple[str, ...] = ()  # what they typed
    delivery: str = ""  # when the digest comes: "every Monday at 08:00 (Europe/Berlin time)"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class _Loader(jinja2.FileSystemLoader):
    """Reads MJML sources squeezed, exactly as the compile-once path reads them."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        return (squeeze(source) if template.endswith(".mjml.j2") else source), filename, uptodate


def _environment(loader: jinja2.BaseLoader | None, markup: bool) -> jinja2.Environment:
    # Markup keeps Jinja's default whitespace handling: the compile-once path inlines
    # includes textually and must leave exactly the text a Jinja render would.
    env = jinja2.Environment(
        loader=loader,
        autoescape=markup,
        undefined=jinja2.StrictUndefined,
        trim_blocks=not markup,
        lstrip_blocks=not markup,
        # Read once per process like the compiled MJML, not stat()ed on every message.
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    return env


@lru_cache(maxsize=8)
def _templates(
    directory: Path,
) -> tuple[jinja2.Environment, jinja2.Environment, dict[str, jinja2.Template]]:
    loader = _Loader(directory)
    # MJML sources and compiled HTML alike: autoescape on, no data is ever |safe.
    return _environment(loader, markup=False), _environment(loader, markup=True), {}


class Renderer:
    """Loads `templates/email/` once; compiles each MJML template once, on first use.

    A paper's card looks the same to every reader who gets it for the same topic, so
    each card is rendered from `_card.mjml.j2` and `_card.txt.j2` once per distinct
    (paper, topic; and the reader's digest link for a paper without a link) and
    reused: the digest templates print `cards` (the HTML cards, escaped markup) and
    loop over `text_cards` ((number, text) pairs).
    card_cache=0 renders every card afresh. `_card.mjml.j2` is the HTML that sits in
    the digest's <mj-text>, which MJML copies through; it is written the way MJML
    prints it (`<img ... />`), so cards skip MJML and the compiled-once output still
    equals MJML per email (tests/test_render.py holds us to that).
    """

    def __init__(self, templates_dir: Path | None = None, card_cache: int = CARD_CACHE) -> None:
        self.directory = (templates_dir or default_templates_dir()).resolve() / "email"
        if not self.directory.is_dir():
            raise TemplateError(f"email templates folder {self.directory} does not exist")
        # Shared by every Renderer of this folder in the process: a web request that
        # makes a Composer does not pay for MJML and Jinja compilation again.
        self._text, self._markup, self._html = _templates(self.directory)
        # Keyed by everything a card shows: the whole frozen PaperView (not its id),
        # the reader's topic and the fallback link; never by the reader's score, which
        # the card does not show and which differs from reader to reader.
        self.card = lru_cache(maxsize=card_cache)(self._render_card)

    def _card_for(self, item: DigestItem, fallback_url: str) -> Card:
        paper = item.paper
        # The fallback (the reader's own digest link) shows only on a paper without a
        # link of its own; keyed by it otherwise, no card would be shared by two readers.
        if paper.url or paper.pdf_url:
            fallback_url = ""
        try:
            return self.card(paper, item.reason, fallback_url)
        except TypeError:  # a view holding a list is not hashable: render it afresh
            return self._render_card(paper, item.reason, fallback_url)

    def _render_card(self, paper: PaperView, reason: str, fallback_url: str) -> Card:
        values = {
            "paper": paper,
            "reason": reason,
            "fallback_url": fallback_url,
            "feedback": Markup(FEEDBACK_SLOT),
        }
        # Rendered with autoescape on, so the HTML is markup already: it goes into
        # each message as it is and every piece of data in it is escaped exactly once.
        html = self._template(self._markup, "_card.mjml.j2").render(values)
        return Markup(html), self._template(self._text, "_card.txt.j2").render(values)

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
        return self._render("digest", self.context_for(view))

    def notice(self, kind: NoticeKind, view: NoticeView) -> RenderedEmail:
        return self._render(kind, self.context_for(view))

    def html_per_email(self, kind: Kind, context: dict[str, Any]) -> str:
        """The slow reference path: Jinja over the MJML source, then MJML, every time."""
        return compile_mjml(self._template(self._markup, f"{kind}.mjml.j2").render(context))

    def context_for(self, view: DigestView | NoticeView) -> dict[str, Any]:
        common = {"site": view.site, "recipient": view.recipient}
        if isinstance(view, NoticeView):
            return {"notice": view, **common}
        cards = [
            _with_feedback(self._card_for(item, view.archive_url), item) for item in view.items
        ]
        return {
            "digest": view,
            **common,
            "cards": Markup("".join([html for html, _ in cards])),
            "text_cards": [(n, text) for n, (_, text) in enumerate(cards, 1)],
        }

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


# Where a card's per-reader "More / Fewer like this" links go: cards are cached and
# shared between readers, the links are each reader's own.
FEEDBACK_SLOT = "<!--tp-feedback-->"
_FEEDBACK_HTML = Markup(
    '<div class="tp-muted" style="color:#6b7280;font-size:13px;margin-top:10px;">'
    '<a href="{more}" class="tp-link" style="color:#4338ca;font-weight:600;">More like this</a>'
    " &middot; "
    '<a href="{fewer}" class="tp-link" style="color:#4338ca;font-weight:600;">Fewer like this</a>'
    "</div>"
)


def _with_feedback(card: Card, item: DigestItem) -> Card:
    html, text = card
    if not (item.more_url and item.fewer_url):
        return Markup(html.replace(FEEDBACK_SLOT, "")), text.replace(FEEDBACK_SLOT, "")
    links = _FEEDBACK_HTML.format(more=item.more_url, fewer=item.fewer_url)
    lines = f"   More like this: {item.more_url}\n   Fewer like this: {item.fewer_url}"
    return Markup(html.replace(FEEDBACK_SLOT, links)), text.replace(FEEDBACK_SLOT, lines)

"""Jinja2 pages from templates/web/, autoescaped: untrusted text is always inert."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

import newsletter
from newsletter.config import Settings
from newsletter.render.content import reason_line

TEMPLATES = Path(newsletter.__file__).resolve().parent.parent / "templates" / "web"


def _day(value: datetime | None) -> str:
    return value.strftime("%b %-d, %Y") if value else ""


def _short_day(value: datetime | None) -> str:
    return value.strftime("%b %-d") if value else ""


def _authors(names: tuple[str, ...], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} +{len(names) - limit}" if len(names) > limit else shown


def _excerpt(text: str, limit: int = 320) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _web_url(value: str | None) -> str | None:
    """Only http(s) links from paper data: never javascript: or data: URLs."""
    return value if value and value.lower().startswith(("https://", "http://")) else None


class Pages:
    def __init__(self, settings: Settings, directory: Path = TEMPLATES) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            autoescape=True,  # every template, whatever its extension
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            day=_day,
            short_day=_short_day,
            authors=_authors,
            excerpt=_excerpt,
            web_url=_web_url,
            reason_line=reason_line,
        )
        self.env.globals.update(site=settings.site, topics=settings.topics)

    def render(self, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**values)
        return HTMLResponse(html, status_code=status_code)

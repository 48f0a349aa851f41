"""Rendering emails from views: pure, no database, no SMTP."""

from newsletter.render.renderer import (
    KINDS,
    Kind,
    NoticeKind,
    NoticeView,
    RenderedEmail,
    Renderer,
    default_templates_dir,
)

__all__ = [
    "KINDS",
    "Kind",
    "NoticeKind",
    "NoticeView",
    "RenderedEmail",
    "Renderer",
    "default_templates_dir",
]

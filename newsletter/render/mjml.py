"""MJML + Jinja: compile the MJML once, keep the Jinja, render only Jinja per message.

A call of mjml2html costs far more than a Jinja render, so each template goes
through MJML once per process. Jinja tags are swapped for inert tokens
before MJML sees them and put back afterwards. Control flow that spans MJML components
(a loop over paper cards, an optional image) sits in `<mj-raw>`, which MJML copies
verbatim at that point of the output, so the compiled HTML is the same as compiling
each rendered message on its own (a test holds us to that).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mjml import mjml2html

from newsletter.errors import TemplateError

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_INCLUDE = re.compile(r"\{%-?\s*include\s+[\"']([^\"']+)[\"']\s*-?%\}")
_TOKEN = re.compile(r"JINJA(\d+)Z")
# Whitespace-only runs between tags (and Jinja tags) that MJML would drop from the
# rendered HTML, while a Jinja tag standing in between would make it keep them.
_GAPS = re.compile(r"(>|%\})\s+(?=<|\{%)|(\}\})\s*\n\s*(?=<)")


def squeeze(source: str) -> str:
    """The MJML source both paths read, so compiled-once and per-email agree."""
    return _GAPS.sub(lambda m: m[1] or m[2], source)


def compile_mjml(source: str) -> str:
    """MJML to HTML with MJML's defaults; one place so both paths use the same options."""
    try:
        # fonts={}: MJML would otherwise link Google Fonts for Roboto & co, a remote
        # request from every reader's mail client.
        html: str = mjml2html(source, disable_comments=True, fonts={})
    except Exception as exc:  # mjml raises its own exception types; name the problem
        raise TemplateError(f"MJML could not compile the template: {exc}") from None
    return html


def expand_includes(source: str, read: Callable[[str], str], depth: int = 0) -> str:
    """Inline `{% include "x" %}` as Jinja would (same context, trailing newline dropped)."""
    if depth > 10:
        raise TemplateError("email templates include each other in a loop")

    def inline(match: re.Match[str]) -> str:
        text = read(match[1])
        text = text.removesuffix("\n")
        return expand_includes(text, read, depth + 1)

    return _INCLUDE.sub(inline, source)


def compile_once(source: str, read: Callable[[str], str]) -> str:
    """A Jinja template of the final HTML, made from an MJML + Jinja template."""
    source = expand_includes(source, read)
    blocks: list[str] = []

    def protect(match: re.Match[str]) -> str:
        blocks.append(match[0])
        return f"JINJA{len(blocks) - 1}Z"

    html = compile_mjml(_JINJA.sub(protect, source))
    found = [int(m[1]) for m in _TOKEN.finditer(html)]
    if set(found) != set(range(len(blocks))):
        # MJML dropped a tag, or put it in an attribute it rewrites; duplicates are fine
        # (mj-title is printed twice).
        raise TemplateError("a Jinja tag does not survive MJML; wrap it in <mj-raw>")
    return _TOKEN.sub(lambda m: blocks[int(m[1])], html)


def read_from(directory: Path) -> Callable[[str], str]:
    def read(name: str) -> str:
        try:
            text = (directory / name).read_text(encoding="utf-8")
            return squeeze(text) if name.endswith(".mjml.j2") else text
        except OSError as exc:
            raise TemplateError(f"email template {name!r} cannot be read: {exc}") from None

    return read

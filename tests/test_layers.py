"""Layers point one way (see DESIGN.md): walk every module's imports and check them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"

ENTRY_POINTS = ("newsletter.cli", "newsletter.web", "newsletter.scheduler")
STORAGE = ("newsletter.store", "newsletter.db", "newsletter.models", "newsletter.context")
PURE = (
    "newsletter.sources",
    "newsletter.matching",
    "newsletter.render",
    "newsletter.mail",
    "newsletter.tokens",
    "newsletter.records",
    "newsletter.views",
    "newsletter.addresses",
    "newsletter.http",
)
SERVICES = (
    "newsletter.ingest",
    "newsletter.digest",
    "newsletter.outbox",
    "newsletter.notices",
    "newsletter.compose",
    "newsletter.relevance",
    "newsletter.subscriptions",
    "newsletter.archive",
    "newsletter.status",
    "newsletter.demo",
    "newsletter.jobs",
    "newsletter.marks",
    "newsletter.sending",
)
SERVICES_AND_UP = (*SERVICES, *ENTRY_POINTS)

# module prefix → prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "newsletter.errors": ("newsletter.",),
    "newsletter.config": tuple(p for p in (*STORAGE, *PURE, *SERVICES_AND_UP)),
    **{pure: (*STORAGE, *SERVICES_AND_UP) for pure in PURE},
    "newsletter.store": (
        *ENTRY_POINTS,
        "newsletter.mail",
        "newsletter.render",
        "newsletter.outbox",
        "newsletter.digest",
        "newsletter.notices",
        "newsletter.compose",
    ),
    "newsletter.models": ("newsletter.store", *ENTRY_POINTS),
    **{svc: ENTRY_POINTS for svc in SERVICES_AND_UP if svc not in ENTRY_POINTS},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("newsletter")}


def rules_for(module: str) -> tuple[str, ...]:
    forbidden: tuple[str, ...] = ()
    for prefix, banned in FORBIDDEN.items():
        if module == prefix or module.startswith(prefix + "."):
            forbidden += banned
    return forbidden


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_modules_import_only_downward(path: Path) -> None:
    module = module_name(path)
    banned = rules_for(module)
    wrong = sorted(
        name
        for name in imports_of(path)
        if any(
            name == b.rstrip(".") or name.startswith(b if b.endswith(".") else b + ".") or name == b
            for b in banned
        )
        and not name.startswith(module)
    )
    assert not wrong, f"{module} imports {wrong}"

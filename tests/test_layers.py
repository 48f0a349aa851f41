"""Who may import whom: the flow ingest → planning → delivery, on top of the store and
the pure parts, under thin entry points (see DESIGN.md and the README's tree).

Each part lists what it may import from the package besides itself; entry points
(`cli`, `web`, `scheduler`, `demo`) may import anything below them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"

BASICS = ("newsletter.errors", "newsletter.config", "newsletter.__version__")
PURE = (
    "newsletter.tokens",
    "newsletter.sources",
    "newsletter.matching",
    "newsletter.render",
    "newsletter.mail",
)
BELOW_SERVICES = (*BASICS, *PURE, "newsletter.store", "newsletter.runtime")

# part → the parts it may import (its own modules always)
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "newsletter.errors": (),
    "newsletter.config": ("newsletter.errors",),
    **{pure: BASICS for pure in PURE},
    # The store keeps what sources produce; it knows nothing of mail, rendering or
    # matching, and nothing of the services above it.
    "newsletter.store": (*BASICS, "newsletter.sources.records"),
    "newsletter.runtime": (*BASICS, "newsletter.store"),
    # Services, in the order of the flow: each may use those before it.
    "newsletter.ingest": BELOW_SERVICES,
    "newsletter.planning": BELOW_SERVICES,
    "newsletter.status": (*BELOW_SERVICES, "newsletter.planning"),
    "newsletter.readers": (*BELOW_SERVICES, "newsletter.planning"),
    "newsletter.delivery": (*BELOW_SERVICES, "newsletter.planning", "newsletter.readers"),
    # What comes back after sending (bounces, complaints, webhooks) acts on readers.
    "newsletter.returns": (*BELOW_SERVICES, "newsletter.planning", "newsletter.readers"),
}
ENTRY_POINTS = (
    "newsletter.cli",
    "newsletter.web",
    "newsletter.scheduler",
    "newsletter.demo",
    "newsletter.__main__",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every newsletter module (or module attribute) a file imports, at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("newsletter.")}


def part_of(module: str) -> str:
    return next(
        (p for p in (*MAY_IMPORT, *ENTRY_POINTS) if module == p or module.startswith(p + ".")),
        module,
    )


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_modules_import_only_what_their_layer_allows(path: Path) -> None:
    module = module_name(path)
    part = part_of(module)
    if part in ENTRY_POINTS or module == "newsletter":
        return
    assert part in MAY_IMPORT, f"{module} belongs to no layer: add it to MAY_IMPORT"
    allowed = (part, *MAY_IMPORT[part])
    wrong = sorted(name for name in imports_of(path) if not within(name, allowed))
    assert not wrong, f"{module} imports {wrong}"


def test_every_part_of_the_package_has_a_place_in_the_layers() -> None:
    top = {
        f"newsletter.{p.stem if p.is_file() else p.name}"
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    placed = set(MAY_IMPORT) | set(ENTRY_POINTS)
    assert top <= placed, f"not in the layers: {sorted(top - placed)}"


def test_the_top_level_holds_at_most_a_dozen_modules() -> None:
    modules = [p.name for p in PACKAGE.glob("*.py")]
    assert len(modules) <= 12, modules


def test_no_module_outside_the_migrations_exceeds_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in MODULES
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, long


# What outside the store may take from SQLAlchemy: names for annotations and the
# errors to catch; a URL parser for config. Everything that builds or runs SQL stays in it.
SQLALCHEMY_ALLOWED = {
    "sqlalchemy": {"Engine", "Connection"},
    "sqlalchemy.orm": {"Session", "sessionmaker"},
    "sqlalchemy.engine": {"Engine", "Connection", "make_url"},
}
SQL_CALLS = {"execute", "exec_driver_sql", "flush", "add", "add_all"}
SQL_BUILDERS = {"create_engine", "sessionmaker", "connect"}


def _sql_outside_the_store(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
        found += [f"{where} {problem}" for problem in _sql_in(node)]
    return found


def _sql_in(node: ast.AST) -> list[str]:
    """What in this one node builds or runs SQL."""
    if isinstance(node, ast.Import):
        return [f"imports {a.name}" for a in node.names if a.name.startswith("sqlalchemy")]
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
        module = node.module or ""
        allowed = SQLALCHEMY_ALLOWED.get(module, set())
        if module == "sqlalchemy.exc":
            return []
        return [f"imports {module}.{a.name}" for a in node.names if a.name not in allowed]
    if isinstance(node, ast.Call):
        return _sql_call(node.func)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and "PRAGMA" in node.value:
        return ["holds a PRAGMA"]
    return []


def _sql_call(function: ast.expr) -> list[str]:
    if isinstance(function, ast.Name) and function.id in SQL_BUILDERS:
        return [f"calls {function.id}(…)"]
    if not isinstance(function, ast.Attribute):
        return []
    receiver = ast.unparse(function.value)
    on_the_database = "session" in receiver or "connection" in receiver
    if function.attr in SQL_CALLS and on_the_database:
        return [f"calls {receiver}.{function.attr}(…)"]
    if function.attr in SQL_BUILDERS and (function.attr != "connect" or "engine" in receiver):
        return [f"calls {receiver}.{function.attr}(…)"]
    return []


def test_sql_statements_live_only_in_the_store() -> None:
    store = PACKAGE / "store"
    outside = [p for p in sorted(PACKAGE.rglob("*.py")) if store not in p.parents]
    found = [problem for path in outside for problem in _sql_outside_the_store(path)]
    assert not found, "\n".join(found)

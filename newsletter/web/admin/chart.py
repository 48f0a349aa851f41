"""The readers-over-time chart as plain SVG geometry, drawn by the template.

Server-side and script-free: the CSP allows no inline script or style, and a chart
library would be the only script on the page. Colours come from admin.css classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28  # room for the axis labels


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the viewBox
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    line: str  # polyline points
    area: str  # path of the area under the line
    dots: tuple[tuple[float, float, str], ...]  # (x, y, tooltip) per point
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    baseline: float
    description: str  # for screen readers: the numbers in words


def growth_chart(points: Sequence[tuple[datetime, int]]) -> Chart:
    values = [n for _, n in points]
    top = _nice_max(max(values, default=0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / max(len(points) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + i * step, 1)

    def y(value: float) -> float:
        return round(TOP + inner_h - value / top * inner_h, 1)

    coords = [(x(i), y(n)) for i, n in enumerate(values)]
    line = " ".join(f"{cx},{cy}" for cx, cy in coords)
    baseline = y(0)
    area = ""
    if coords:
        area = f"M{coords[0][0]},{baseline} " + " ".join(f"L{cx},{cy}" for cx, cy in coords)
        area += f" L{coords[-1][0]},{baseline} Z"
    dots = tuple(
        (cx, cy, f"{at:%b %-d}: {n}") for (cx, cy), (at, n) in zip(coords, points, strict=True)
    )
    y_ticks = tuple(Tick(y(top * k / 4), _label(top * k / 4)) for k in range(5))
    every = max(1, len(points) // 6)  # about six dates fit at any width
    x_ticks = tuple(
        Tick(x(i), f"{at:%b %-d}") for i, (at, _) in enumerate(points) if i % every == 0
    )
    first, last = (values[0], values[-1]) if values else (0, 0)
    description = f"Readers on the list over {len(points)} weeks: from {first} to {last}."
    return Chart(WIDTH, HEIGHT, line, area, dots, y_ticks, x_ticks, baseline, description)


def _nice_max(value: int) -> int:
    """The axis top: the value rounded up to 1, 2 or 5 × a power of ten (at least 4)."""
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(value)) - 1)
    top: int = next(f * magnitude for f in (1, 2, 5, 10) if value <= f * magnitude)
    return top


def _label(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"

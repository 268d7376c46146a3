"""Line charts as inline SVG for the run page: no plotting library to start, no image files to
write, and sharp at any zoom. A chart is a few polylines (with optional interval bands) over
axes with round-numbered ticks, on a linear or logarithmic value axis."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

WIDTH, HEIGHT = 380, 220
LEFT, RIGHT, TOP, BOTTOM = 50, 10, 34, 30
MAX_POINTS = 400  # per line: a 10^4-iteration curve is thinned to this many points (drawn the same at this size)


@dataclass
class Series:
    """One line: ``x`` and ``y`` of equal length; ``low``/``high`` an optional band around it."""

    label: str | None
    colour: str
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    width: float = 1.6
    opacity: float = 1.0
    markers: bool = False


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round numbers (1, 2 or 5 times a power of ten apart) covering ``[low, high]``, about ``count`` of them."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10.0 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int(math.floor((high - first) / step + 1e-9)) + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten inside ``[low, high]`` (both > 0); 1-2-5 steps when fewer than two decades fit."""
    decades = [10.0 ** k for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
    inside = [d for d in decades if low <= d * (1 + 1e-9) and d <= high * (1 + 1e-9)]
    if len(inside) >= 2:
        return inside
    return [d * m for d in decades for m in (1, 2, 5) if low <= d * m * (1 + 1e-9) and d * m <= high * (1 + 1e-9)]


def thin(x: np.ndarray, *arrays: np.ndarray | None, limit: int = MAX_POINTS) -> list:
    """Every ``k``-th point (and the last) so that at most about ``limit`` remain."""
    step = max(1, math.ceil(len(x) / limit))
    keep = np.unique(np.append(np.arange(0, len(x), step), len(x) - 1)) if len(x) else np.arange(0)
    return [x[keep], *(a[keep] if a is not None else None for a in arrays)]


def line_chart(series: list[Series], title: str, x_label: str, y_label: str, log_y: bool = False,
               width: int = WIDTH, height: int = HEIGHT) -> str:
    """An SVG element (a string) drawing ``series`` on shared axes, with a legend of the labelled ones."""
    finite = [np.asarray(v, dtype=float) for s in series for v in (s.y, s.low, s.high) if v is not None]
    values = np.concatenate([v[np.isfinite(v) & ((v > 0) if log_y else True)] for v in finite]) if finite else np.array([])
    xs = np.concatenate([np.asarray(s.x, dtype=float) for s in series]) if series else np.array([])
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}">',
             f'<text x="{LEFT}" y="13" class="chart-title">{escape(title)}</text>']
    if not len(values) or not len(xs):
        parts.append(f'<text x="{LEFT}" y="{TOP + plot_h / 2:.0f}" class="chart-note">no values</text></svg>')
        return "".join(parts)
    axes = Axes.fitted(xs, values, log_y, plot_w, plot_h)
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="chart-frame"/>')
    parts.extend(grid_lines(axes))
    parts.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{height - 4}" class="chart-label" text-anchor="middle">'
                 f'{escape(x_label)}</text>'
                 f'<text transform="translate(11 {TOP + plot_h / 2:.0f}) rotate(-90)" class="chart-label" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    for s in series:
        parts.extend(series_shapes(s, axes))
    parts.extend(legend(series))
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Axes:
    """Where a chart draws values: the ranges its plot spans (the value axis in decades when
    ``log_y``) and the plot's size in pixels."""

    x_low: float
    x_high: float
    y_low: float
    y_high: float
    log_y: bool
    plot_w: int
    plot_h: int

    @classmethod
    def fitted(cls, xs: np.ndarray, values: np.ndarray, log_y: bool, plot_w: int, plot_h: int) -> Axes:
        """Axes spanning ``xs`` and, padded by 4 % at each end, ``values`` (all finite, > 0 when ``log_y``)."""
        x_low, x_high = float(xs.min()), float(xs.max())
        if x_high == x_low:
            x_low, x_high = x_low - 1, x_high + 1
        y_low, y_high = float(values.min()), float(values.max())
        if log_y:
            y_low, y_high = math.log10(y_low), math.log10(y_high)
        if y_high == y_low:
            y_low, y_high = y_low - 0.5, y_high + 0.5
        pad = 0.04 * (y_high - y_low)
        return cls(x_low, x_high, y_low - pad, y_high + pad, log_y, plot_w, plot_h)

    def px(self, x):
        return LEFT + (np.asarray(x, dtype=float) - self.x_low) / (self.x_high - self.x_low) * self.plot_w

    def py(self, y):
        y = np.asarray(y, dtype=float)
        if self.log_y:
            y = np.log10(np.where(y > 0, y, np.nan))
        return TOP + (1.0 - (y - self.y_low) / (self.y_high - self.y_low)) * self.plot_h


def grid_lines(axes: Axes) -> list[str]:
    """The grid and tick labels: round values up the value axis, round iterations along the other."""
    parts = []
    y_ticks = log_ticks(10 ** axes.y_low, 10 ** axes.y_high) if axes.log_y else nice_ticks(axes.y_low, axes.y_high)
    for tick in y_ticks:
        y = float(axes.py(tick))
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + axes.plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="chart-grid"/>'
                     f'<text x="{LEFT - 4}" y="{y + 3:.1f}" class="chart-tick" text-anchor="end">{tick:g}</text>')
    for tick in nice_ticks(axes.x_low, axes.x_high):
        x = float(axes.px(tick))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + axes.plot_h}" class="chart-grid"/>'
                     f'<text x="{x:.1f}" y="{TOP + axes.plot_h + 12}" class="chart-tick" '
                     f'text-anchor="middle">{tick:g}</text>')
    return parts


def series_shapes(s: Series, axes: Axes) -> list[str]:
    """One series: its band (if it has one), its line, and its markers (if asked for)."""
    parts = []
    x, y, low, high = thin(np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float), s.low, s.high)
    px = axes.px(x)
    if low is not None and high is not None:
        upper = [f"{a:.1f},{b:.1f}" for a, b in zip(px, axes.py(high)) if math.isfinite(b)]
        lower = [f"{a:.1f},{b:.1f}" for a, b in zip(px[::-1], axes.py(low)[::-1]) if math.isfinite(b)]
        parts.append(f'<polygon points="{" ".join(upper + lower)}" fill="{s.colour}" fill-opacity="0.18" '
                     'stroke="none"/>')
    points = [f"{a:.1f},{b:.1f}" for a, b in zip(px, axes.py(y)) if math.isfinite(b)]
    parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{s.colour}" '
                 f'stroke-width="{s.width}" stroke-opacity="{s.opacity}"/>')
    if s.markers:
        parts.extend(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.2" fill="{s.colour}"/>'
                     for p in points)
    return parts


def legend(series: list[Series]) -> list[str]:
    """A swatch and the label of each labelled series, in a row above the plot."""
    parts = []
    legend_x = LEFT
    for s in series:
        if s.label:
            parts.append(f'<rect x="{legend_x}" y="19" width="9" height="9" fill="{s.colour}"/>'
                         f'<text x="{legend_x + 12}" y="27" class="chart-tick">{escape(s.label)}</text>')
            legend_x += 18 + 6 * len(s.label)
    return parts

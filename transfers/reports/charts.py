"""Inline SVG charts for the reports: line and bar charts, drawn as text.

The reports are opened on locked-down machines and must never call out, so a
chart is a few SVG shapes written into the page: no script, no stylesheet or
font fetched, not even an ``xmlns`` URL (inline SVG in HTML needs none). Each
chart is an image to assistive technology (``role="img"``) labelled by its
``<title>`` and a ``<desc>`` that lists every figure, and each figure drawn
has a ``<title>`` of its own (a tooltip), so a screen reader, a text search
and a mouse all reach the numbers. Shapes are dark on white with black text
and light dashed grid lines, so a chart printed in grey reads the same; the
one highlighted mark (this run) differs in shape and weight as well as colour.

Every label is escaped here: callers pass plain text (dates, flow ids,
partner names from config) and get back markup that is safe to place in the
page as is. Values are numbers; ``None`` is "no figure" (a gap, never a zero).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

Value = float | int | None
Formatter = Callable[[float], str]
Kind = Literal["line", "bar"]

INK = "#1b1b1b"  # text and lines: black on paper
MARK = "#35506b"  # bars and points: a dark slate that prints as a dark grey
HIGHLIGHT = "#b45309"  # this run: also drawn larger and labelled, never told by colour alone
GRID = "#b8b8b8"
FONT_SIZE = 12
_CHAR_WIDTH = 0.62 * FONT_SIZE  # a generous average glyph width, to keep labels from overlapping


@dataclass(frozen=True)
class Frame:
    """A chart's size and the margins around its plot area, in SVG user units (CSS pixels)."""

    width: int = 640
    height: int = 220
    left: int = 56
    right: int = 16
    top: int = 20
    bottom: int = 30

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def baseline(self) -> float:
        return self.height - self.bottom

    def y(self, value: float, top: float) -> float:
        """The y coordinate of ``value`` on an axis from 0 (the baseline) to ``top`` (the plot's top edge)."""
        return self.baseline - (min(max(value, 0.0), top) / top) * self.plot_height


def count(value: float) -> str:
    """``1234`` -> ``1,234``; a fraction keeps one decimal (an axis tick halfway to an odd number)."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def percent(share: float) -> str:
    """A share of 1 as a percentage: ``0.125`` -> ``12.5%``, ``0.1`` -> ``10%``."""
    text = f"{share * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def nice_top(largest: float, *, cap: float | None = None) -> float:
    """The axis top: ``largest`` rounded up to 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 or 10 times a power of ten.

    Never below ``largest`` (no mark is cut off), never above ``cap`` (a share tops out at 100%).
    A ``largest`` of zero or less gives 1 (or ``cap``, when smaller), so an all-zero series is a flat line.
    """
    if largest <= 0:
        return min(1.0, cap) if cap is not None else 1.0
    power = 10.0 ** math.floor(math.log10(largest))
    top = next(step * power for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * power >= largest * (1 - 1e-12))
    return min(top, cap) if cap is not None and largest <= cap else top


def chart(
    kind: Kind,
    labels: Sequence[str],
    values: Sequence[Value],
    *,
    ident: str,
    title: str,
    fmt: Formatter = count,
    top: float | None = None,
    highlight: int | None = None,
    frame: Frame = Frame(),
) -> str:
    """A ``line`` through ``values`` at evenly spaced ``labels`` (a ``None`` breaks it), or a ``bar`` per label.

    A bar is labelled with its figure where the label fits above it; a zero is a bar of no height,
    labelled ``0``; a ``None`` draws nothing and is told as "no figure".

    Args:
        ident: unique on the page (letters, digits, ``-``); ids of the title and description derive from it.
        title: what the chart shows; the description adds each label with its figure.
        fmt: formats a value for the axis, the labels and the description.
        top: the axis top (default: :func:`nice_top` of the largest value); pass one to compare charts.
        highlight: the index of the mark to stand out (this run): larger, outlined, and labelled with its figure.
    """
    top = top if top is not None else nice_top(max((v for v in values if v is not None), default=0))
    parts = _open(ident, title, labels, values, fmt, frame)
    if labels:
        draw = _line if kind == "line" else _bars
        parts += draw(labels, values, fmt, top, highlight, frame)
    return "".join(parts) + "</svg>"


def _line(
    labels: Sequence[str], values: Sequence[Value], fmt: Formatter, top: float, highlight: int | None, frame: Frame
) -> list[str]:
    xs = _xs(len(labels), frame, inset=0.0)
    parts = _y_axis(top, fmt, frame) + _x_labels(labels, xs, frame)
    for run in _runs(values, xs, frame, top):
        if len(run) > 1:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            parts.append(f'<polyline class="line" points="{coords}" fill="none" stroke="{MARK}" stroke-width="2"/>')
    for i, (x, v) in enumerate(zip(xs, values, strict=True)):
        if v is None:
            continue
        y, tip = frame.y(v, top), f"<title>{escape(labels[i])}: {escape(fmt(v))}</title>"
        if i == highlight:  # a square among circles: told by shape as well as colour
            parts.append(
                f'<rect class="point current" x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" '
                f'fill="{HIGHLIGHT}" stroke="{INK}" stroke-width="1.5">{tip}</rect>'
            )
            parts.append(_text(x, max(y - 9, FONT_SIZE), fmt(v), anchor=_anchor(x, frame), weight="bold"))
        else:
            parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{MARK}">{tip}</circle>')
    return parts


def _bars(
    labels: Sequence[str], values: Sequence[Value], fmt: Formatter, top: float, highlight: int | None, frame: Frame
) -> list[str]:
    slot = frame.plot_width / len(labels)
    bar = max(min(slot * 0.7, 48.0), 1.0)
    xs = _xs(len(labels), frame, inset=slot / 2)
    parts = _y_axis(top, fmt, frame) + _x_labels(labels, xs, frame)
    for i, (x, v) in enumerate(zip(xs, values, strict=True)):
        if v is None:
            continue
        y, current = frame.y(v, top), i == highlight
        look = (
            f'class="bar current" fill="{HIGHLIGHT}" stroke="{INK}" stroke-width="2"'
            if current
            else f'class="bar" fill="{MARK}"'
        )  # outlined as well as coloured
        parts.append(
            f'<rect {look} x="{x - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" '
            f'height="{frame.baseline - y:.1f}"><title>{escape(labels[i])}: {escape(fmt(v))}</title></rect>'
        )
        if len(fmt(v)) * _CHAR_WIDTH <= slot or current:
            parts.append(_text(x, max(y - 4, FONT_SIZE), fmt(v), weight="bold" if current else None))
    return parts


def describe(title: str, labels: Sequence[str], values: Sequence[Value], fmt: Formatter = count) -> str:
    """The chart in words (its ``<desc>``): the title, then each label with its figure."""
    if not labels:
        return f"{title}: no figures yet."
    figures = "; ".join(
        f"{label}: {'no figure' if v is None else fmt(v)}" for label, v in zip(labels, values, strict=True)
    )
    return f"{title}: {figures}."


def _open(
    ident: str, title: str, labels: Sequence[str], values: Sequence[Value], fmt: Formatter, frame: Frame
) -> list[str]:
    if len(labels) != len(values):
        raise ValueError(f"chart {ident!r}: {len(labels)} labels but {len(values)} values")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", ident):
        raise ValueError(f"chart id {ident!r}: use letters, digits and '-', starting with a letter")
    parts = [
        f'<svg class="chart" id="{ident}" role="img" aria-labelledby="{ident}-title {ident}-desc" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" height="{frame.height}" '
        f'font-size="{FONT_SIZE}" font-family="inherit" fill="{INK}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(describe(title, labels, values, fmt))}</desc>',
        f'<line class="baseline" x1="{frame.left}" y1="{frame.baseline}" x2="{frame.width - frame.right}" '
        f'y2="{frame.baseline}" stroke="{INK}" stroke-width="1"/>',
    ]
    if not labels:
        parts.append(_text(frame.left + frame.plot_width / 2, frame.top + frame.plot_height / 2, "No figures yet"))
    return parts


def _xs(n: int, frame: Frame, *, inset: float) -> list[float]:
    """``n`` evenly spaced x positions across the plot, ``inset`` in from each end; one point sits in the middle."""
    if n == 1:
        return [frame.left + frame.plot_width / 2]
    step = (frame.plot_width - 2 * inset) / (n - 1)
    return [frame.left + inset + i * step for i in range(n)]


def _runs(values: Sequence[Value], xs: Sequence[float], frame: Frame, top: float) -> list[list[tuple[float, float]]]:
    """The unbroken stretches of the line: a missing figure starts a new one."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, v in zip(xs, values, strict=True):
        if v is None:
            runs.append([])
        else:
            runs[-1].append((x, frame.y(v, top)))
    return [r for r in runs if r]


def _y_axis(top: float, fmt: Formatter, frame: Frame) -> list[str]:
    parts = []
    # a halfway tick only where it is a figure the axis can show (7.5 records is not one)
    ticks = (top / 2, top) if fmt is not count or float(top / 2).is_integer() else (top,)
    for tick in ticks:
        y = frame.y(tick, top)
        parts.append(
            f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" x2="{frame.width - frame.right}" '
            f'y2="{y:.1f}" stroke="{GRID}" stroke-width="1" stroke-dasharray="3 3"/>'
        )
    for tick in (0.0, *ticks):
        parts.append(_text(frame.left - 6, frame.y(tick, top) + FONT_SIZE / 3, fmt(tick), anchor="end"))
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float], frame: Frame) -> list[str]:
    """Labels under the x axis; when they would overlap, every k-th one, always with the last (this run)."""
    # 1.5 label widths apart: the end labels are anchored inwards, so they reach a whole width from their mark
    widest = 1.5 * max(len(label) for label in labels) * _CHAR_WIDTH + 8
    spacing = frame.plot_width / max(len(labels) - 1, 1) if len(labels) > 1 else frame.plot_width
    every = max(1, math.ceil(widest / spacing))
    last = len(labels) - 1
    shown = [i for i in range(len(labels)) if (last - i) % every == 0]
    y = frame.baseline + FONT_SIZE + 6
    return [_text(xs[i], y, labels[i], anchor=_anchor(xs[i], frame)) for i in shown]


def _anchor(x: float, frame: Frame) -> str:
    """Keep a label inside the chart: near an edge it grows inwards."""
    if x - frame.left < 30:
        return "start" if x < frame.left + 4 else "middle"
    if frame.width - frame.right - x < 30:
        return "end" if x > frame.width - frame.right - 4 else "middle"
    return "middle"


def _text(x: float, y: float, text: str, *, anchor: str = "middle", weight: str | None = None) -> str:
    bold = f' font-weight="{weight}"' if weight else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{bold}>{escape(text)}</text>'

"""The few SVG primitives the docs' figure scripts share (no plotting dependency, deterministic).

Each ``docs/gen_*_figure.py`` computes its picture with the library, draws it with these and
writes it with `write_or_check`, so ``--check`` (run by the tests) fails when a committed
figure no longer matches what the library does.
"""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path

FONT = 'font-family="sans-serif"'
INK = "#111"
GREY = "#888"
WRITE = "#e15759"  # what a write reached
READ = "#4e79a7"  # what a read asked
FALLBACK = "#f28e2b"
OK = "#59a14f"


def document(width: int, height: int, parts: list[str]) -> str:
    """A whole SVG document with a white background."""
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT}>'
    )
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{INK}"/></marker></defs>'
    )
    background = f'<rect width="{width}" height="{height}" fill="#fff"/>'
    return "\n".join([head, marker, background, *parts, "</svg>"]) + "\n"


def text(
    x: float,
    y: float,
    content: str,
    *,
    size: int = 12,
    anchor: str = "middle",
    bold: bool = False,
    fill: str = INK,
) -> str:
    """A line of text (escaped)."""
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{fill}"{weight}>{escape(content)}</text>'
    )


def circle(x: float, y: float, r: float, *, fill: str, stroke: str = INK, width: float = 1) -> str:
    """A circle."""
    return (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="{width}"/>'
    )


def rect(
    x: float, y: float, w: float, h: float, *, fill: str, stroke: str = INK, dash: bool = False
) -> str:
    """A rounded rectangle."""
    dashes = ' stroke-dasharray="5,3"' if dash else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" fill="{fill}" '
        f'stroke="{stroke}"{dashes}/>'
    )


def arrow(
    x1: float, y1: float, x2: float, y2: float, *, colour: str = INK, dash: bool = False
) -> str:
    """A line with an arrowhead at its end."""
    dashes = ' stroke-dasharray="5,3"' if dash else ""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
        f'stroke-width="1.5"{dashes} marker-end="url(#arrow)"/>'
    )


def write_or_check(out: Path, svg: str, argv: list[str] | None, script: str) -> int:
    """Write `svg` to `out`, or with ``--check`` in `argv` return 1 if `out` differs."""
    if argv is None:
        argv = sys.argv[1:]
    if "--check" in argv:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != svg:
            print(f"{out} is out of date: run python docs/{script}", file=sys.stderr)
            return 1
        return 0
    out.write_text(svg, encoding="utf-8")
    print(f"wrote {out}")
    return 0

"""Write the coordinators' state diagrams (SVG) and tables into docs/concepts/ from the code.

The diagrams and transition tables are generated from ``PutCoordinator.TRANSITIONS`` and
``GetCoordinator.TRANSITIONS`` — the same rows the coordinators move along — so the docs cannot
drift from the code. ``tests/test_quorum_docs.py`` fails when the page or a figure is out of
date. The SVG is written by hand (no plotting dependency, no JavaScript), so the site shows the
diagrams offline; it is deterministic.

Usage::

    python docs/gen_quorum_diagrams.py           # rewrite the generated sections
    python docs/gen_quorum_diagrams.py --check   # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for the sibling helper _svg

import _svg

from dynamo_core.quorum import GetCoordinator, PutCoordinator, Transition

PAGE = Path(__file__).parent / "concepts" / "quorum.md"
COORDINATORS = {"put": PutCoordinator.TRANSITIONS, "get": GetCoordinator.TRANSITIONS}
STATES = ("IDLE", "WAITING", "DRAINING", "CLOSED")
WIDTH, HEIGHT, Y = 900, 270, 120  # the states sit on one row at height Y
X = {"IDLE": 150, "WAITING": 350, "DRAINING": 580, "CLOSED": 790}
BOX_W, BOX_H = 120, 36


def figure(name: str) -> Path:
    return PAGE.parent / f"quorum-{name}.svg"


def edges(rows: Sequence[Transition]) -> dict[tuple[str, str], list[str]]:
    """One arrow per (source, target), its events joined, in the order of the rows."""
    out: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        out.setdefault((row.source.value, row.target.value), []).append(row.event.value)
    return out


def _label(x: float, y: float, label: str, width: int, *, above: bool = False) -> list[str]:
    """Wrapped text centred on `x`: its first line at `y`, or its last line there if `above`."""
    lines = textwrap.wrap(label, width)
    top = y - 14 * (len(lines) - 1) if above else y
    return [_svg.text(x, top + 14 * i, line) for i, line in enumerate(lines)]


def svg(name: str, rows: Sequence[Transition]) -> str:
    """The state diagram of one coordinator as a standalone SVG."""
    y, half_w, half_h = Y, BOX_W / 2, BOX_H / 2
    parts = [
        f"<title>{name.capitalize()}Coordinator states and transitions</title>",
        _svg.circle(40, y, 8, fill=_svg.INK),
        _svg.arrow(48, y, X["IDLE"] - half_w, y),
        _svg.circle(WIDTH - 30, y, 9, fill="none", width=2),
        _svg.circle(WIDTH - 30, y, 5, fill=_svg.INK),
        _svg.arrow(X["CLOSED"] + half_w, y, WIDTH - 41, y),
    ]
    for (source, target), events in edges(rows).items():
        label = ", ".join(events)
        xs, xt = X[source], X[target]
        parts.append(f'<g data-from="{source}" data-to="{target}">')
        if source == target:  # a loop above the state
            top = y - half_h
            parts.append(
                _path(
                    f"M{xs - 22},{top} C{xs - 40},{top - 55} {xs + 40},{top - 55} {xs + 22},{top}"
                )
            )
            parts += _label(xs, top - 50, label, 24, above=True)
        elif STATES.index(target) - STATES.index(source) == 1:  # to the next state: straight
            parts.append(_svg.arrow(xs + half_w, y, xt - half_w, y))
            parts += _label((xs + xt) / 2, y + 22, label, 16)
        else:  # a jump: an arc below
            bottom, mid = y + half_h, (xs + xt) / 2
            parts.append(_path(f"M{xs + 20},{bottom} Q{mid},{bottom + 130} {xt - 20},{bottom}"))
            parts += _label(mid, bottom + 80, label, 30)
        parts.append("</g>")
    for state in STATES:
        parts.append(_svg.rect(X[state] - half_w, y - half_h, BOX_W, BOX_H, fill="#e8eef7"))
        parts.append(_svg.text(X[state], y + 5, state, size=13, bold=True))
    return _svg.document(WIDTH, HEIGHT, parts)


def _path(d: str) -> str:
    """A curved arrow (the shared helpers draw straight ones)."""
    return (
        f'<path d="{d}" fill="none" stroke="{_svg.INK}" stroke-width="1.5" '
        'marker-end="url(#arrow)"/>'
    )


def table(rows: Sequence[Transition]) -> str:
    """A Markdown table of every transition and what the coordinator does on it."""
    head = ["| state | event | next state | the coordinator |", "| --- | --- | --- | --- |"]
    body = [
        f"| `{row.source.value}` | {row.event.value} | `{row.target.value}` | {row.action} |"
        for row in rows
    ]
    return "\n".join(head + body)


def section(name: str) -> str:
    """The generated Markdown for one coordinator: the figure, then every transition."""
    rows = COORDINATORS[name]
    alt = f"{name.capitalize()}Coordinator state diagram: every transition is in the table below"
    return f"![{alt}]({figure(name).name})\n\n{table(rows)}\n"


def begin(name: str) -> str:
    return (
        f"<!-- BEGIN GENERATED {name}: python docs/gen_quorum_diagrams.py; do not edit by hand -->"
    )


def end(name: str) -> str:
    return f"<!-- END GENERATED {name} -->"


def render(text: str) -> str:
    """Return `text` with every generated section replaced by what the code produces now."""
    for name in COORDINATORS:
        start, stop = begin(name), end(name)
        if text.count(start) != 1 or text.count(stop) != 1:
            raise ValueError(f"{PAGE} must hold the markers {start!r} and {stop!r} once each")
        head, rest = text.split(start)
        _, tail = rest.split(stop)
        text = f"{head}{start}\n{section(name)}{stop}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    outputs = {PAGE: render(PAGE.read_text(encoding="utf-8"))}
    outputs.update({figure(name): svg(name, rows) for name, rows in COORDINATORS.items()})
    stale = [
        path
        for path, fresh in outputs.items()
        if not path.exists() or path.read_text(encoding="utf-8") != fresh
    ]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run python docs/gen_quorum_diagrams.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(outputs[path], encoding="utf-8")
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
from html import escape
from pathlib import Path

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


def _label(x: float, y: float, text: str, width: int, *, above: bool = False) -> str:
    """Wrapped text centred on `x`: its first line at `y`, or its last line there if `above`."""
    lines = textwrap.wrap(text, width)
    top = y - 14 * (len(lines) - 1) if above else y
    spans = "".join(
        f'<tspan x="{x:.0f}" y="{top + 14 * i:.0f}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return f'<text class="label" text-anchor="middle">{spans}</text>'


def svg(name: str, rows: Sequence[Transition]) -> str:
    """The state diagram of one coordinator as a standalone SVG."""
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}" role="img" font-family="sans-serif">'
        ),
        f"<title>{name.capitalize()}Coordinator states and transitions</title>",
        (
            "<style>.label{font-size:12px;fill:#333}.state{font-size:13px;font-weight:bold}"
            ".edge{fill:none;stroke:#555;stroke-width:1.5}</style>"
        ),
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
            'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            'fill="#555"/></marker></defs>'
        ),
        f'<circle cx="40" cy="{Y}" r="8" fill="#333"/>',
        (
            f'<path class="edge" d="M48,{Y} L{X["IDLE"] - BOX_W / 2:.0f},{Y}" '
            'marker-end="url(#arrow)"/>'
        ),
        (
            f'<circle cx="{WIDTH - 30}" cy="{Y}" r="9" fill="none" stroke="#333" stroke-width="2"/>'
            f'<circle cx="{WIDTH - 30}" cy="{Y}" r="5" fill="#333"/>'
        ),
        (
            f'<path class="edge" d="M{X["CLOSED"] + BOX_W / 2:.0f},{Y} L{WIDTH - 41},{Y}" '
            'marker-end="url(#arrow)"/>'
        ),
    ]
    for (source, target), events in edges(rows).items():
        text = ", ".join(events)
        xs, xt = X[source], X[target]
        out.append(f'<g data-from="{source}" data-to="{target}">')
        if source == target:  # a loop above the state
            top = Y - BOX_H / 2
            out.append(
                f'<path class="edge" d="M{xs - 22},{top} C{xs - 40},{top - 55} '
                f'{xs + 40},{top - 55} {xs + 22},{top}" marker-end="url(#arrow)"/>'
            )
            out.append(_label(xs, top - 50, text, 24, above=True))
        elif STATES.index(target) - STATES.index(source) == 1:  # to the next state: straight
            out.append(
                f'<path class="edge" d="M{xs + BOX_W / 2},{Y} L{xt - BOX_W / 2},{Y}" '
                'marker-end="url(#arrow)"/>'
            )
            out.append(_label((xs + xt) / 2, Y + 22, text, 16))
        else:  # a jump: an arc below
            bottom = Y + BOX_H / 2
            mid = (xs + xt) / 2
            out.append(
                f'<path class="edge" d="M{xs + 20},{bottom} Q{mid},{bottom + 130} '
                f'{xt - 20},{bottom}" marker-end="url(#arrow)"/>'
            )
            out.append(_label(mid, bottom + 80, text, 30))
        out.append("</g>")
    for state in STATES:
        x = X[state]
        out.append(
            f'<rect x="{x - BOX_W / 2}" y="{Y - BOX_H / 2}" width="{BOX_W}" height="{BOX_H}" '
            'rx="10" fill="#e8eef7" stroke="#4e79a7" stroke-width="1.5"/>'
        )
        out.append(f'<text class="state" x="{x}" y="{Y + 5}" text-anchor="middle">{state}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


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

"""Write the coordinators' state diagrams into docs/concepts/quorum.md from the code.

The diagrams and transition tables are generated from ``PutCoordinator.TRANSITIONS`` and
``GetCoordinator.TRANSITIONS`` — the same rows the coordinators move along — so the docs cannot
drift from the code. ``tests/test_quorum_docs.py`` fails when the page is out of date.

Usage::

    python docs/gen_quorum_diagrams.py           # rewrite the generated sections
    python docs/gen_quorum_diagrams.py --check   # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dynamo_core.quorum import GetCoordinator, PutCoordinator, Transition

PAGE = Path(__file__).parent / "concepts" / "quorum.md"
COORDINATORS = {"put": PutCoordinator.TRANSITIONS, "get": GetCoordinator.TRANSITIONS}


def mermaid(rows: Sequence[Transition]) -> str:
    """A Mermaid state diagram: one arrow per (source, target), its events joined."""
    edges: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        edges.setdefault((row.source.value, row.target.value), []).append(row.event.value)
    lines = ["stateDiagram-v2", "    direction LR", "    [*] --> IDLE"]
    for (source, target), events in edges.items():
        lines.append(f"    {source} --> {target}: {', '.join(events)}")
    lines.append("    CLOSED --> [*]")
    return "\n".join(lines)


def table(rows: Sequence[Transition]) -> str:
    """A Markdown table of every transition and what the coordinator does on it."""
    head = ["| state | event | next state | the coordinator |", "| --- | --- | --- | --- |"]
    body = [
        f"| `{row.source.value}` | {row.event.value} | `{row.target.value}` | {row.action} |"
        for row in rows
    ]
    return "\n".join(head + body)


def section(name: str) -> str:
    """The generated Markdown for one coordinator."""
    rows = COORDINATORS[name]
    return f"```mermaid\n{mermaid(rows)}\n```\n\n{table(rows)}\n"


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
    current = PAGE.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{PAGE} is out of date: run python docs/gen_quorum_diagrams.py")
            return 1
        return 0
    if fresh != current:
        PAGE.write_text(fresh, encoding="utf-8")
        print(f"updated {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

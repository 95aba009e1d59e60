"""Draw docs/concepts/vector-clocks.svg: the Dynamo paper's figure 3, computed by the library.

Run it from the repository root: ``python docs/gen_vclock_figure.py`` (``--check`` exits 1 if
the committed file is out of date; the test suite runs that). Every clock in the picture is a
`VectorClock` built by the writes the paper describes, every arrow is a ``compare`` that said
``BEFORE``, and the verdict between D3 and D4 is what ``compare`` returns.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for the sibling helper _svg

import _svg

from dynamo_core import Ordering, VectorClock, Versioned, reconcile

OUT = Path(__file__).parent / "concepts" / "vector-clocks.svg"


def versions() -> dict[str, tuple[VectorClock, str, tuple[float, float]]]:
    """The five versions: clock, the write that made it, and where to draw it."""
    d1 = VectorClock().increment("Sx", now=1)
    d2 = d1.increment("Sx", now=2)
    d3 = d2.increment("Sy", now=3)
    d4 = d2.increment("Sz", now=4)
    d5 = d3.merge(d4).increment("Sx", now=5)
    return {
        "D1": (d1, "write handled by Sx", (90, 130)),
        "D2": (d2, "write handled by Sx", (250, 130)),
        "D3": (d3, "write handled by Sy", (440, 60)),
        "D4": (d4, "write handled by Sz", (440, 200)),
        "D5": (d5, "reconciled, written by Sx", (650, 130)),
    }


def label(clock: VectorClock) -> str:
    return " ".join(f"[{node},{count}]" for node, count in clock.items())


def render() -> str:
    """Return the SVG document."""
    found = versions()
    parts = [_svg.text(380, 24, "Versions of one key and their vector clocks", size=15, bold=True)]
    width = 150
    # An arrow for every pair the later version directly descends (no version in between).
    for ca, _, (xa, ya) in found.values():
        for cb, _, (xb, yb) in found.values():
            if ca.compare(cb) is not Ordering.BEFORE:
                continue
            between = [
                c
                for c, _, _ in found.values()
                if ca.compare(c) is Ordering.BEFORE and c.compare(cb) is Ordering.BEFORE
            ]
            if not between:
                parts.append(_svg.arrow(xa + width / 2, ya, xb - width / 2 - 2, yb))
    for name, (clock, how, (x, y)) in found.items():
        parts += [
            _svg.rect(x - width / 2, y - 28, width, 56, fill="#fff"),
            _svg.text(x, y - 8, name, size=14, bold=True),
            _svg.text(x, y + 10, label(clock), size=12),
            _svg.text(x, y + 44, how, size=10, fill=_svg.GREY),
        ]
    d3, d4 = found["D3"][0], found["D4"][0]
    siblings = reconcile(
        [Versioned(b"D3", d3), Versioned(b"D4", d4), Versioned(b"D2", found["D2"][0])]
    )
    kept = ", ".join(v.value.decode() for v in siblings)
    parts += [
        _svg.text(
            440, 138, f"D3 vs D4: {d3.compare(d4).value}", size=12, bold=True, fill=_svg.WRITE
        ),
        _svg.text(440, 290, f"reconcile keeps {kept}: siblings, returned to the reader", size=12),
        _svg.text(
            380,
            312,
            "The reader merges them and writes back with their merged clock as context; "
            f"D3 vs D5: {d3.compare(found['D5'][0]).value}, D4 vs D5: "
            f"{d4.compare(found['D5'][0]).value}.",
            size=11,
            fill=_svg.GREY,
        ),
    ]
    return _svg.document(760, 325, parts)


def main(argv: list[str] | None = None) -> int:
    return _svg.write_or_check(OUT, render(), argv, "gen_vclock_figure.py")


if __name__ == "__main__":
    raise SystemExit(main())

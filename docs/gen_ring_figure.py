"""Draw docs/concepts/ring.svg: a strategy-3 ring, a key's preference list, and a join.

Run it from the repository root: ``python docs/gen_ring_figure.py`` (``--check`` exits 1 if the
committed file is out of date; the test suite runs that). The ring is built with the library
itself, so the picture shows what the claim really does: 32 partitions on 4 nodes, a key's walk
clockwise to three distinct nodes, and the same ring after a fifth node joins, with the
partitions it took outlined. The SVG is written by hand (no plotting dependency) and is
deterministic.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for the sibling helper _svg

import _svg

from dynamo_core import HashRing

OUT = Path(__file__).parent / "concepts" / "ring.svg"
PARTITIONS = 32
KEY = "cart:alice"
COLOURS = {
    "a": "#4e79a7",
    "b": "#f28e2b",
    "c": "#59a14f",
    "d": "#b07aa1",
    "e": "#e15759",
}


def _point(cx: float, cy: float, radius: float, fraction: float) -> tuple[float, float]:
    """The point at `fraction` of the circle, clockwise from 12 o'clock."""
    angle = 2 * math.pi * fraction
    return cx + radius * math.sin(angle), cy - radius * math.cos(angle)


def _sector(cx: float, cy: float, inner: float, outer: float, *, start: float, end: float) -> str:
    x1, y1 = _point(cx, cy, outer, start)
    x2, y2 = _point(cx, cy, outer, end)
    x3, y3 = _point(cx, cy, inner, end)
    x4, y4 = _point(cx, cy, inner, start)
    return (
        f"M{x1:.2f},{y1:.2f} A{outer},{outer} 0 0 1 {x2:.2f},{y2:.2f} "
        f"L{x3:.2f},{y3:.2f} A{inner},{inner} 0 0 0 {x4:.2f},{y4:.2f} Z"
    )


def _ring(ring: HashRing, cx: float, cy: float, *, taken: set[int], key: bool) -> list[str]:
    inner, outer = 88.0, 140.0
    out = []
    segments = ring.segments()
    for i, (_, plist) in enumerate(segments):
        start, end = i / PARTITIONS, (i + 1) / PARTITIONS
        path = _sector(cx, cy, inner, outer, start=start, end=end)
        stroke = (
            'stroke="#111" stroke-width="3"' if i in taken else 'stroke="#fff" stroke-width="1"'
        )
        out.append(f'<path d="{path}" fill="{COLOURS[plist[0]]}" {stroke}/>')
        lx, ly = _point(cx, cy, (inner + outer) / 2, (start + end) / 2)
        out.append(
            f'<text x="{lx:.2f}" y="{ly + 4:.2f}" font-size="11" text-anchor="middle" '
            f'fill="#fff">{plist[0]}</text>'
        )
    out.append(
        f'<text x="{cx:.2f}" y="{cy - outer - 14:.2f}" font-size="11" text-anchor="middle" '
        'fill="#555">token 0 / 2^64</text>'
    )
    if key:
        index = ring.partition(KEY)
        fraction = ring.token(KEY) / 2**64
        kx, ky = _point(cx, cy, outer + 8, fraction)
        out.append(f'<circle cx="{kx:.2f}" cy="{ky:.2f}" r="5" fill="#111"/>')
        tx, ty = _point(cx, cy, outer + 34, fraction)
        out.append(
            f'<text x="{tx:.2f}" y="{ty + 4:.2f}" font-size="12" text-anchor="middle">{KEY}</text>'
        )
        # The walk: clockwise from the key's partition, the first partition of each new node.
        chosen: list[str] = []
        step = 0
        while len(chosen) < ring.replicas:
            pos = (index + step) % PARTITIONS
            node = segments[pos][1][0]
            if node not in chosen:
                chosen.append(node)
                mx, my = _point(cx, cy, inner - 14, (pos + 0.5) / PARTITIONS)
                out.append(
                    f'<text x="{mx:.2f}" y="{my + 4:.2f}" font-size="12" font-weight="bold" '
                    f'text-anchor="middle">{len(chosen)}</text>'
                )
            step += 1
        listed = ", ".join(ring.preference_list(KEY))
        out.append(
            f'<text x="{cx:.2f}" y="{cy - 4:.2f}" font-size="12" text-anchor="middle">'
            "preference list</text>"
        )
        out.append(
            f'<text x="{cx:.2f}" y="{cy + 14:.2f}" font-size="13" font-weight="bold" '
            f'text-anchor="middle">({listed})</text>'
        )
    return out


def render() -> str:
    """Return the SVG document."""
    before = HashRing(3, partitions=PARTITIONS)
    for name in "abcd":
        before.add_node(name)
    after = before.copy()
    after.add_node("e")
    taken = {
        i
        for i, ((_, old), (_, new)) in enumerate(
            zip(before.segments(), after.segments(), strict=True)
        )
        if old[0] != new[0]
    }
    width, height = 820, 420
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">'
        ),
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        (
            '<text x="205" y="28" font-size="15" text-anchor="middle" font-weight="bold">'
            "4 nodes, 32 partitions, 3 replicas</text>"
        ),
        (
            '<text x="615" y="28" font-size="15" text-anchor="middle" font-weight="bold">'
            "after node e joins</text>"
        ),
    ]
    parts += _ring(before, 205, 215, taken=set(), key=True)
    parts += _ring(after, 615, 215, taken=taken, key=False)
    counts = dict.fromkeys("abcd", 0)
    for i in taken:
        counts[before.segments()[i][1][0]] += 1
    given = ", ".join(f"{n}: {c}" for n, c in counts.items())
    # The joiner also replicates the partitions just before each one it took: those whose
    # preference list now reaches it.
    replicated = {
        i
        for i, ((_, old), (_, new)) in enumerate(
            zip(before.segments(), after.segments(), strict=True)
        )
        if "e" in new and "e" not in old and i not in taken
    }
    only_e = all(transfer.target == "e" for transfer in before.transfers_to(after))
    parts += [
        (
            f'<text x="615" y="200" font-size="12" text-anchor="middle">e took {len(taken)} '
            "partitions</text>"
        ),
        f'<text x="615" y="218" font-size="12" text-anchor="middle">({given})</text>',
        (
            f'<text x="615" y="236" font-size="12" text-anchor="middle">and became a replica of '
            f"{len(replicated)} more</text>"
        ),
        (
            '<text x="615" y="254" font-size="12" text-anchor="middle">'
            f"{'only e received data' if only_e else 'others received data too'}</text>"
        ),
        (
            '<text x="410" y="405" font-size="12" text-anchor="middle" fill="#555">'
            "Each sector is a partition, labelled with its owner; numbers mark the walk that picks "
            "the key's replicas.</text>"
        ),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    return _svg.write_or_check(OUT, render(), argv, "gen_ring_figure.py")


if __name__ == "__main__":
    raise SystemExit(main())

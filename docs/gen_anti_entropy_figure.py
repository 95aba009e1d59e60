"""Draw docs/concepts/anti-entropy-bytes.svg: bytes an exchange costs as replicas diverge.

Run it from the repository root: ``python docs/gen_anti_entropy_figure.py``. It builds two replicas
of N keys, makes d of them differ (missing on one side, on the other, or different), runs a
Merkle exchange in process and records the wire bytes, for d from 1 to half the segments. The
SVG is written by hand (no plotting dependency) and is deterministic: the same code gives the same
file, so it is committed and regenerated when the exchange changes.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from dynamo_core.merkle import (
    LoadItems,
    MerkleTree,
    Nodes,
    encode_message,
    item_digest,
    run_exchange,
)

DEPTH = 14
KEYS = 2**DEPTH  # one key per segment on average, as depth_for chooses
OUT = Path(__file__).parent / "concepts" / "anti-entropy-bytes.svg"

Item = tuple[bytes, bytes]


class Replica:
    def __init__(self, items: dict[bytes, bytes]) -> None:
        self.tree = MerkleTree.from_items(items.items(), DEPTH)
        self.by_segment: dict[int, list[Item]] = {}
        for key, digest in items.items():
            self.by_segment.setdefault(self.tree.segment(key), []).append((key, digest))

    def load(self, request: LoadItems) -> list[Item]:
        return [item for index in request.segments for item in self.by_segment.get(index, ())]


def measure(d: int, levels: int) -> tuple[int, int]:
    """Return (wire bytes of the whole exchange, of its tree phase alone) for d differences."""
    base = {b"key:%d" % i: item_digest(b"key:%d" % i, b"v1") for i in range(KEYS)}
    a, b = dict(base), dict(base)
    for i, key in enumerate(random.Random(d).sample(sorted(base), d)):
        if i % 3 == 0:
            del b[key]
        elif i % 3 == 1:
            del a[key]
        else:
            b[key] = item_digest(key, b"v2")
    left, right = Replica(a), Replica(b)
    total = run_exchange(left.tree, right.tree, left.load, right.load, levels_per_round=levels)
    nodes_only = run_exchange(
        left.tree, right.tree, left.load, right.load, levels_per_round=levels, fetch_items=False
    )
    return total.wire_bytes, nodes_only.wire_bytes


def every_leaf_bytes() -> int:
    return len(encode_message(Nodes(0, bytes(16 * 2**DEPTH))))


Series = tuple[str, str, str, Sequence[tuple[float, float]]]  # label, colour, dash, points


def render(series: Sequence[Series], *, title: str, x_label: str, y_label: str) -> str:
    """Render log-log line series as a standalone SVG document."""
    width, height = 760, 470
    left, right, top, bottom = 90, 220, 50, 70
    xs = [x for *_, points in series for x, _ in points]
    ys = [y for *_, points in series for _, y in points]
    x_lo, x_hi = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    y_lo, y_hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (math.log10(x) - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (math.log10(y) - y_lo) / (y_hi - y_lo) * plot_h

    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
        ),
        f"<title>{title}</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left + plot_w / 2}" y="24" text-anchor="middle" font-size="15">{title}</text>',
    ]
    for exponent in range(x_lo, x_hi + 1):
        x = px(10**exponent)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">10'
            f'<tspan dy="-6" font-size="9">{exponent}</tspan></text>'
        )
    for exponent in range(y_lo, y_hi + 1):
        y = py(10**exponent)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">10'
            f'<tspan dy="-6" font-size="9">{exponent}</tspan></text>'
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>'
    )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{height - 22}" text-anchor="middle">{x_label}</text>'
    )
    out.append(
        f'<text x="22" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 22 {top + plot_h / 2})">{y_label}</text>'
    )
    for row, (label, colour, dash, points) in enumerate(series):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        style = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{style}/>'
        )
        out.extend(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>'
            for x, y in points
            if len(points) > 2
        )
        legend_y = top + 14 + 22 * row
        out.append(
            f'<line x1="{left + plot_w + 14}" y1="{legend_y}" x2="{left + plot_w + 38}" '
            f'y2="{legend_y}" stroke="{colour}" stroke-width="2"{style}/>'
        )
        out.append(f'<text x="{left + plot_w + 44}" y="{legend_y + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] = ()) -> int:
    divergences = [2**k for k in range(DEPTH)]  # 1 .. half the segments
    exchange2 = [(d, *measure(d, 2)) for d in divergences]
    exchange4 = [(d, measure(d, 4)[0]) for d in divergences]
    every_leaf = every_leaf_bytes()
    bound = [(d, 16 * d * (DEPTH - math.log2(d))) for d in divergences]
    series: list[Series] = [
        ("exchange, 2 levels/round", "#1f77b4", "", [(d, t) for d, t, _ in exchange2]),
        ("exchange, 4 levels/round", "#ff7f0e", "", exchange4),
        ("tree phase alone (2/round)", "#2ca02c", "5,3", [(d, n) for d, _, n in exchange2]),
        ("lower bound x 16 bytes", "#7f7f7f", "2,3", bound),
        ("send every leaf", "#d62728", "8,4", [(1, every_leaf), (divergences[-1], every_leaf)]),
    ]
    svg = render(
        series,
        title=f"Bytes to find d differing keys among {KEYS:,} (depth {DEPTH})",
        x_label="differing keys d",
        y_label="bytes on the wire",
    )
    target = Path(argv[0]) if argv else OUT
    target.write_text(svg, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Draw docs/concepts/membership-join.svg: a join, as it happens on a simulated cluster.

Run it from the repository root: ``python docs/gen_membership_figure.py`` (``--check`` exits 1
if the committed file is out of date; the test suite runs that). The picture is a real run of
the library: four nodes hold 200 keys, node ``e`` boots outside the ring, an admin asks ``b``
to add it, and the figure plots, per node and in virtual time, when each node installed ring
version 1 (the request reached the claimant by gossip, the claimant minted the version, gossip
spread it), each range stream that completed (an arrow from the source that served it to
``e``), and when each node saw the version settle. Deterministic, no plotting dependency.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dynamo_core import NodeConfig, RingChanged, TransferDone
from dynamo_core.node import Effect
from dynamo_core.testing import SimulatedCluster

OUT = Path(__file__).parent / "concepts" / "membership-join.svg"
NODES = ("a", "b", "c", "d", "e")
COLOURS = {"a": "#4e79a7", "b": "#f28e2b", "c": "#59a14f", "d": "#b07aa1", "e": "#e15759"}
CONFIG = NodeConfig(
    heartbeat_interval=0.5,
    request_timeout=0.3,
    anti_entropy_interval=5.0,
    gossip_interval=0.5,
    stream_batch_bytes=2048,
    stream_rate=40_000.0,
    stream_timeout=1.0,
)


def simulate() -> tuple[float, list[tuple[float, str, Effect]], int, int]:
    """Run the join; return when it was asked, the effects seen, keys moved and replicas."""
    cluster = SimulatedCluster(list(NODES[:4]), config=CONFIG, seed=4, partitions=32)
    for i in range(200):
        cluster.put(f"key-{i:03d}", b"x" * 100)
    cluster.run(1.0)
    seen: list[tuple[float, str, Effect]] = []
    cluster.observe(
        lambda now, node, effect: (
            seen.append((now, node, effect))
            if isinstance(effect, RingChanged | TransferDone)
            else None
        )
    )
    asked = cluster.now
    cluster.add_node("e")
    cluster.join("e", via="b")
    cluster.run_while(lambda: not cluster.settled(), limit=60.0)
    cluster.run(0.5)
    moved = len(cluster.node("e").keys())
    return asked, seen, moved, 3 * 200


def render() -> str:
    """Return the SVG document."""
    asked, seen, moved, replicas = simulate()
    end = max(t for t, _, _ in seen) + 0.3
    width, height = 860, 470
    left, right = 70.0, 830.0
    top, lane = 70.0, 52.0

    def x(t: float) -> float:
        return left + (right - left) * (t - asked) / (end - asked)

    def y(node: str) -> float:
        return top + lane * NODES.index(node)

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">'
        ),
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        (
            f'<text x="{width / 2}" y="26" font-size="15" text-anchor="middle" '
            'font-weight="bold">Node e joins a 4-node ring: ring version 1 by gossip, ranges '
            "streamed to e, then settled</text>"
        ),
    ]
    for node in NODES:
        yy = y(node)
        parts.append(
            f'<line x1="{left}" y1="{yy}" x2="{right}" y2="{yy}" stroke="#ccc" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 16}" y="{yy + 5}" font-size="14" text-anchor="end" '
            f'font-weight="bold" fill="{COLOURS[node]}">{node}</text>'
        )
    ax = x(asked)
    parts.append(
        f'<path d="M{ax:.1f},{y("b") - 16} l-6,-10 h12 z" fill="#111"/>'
        f'<text x="{ax + 8:.1f}" y="{y("b") - 18}" font-size="11">join(e) asked on b</text>'
    )
    for t, _, effect in seen:
        if isinstance(effect, TransferDone):
            sx, sy = x(t), y(effect.served_by)
            ex, ey = x(t), y("e")
            parts.append(
                f'<line x1="{sx - 12:.1f}" y1="{sy:.1f}" x2="{ex:.1f}" y2="{ey - 6:.1f}" '
                f'stroke="{COLOURS[effect.served_by]}" stroke-width="1.5" '
                'marker-end="url(#arrow)" opacity="0.8"/>'
            )
    for t, node, effect in seen:
        if isinstance(effect, RingChanged):
            cx, cy = x(t), y(node)
            if effect.settled:
                parts.append(
                    f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="#111"/>'
                )
            else:
                parts.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="#fff" stroke="#111" '
                    'stroke-width="2"/>'
                )
    parts.insert(
        1,
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>'
        "</defs>",
    )
    base = y("e") + 40
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#555" stroke-width="1"/>'
    )
    span = end - asked
    step = 0.5 if span <= 6 else 1.0 if span <= 12 else 2.0
    tick = 0.0
    while tick <= span + 1e-9:
        tx = x(asked + tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{base}" x2="{tx:.1f}" y2="{base + 5}" stroke="#555"/>'
            f'<text x="{tx:.1f}" y="{base + 18}" font-size="10" text-anchor="middle" '
            f'fill="#555">+{tick:g} s</text>'
        )
        tick += step
    legend = base + 44
    parts += [
        (
            f'<circle cx="{left + 6}" cy="{legend - 4}" r="6" fill="#fff" stroke="#111" '
            'stroke-width="2"/>'
        ),
        (
            f'<text x="{left + 18}" y="{legend}" font-size="12">installs version 1 (old and new '
            "ring: writes need a quorum in both, reads use the old replicas)</text>"
        ),
        f'<rect x="{left + 1}" y="{legend + 12}" width="10" height="10" fill="#111"/>',
        (
            f'<text x="{left + 18}" y="{legend + 21}" font-size="12">sees it settled: the new ring '
            "alone; sources drop the ranges they served</text>"
        ),
        (
            f'<line x1="{left}" y1="{legend + 36}" x2="{left + 12}" y2="{legend + 36}" '
            'stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"/>'
        ),
        (
            f'<text x="{left + 18}" y="{legend + 40}" font-size="12">a range stream completed '
            "(from the source that served it)</text>"
        ),
        (
            f'<text x="{right}" y="{legend + 62}" font-size="12" text-anchor="end">e received '
            f"{moved} of {replicas} key replicas ({moved / replicas:.1%}; ideal 1/5 = 20.0%)</text>"
        ),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the figure is stale")
    args = parser.parse_args(argv)
    svg = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != svg:
            print(
                f"{OUT} is out of date: run python docs/gen_membership_figure.py", file=sys.stderr
            )
            return 1
        return 0
    OUT.write_text(svg, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

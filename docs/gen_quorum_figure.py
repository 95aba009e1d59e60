"""Draw docs/concepts/quorum-overlap.svg: which replicas a write and a read reached, three ways.

Run it from the repository root: ``python docs/gen_quorum_figure.py`` (``--check`` exits 1 if
the committed file is out of date; the test suite runs that). Each panel is a real run of the
library's coordinators in a `QuorumHarness`: the replicas the write's acknowledgements came
from, the replicas the read's answers came from, and whether the read found the write.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for the sibling helper _svg

import _svg

from dynamo_core import GetResult, PutResult, QuorumPolicy
from dynamo_core.testing import DotSet, QuorumHarness

OUT = Path(__file__).parent / "concepts" / "quorum-overlap.svg"
NODES = ["a", "b", "c", "d", "e"]  # the key's walk: primaries a, b, c; fallbacks d, e
WRITE = DotSet.of(("alice", 1))


def panel_overlap() -> tuple[str, PutResult, GetResult[DotSet]]:
    """N=3, W=2, R=2: the write reaches a and b first, the read hears from b and c first."""
    harness: QuorumHarness[DotSet] = QuorumHarness(NODES[:3], policy=QuorumPolicy(3, 2, 2))
    for node, delay in [("a", 0.001), ("b", 0.002), ("c", 0.05)]:
        harness.script(node, delay=delay)
    put = harness.put("cart", WRITE)
    harness.run()
    for node, delay in [("a", 0.05), ("b", 0.002), ("c", 0.001)]:
        harness.script(node, delay=delay)
    get = harness.get("cart")
    assert isinstance(put, PutResult)
    assert isinstance(get, GetResult)
    return "N=3, W=2, R=2 (R + W > N)", put, get


def panel_miss() -> tuple[str, PutResult, GetResult[DotSet]]:
    """N=3, W=1, R=1: the write is acknowledged by a; the read is answered by c first."""
    harness: QuorumHarness[DotSet] = QuorumHarness(NODES[:3], policy=QuorumPolicy(3, 1, 1))
    for node, delay in [("a", 0.001), ("b", 0.5), ("c", 0.5)]:
        harness.script(node, delay=delay)
    put = harness.put("cart", WRITE)
    for node, delay in [("a", 0.5), ("b", 0.5), ("c", 0.001)]:
        harness.script(node, delay=delay)
    get = harness.get("cart")  # the stores to b and c are still on their way
    assert isinstance(put, PutResult)
    assert isinstance(get, GetResult)
    return "N=3, W=1, R=1 (R + W ≤ N)", put, get


def panel_sloppy() -> tuple[str, PutResult, GetResult[DotSet]]:
    """Sloppy quorum: a and b are down, d and e acknowledge; a and b are back and answer."""
    harness: QuorumHarness[DotSet] = QuorumHarness(NODES, policy=QuorumPolicy(3, 2, 2), seed=0)
    harness.suspect("a")
    harness.suspect("b")
    harness.script("c", delay=0.2)
    put = harness.put("cart", WRITE)
    harness.trust("a")
    harness.trust("b")
    get = harness.get("cart")
    assert isinstance(put, PutResult)
    assert isinstance(get, GetResult)
    return "sloppy, W=2, R=2, a and b down", put, get


def draw(
    x0: float, title: str, put: PutResult, get: GetResult[DotSet], nodes: list[str]
) -> list[str]:
    parts = [_svg.text(x0 + 130, 30, title, size=13, bold=True)]
    acked, answered = set(put.acked), set(get.answered)
    step = 260 / (len(nodes) + 1)
    for i, node in enumerate(nodes):
        x, y = x0 + step * (i + 1), 110
        primary = i < 3
        parts.append(
            _svg.circle(x, y, 14, fill="#fff" if primary else "#eee", stroke=_svg.GREY, width=1)
        )
        if node in acked:
            parts.append(_svg.circle(x, y, 18, fill="none", stroke=_svg.WRITE, width=3))
        if node in answered:
            parts.append(_svg.circle(x, y, 22, fill="none", stroke=_svg.READ, width=3))
        parts.append(_svg.text(x, y + 5, node, size=14, bold=True))
        parts.append(
            _svg.text(x, y + 40, "replica" if primary else "fallback", size=10, fill=_svg.GREY)
        )
    both = sorted(acked & answered)
    parts += [
        _svg.text(x0 + 130, 195, f"write acknowledged by {', '.join(put.acked)}", fill=_svg.WRITE),
        _svg.text(x0 + 130, 213, f"read answered by {', '.join(get.answered)}", fill=_svg.READ),
        _svg.text(x0 + 130, 231, f"in both: {', '.join(both) or 'none'}"),
        _svg.text(
            x0 + 130,
            255,
            "the read finds the write" if get.found else "the read misses the write",
            size=13,
            bold=True,
            fill=_svg.OK if get.found else _svg.WRITE,
        ),
    ]
    return parts


def render() -> str:
    """Return the SVG document."""
    parts: list[str] = []
    for i, (panel, nodes) in enumerate(
        [(panel_overlap, NODES[:3]), (panel_miss, NODES[:3]), (panel_sloppy, NODES)]
    ):
        title, put, get = panel()
        parts += draw(10 + 280 * i, title, put, get, nodes)
    parts.append(
        _svg.text(
            425,
            292,
            "Red ring: acknowledged the write. Blue ring: answered the read. "
            "Each panel is a run of PutCoordinator and GetCoordinator.",
            size=11,
            fill=_svg.GREY,
        )
    )
    return _svg.document(850, 305, parts)


def main(argv: list[str] | None = None) -> int:
    return _svg.write_or_check(OUT, render(), argv, "gen_quorum_figure.py")


if __name__ == "__main__":
    raise SystemExit(main())

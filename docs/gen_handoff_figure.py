"""Draw docs/concepts/hinted-handoff.svg: a replica down, a fallback's hint, and its delivery.

Run it from the repository root: ``python docs/gen_handoff_figure.py`` (``--check`` exits 1 if
the committed file is out of date; the test suite runs that). The timeline is a run of five
real `Node`s in a `SimulatedCluster`: one of the key's replicas crashes, a write lands on the
first fallback with a hint, the replica restarts and the fallback hands the hint over. Every
time and name in the picture comes from that run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for the sibling helper _svg

import _svg

from dynamo_core import GetReply, HintsDelivered, PutReply
from dynamo_core.node import Effect
from dynamo_core.testing import SimulatedCluster
from dynamo_core.testing.simulation import SIMULATION_NODE_CONFIG

OUT = Path(__file__).parent / "concepts" / "hinted-handoff.svg"
KEY = "cart:alice"


@dataclass(frozen=True)
class Story:
    """What the picture shows, as the run measured it."""

    lanes: tuple[str, str, str, str]  # replicas 1-3, fallback 1
    crashed: float
    written: float
    acked: tuple[str, ...]
    hints: int
    restarted: float
    delivered: tuple[float, str, HintsDelivered]
    end: float
    values: list[str]  # what replica 3 holds at the end


def story() -> Story:
    """Run the scenario."""
    cluster = SimulatedCluster(5, config=SIMULATION_NODE_CONFIG, seed=0)
    p1, p2, p3, f1, _ = cluster.ring.walk(KEY)
    delivered: list[tuple[float, str, HintsDelivered]] = []

    def watch(now: float, node: str, effect: Effect) -> None:
        if isinstance(effect, HintsDelivered):
            delivered.append((now, node, effect))

    cluster.observe(watch)
    assert isinstance(cluster.put(KEY, b"v1"), PutReply)
    crashed = cluster.now
    cluster.crash(p3)
    cluster.run(10.0)
    written = cluster.now
    read = cluster.get(KEY, via=p1)
    assert isinstance(read, GetReply)
    reply = cluster.put(KEY, b"v2", read.context, via=p1)
    assert isinstance(reply, PutReply)
    cluster.run(0.5)
    hints = cluster.node(f1).hints.count(p3)
    cluster.run(4.5)
    restarted = cluster.now
    cluster.restart(p3)
    cluster.run(3.0)
    assert delivered, "the fallback delivered its hint"
    state = cluster.node(p3).state_of(KEY)
    assert state is not None
    values = sorted(v.decode() for v in state.values)
    return Story(
        (p1, p2, p3, f1),
        crashed,
        written,
        reply.acked,
        hints,
        restarted,
        delivered[0],
        cluster.now,
        values,
    )


def render() -> str:
    """Return the SVG document."""
    run = story()
    lanes = list(run.lanes)
    p1, p2, p3, f1 = lanes
    end = run.end
    left, right = 150.0, 800.0

    def x(t: float) -> float:
        return left + (right - left) * t / end

    def y(node: str) -> float:
        return 70.0 + 60.0 * lanes.index(node)

    roles = {p1: "replica 1", p2: "replica 2", p3: "replica 3", f1: "fallback 1"}
    parts = [
        _svg.text(430, 24, f"Hinted handoff on 5 simulated nodes: {KEY!r}", size=15, bold=True)
    ]
    for node in lanes:
        parts += [
            _svg.text(20, y(node) + 4, f"{node} ({roles[node]})", anchor="start", size=12),
            f'<line x1="{left}" y1="{y(node)}" x2="{right}" y2="{y(node)}" stroke="#ccc"/>',
        ]
    crashed, restarted, written = run.crashed, run.restarted, run.written
    parts += [
        _svg.rect(x(crashed), y(p3) - 9, x(restarted) - x(crashed), 18, fill="#f4c7c7"),
        _svg.text((x(crashed) + x(restarted)) / 2, y(p3) + 4, f"{p3} is down", size=11),
    ]
    for node in (p1, p2, f1):
        parts.append(_svg.circle(x(written), y(node), 6, fill=_svg.WRITE))
    parts += [
        _svg.text(x(written) + 10, y(p1) - 14, f"t={written:.1f} s: put v2", anchor="start"),
        _svg.text(
            x(written) + 10,
            y(f1) + 22,
            f"{f1} stores v2 with a hint for {p3} ({run.hints} hint)",
            anchor="start",
            size=11,
        ),
    ]
    when, giver, done = run.delivered
    parts += [
        _svg.arrow(x(when), y(giver) - 8, x(when), y(p3) + 10, colour=_svg.FALLBACK),
        *(
            _svg.text(x(when) - 8, at, line, anchor="end", size=11)
            for at, line in [
                (y(p3) - 34, f"t={restarted:.1f} s: {p3} restarts"),
                (y(f1) - 14, f"t={when:.1f} s: {giver} sees it up, sends the hint,"),
                (y(f1) + 2, f"{done.target} acks; {giver} deletes {done.removed} hint"),
            ]
        ),
        _svg.text(
            430,
            y(f1) + 58,
            f"The write was acknowledged by {', '.join(run.acked)} (W=2) while {p3} was down; "
            f"afterwards {p3} holds {', '.join(run.values)}.",
            size=12,
        ),
        _svg.text(430, y(f1) + 78, "time (virtual seconds) →", size=11, fill=_svg.GREY),
    ]
    return _svg.document(860, int(y(f1) + 92), parts)


def main(argv: list[str] | None = None) -> int:
    return _svg.write_or_check(OUT, render(), argv, "gen_handoff_figure.py")


if __name__ == "__main__":
    raise SystemExit(main())

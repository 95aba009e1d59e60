"""Write the spacing table of docs/concepts/ring.md: how often the claim meets the spacing rule.

Run it from the repository root: ``python docs/gen_spacing_table.py`` rewrites the table between
its markers in ring.md; ``--check`` exits 1 if the committed table is out of date, and
``--sizes 16,64`` limits the run to some ring sizes (the test suite checks the small ones, the
large ones take minutes). For each ring size Q (replicas 2 to 5, member counts up to 24 or Q,
node ids ``node-000``, ...) it counts the (replicas, member count) pairs at which a spaced
layout exists (`HashRing.spacing_possible`) and those at which the claim produced one
(`HashRing.spacing_violations` is empty), for four histories: joins one at a time, all members
at once, groups of three, and leaves one at a time from 24 members. The "before" column is the
previous claim (spacing by the joiners' picks and the leave matching alone), measured with this
script on that code and kept here as data.

The zone table does the same for rings of `replicas` to `replicas + 2` zones with equally many
equal nodes each (histories: joins one at a time, all at once, rounds of one node per zone,
leaves in rounds), counting the layouts for which a balanced layout with distinct zones in
every window exists and those the claim produced; its "before" column is the claim before the
zones' remainders were spread (measured with this script on that code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from dynamo_core import HashRing

PAGE = Path(__file__).parent / "concepts" / "ring.md"
START = "<!-- spacing-table:start -->"
END = "<!-- spacing-table:end -->"
REPLICAS = (2, 3, 4, 5)
MEMBERS = 24
SIZES = tuple(1 << bits for bits in range(4, 16))
HISTORIES = ("one at a time", "all at once", "groups of 3", "leaves")

# The previous claim, measured by this script: spaced layouts produced, per size and history.
BEFORE: dict[int, tuple[int, int, int, int]] = {
    16: (52, 52, 50, 38),
    32: (83, 81, 79, 69),
    64: (81, 82, 80, 64),
    128: (83, 83, 81, 61),
    256: (84, 84, 82, 72),
    512: (81, 83, 81, 59),
    1024: (83, 83, 81, 72),
    2048: (82, 83, 80, 56),
    4096: (83, 83, 82, 72),
    8192: (82, 81, 76, 57),
    16384: (80, 82, 80, 66),
    32768: (83, 81, 78, 40),
}


def _names(count: int) -> list[str]:
    return [f"node-{i:03d}" for i in range(count)]


def _most(size: int) -> int:
    """The most members a history reaches: 24, or one per partition."""
    return min(MEMBERS, size)


def _one_at_a_time(size: int, replicas: int) -> Iterator[HashRing]:
    ring = HashRing(replicas, partitions=size)
    for node in _names(_most(size)):
        ring.add_node(node)
        yield ring


def _all_at_once(size: int, replicas: int) -> Iterator[HashRing]:
    for count in range(1, _most(size) + 1):
        ring = HashRing(replicas, partitions=size)
        ring.add_nodes(_names(count))
        yield ring


def _groups(size: int, replicas: int) -> Iterator[HashRing]:
    names = _names(_most(size))
    for start in (1, 2, 3):  # groups of three from each start reach every member count
        ring = HashRing(replicas, partitions=size)
        ring.add_nodes(names[:start])
        for first in range(start, len(names), 3):
            ring.add_nodes(names[first : first + 3])
            yield ring


def _leaves(size: int, replicas: int) -> Iterator[HashRing]:
    ring = HashRing(replicas, partitions=size)
    ring.add_nodes(_names(_most(size)))
    for node in _names(_most(size))[::-1][:-1]:
        ring.remove_node(node)
        yield ring


RUNS: dict[str, Callable[[int, int], Iterator[HashRing]]] = {
    "one at a time": _one_at_a_time,
    "all at once": _all_at_once,
    "groups of 3": _groups,
    "leaves": _leaves,
}


def _owners(ring: HashRing) -> list[str]:
    return [plist[0] for _, plist in ring.segments()]


def possible(ring: HashRing) -> bool:
    """Whether a spaced layout exists for the ring's counts (`HashRing.spacing_possible`)."""
    owners = _owners(ring)
    top = max(owners.count(node) for node in ring.nodes)
    return len(ring) >= ring.replicas and top * ring.replicas <= len(owners)


def spaced(ring: HashRing) -> bool:
    """Whether any `replicas` consecutive partitions are on distinct nodes."""
    owners = _owners(ring)
    size, window = len(owners), ring.replicas
    return all(len({owners[(i + j) % size] for j in range(window)}) == window for i in range(size))


def measure(size: int) -> tuple[tuple[int, int], ...]:
    """For each history: (layouts for which a spaced one exists, those the claim spaced).

    A layout is one (replicas, member count) pair; it counts as spaced only if every ring of
    that member count in the history was.
    """
    out = []
    for history in HISTORIES:
        exists: set[tuple[int, int]] = set()
        failed: set[tuple[int, int]] = set()
        for replicas in REPLICAS:
            for ring in RUNS[history](size, replicas):
                if replicas <= len(ring) and possible(ring):
                    exists.add((replicas, len(ring)))
                    if not spaced(ring):
                        failed.add((replicas, len(ring)))
        out.append((len(exists), len(exists - failed)))
    return tuple(out)


# -- zones: at least `replicas` zones of equal capacity ------------------------------------------

ZSTART = "<!-- zone-spacing-table:start -->"
ZEND = "<!-- zone-spacing-table:end -->"
ZSIZES = SIZES[:6]  # 16 to 512; larger rings take minutes
ZHISTORIES = ("one at a time", "all at once", "rounds", "leaves")

# The claim before zones' shares were spread, measured by this script: zone-spaced layouts
# produced, per size and history.
ZBEFORE: dict[int, tuple[int, int, int, int]] = {
    16: (37, 35, 37, 27),
    32: (53, 48, 57, 43),
    64: (52, 50, 57, 47),
    128: (50, 50, 57, 46),
    256: (48, 49, 57, 47),
    512: (46, 49, 57, 47),
}


def zone_shapes(size: int) -> Iterator[tuple[int, int, int]]:
    """(replicas, zones, most nodes per zone): replicas 2 to 5, replicas to replicas + 2 zones."""
    for replicas in REPLICAS:
        for zones in range(replicas, replicas + 3):
            if _most(size) // zones:
                yield replicas, zones, _most(size) // zones


def zone_spacing_exists(size: int, replicas: int, zones: int, per_zone: int) -> bool:
    """Whether a balanced layout puts any `replicas` consecutive partitions in distinct zones.

    Each node holds the floor or the ceiling of ``size / nodes``; a zone's partitions must be
    `replicas` apart, so every zone needs at most ``size // replicas`` and, all zones together,
    room for every partition.
    """
    floor, extra = divmod(size, zones * per_zone)
    cap = size // replicas
    return per_zone * floor <= cap and zones * min(per_zone * (floor + (extra > 0)), cap) >= size


def zones_spaced(ring: HashRing) -> bool:
    labels = [ring.zone(node) for node in _owners(ring)]
    size, window = len(labels), ring.replicas
    return all(len({labels[(i + j) % size] for j in range(window)}) == window for i in range(size))


def _zone_rings(size: int, history: str, shape: tuple[int, int, int]) -> Iterator[HashRing]:
    """The rings of one history at which every zone has the same number of nodes."""
    replicas, zones, most = shape
    grid = [[f"z{z}-n{i:02d}" for z in range(zones)] for i in range(most)]
    zone_of = {node: f"az{node[1:].split('-')[0]}" for round_ in grid for node in round_}
    ring = HashRing(replicas, partitions=size)
    if history == "leaves":
        ring.add_nodes([n for round_ in grid for n in round_], zones=zone_of)
        for round_ in grid[:0:-1]:
            ring.remove_nodes(round_)
            yield ring
        return
    for count, round_ in enumerate(grid, 1):
        if history == "one at a time":
            for node in round_:
                ring.add_node(node, zone=zone_of[node])
        elif history == "rounds":
            ring.add_nodes(round_, zones={n: zone_of[n] for n in round_})
        else:
            ring = HashRing(replicas, partitions=size)
            nodes = [n for r in grid[:count] for n in r]
            ring.add_nodes(nodes, zones={n: zone_of[n] for n in nodes})
        yield ring


def zone_measure(size: int) -> tuple[tuple[int, int], ...]:
    """For each history: (layouts with a zone-spaced balanced layout, those the claim spaced)."""
    out = []
    for history in ZHISTORIES:
        exists = met = 0
        for shape in zone_shapes(size):
            for ring in _zone_rings(size, history, shape):
                per_zone = len(ring) // shape[1]
                if zone_spacing_exists(size, shape[0], shape[1], per_zone):
                    exists += 1
                    met += zones_spaced(ring)
        out.append((exists, met))
    return tuple(out)


def zone_row(size: int) -> str:
    before = ZBEFORE.get(size)
    cells = [
        (f"{before[i]} → " if before else "") + f"{met} of {exists}"
        for i, (exists, met) in enumerate(zone_measure(size))
    ]
    return f"| {size:,} | " + " | ".join(cells) + " |"


def zone_table(rows: Sequence[str]) -> str:
    head = "| partitions | " + " | ".join(ZHISTORIES) + " |"
    rule = "| ---: |" + " --- |" * len(ZHISTORIES)
    return "\n".join([ZSTART, head, rule, *rows, ZEND])


def row(size: int) -> str:
    cells = [
        f"{BEFORE[size][i]} → {met} of {possible}"
        for i, (possible, met) in enumerate(measure(size))
    ]
    return f"| {size:,} | " + " | ".join(cells) + " |"


def render(sizes: Sequence[int]) -> list[str]:
    return [row(size) for size in sizes]


def table(rows: Sequence[str]) -> str:
    head = "| partitions | " + " | ".join(HISTORIES) + " |"
    rule = "| ---: |" + " --- |" * len(HISTORIES)
    return "\n".join([START, head, rule, *rows, END])


def committed_rows(start: str = START, end: str = END) -> dict[int, str]:
    text = PAGE.read_text(encoding="utf-8")
    body = text[text.index(start) : text.index(end)]
    out = {}
    for line in body.splitlines()[3:]:
        size = int(line.split("|")[1].strip().replace(",", ""))
        out[size] = line
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    parser.add_argument("--sizes", help="comma-separated ring sizes (default: all)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(SIZES)
    zsizes = [size for size in sizes if size in ZSIZES]
    tables = (
        (START, END, SIZES, dict(zip(sizes, render(sizes), strict=True)), table),
        (ZSTART, ZEND, ZSIZES, {size: zone_row(size) for size in zsizes}, zone_table),
    )
    if args.check:
        stale = [
            size
            for start, end, _, rows, _ in tables
            for size, line in rows.items()
            if committed_rows(start, end)[size] != line
        ]
        if stale:
            print(f"the spacing tables are stale for {stale}: run python {sys.argv[0]}")
            return 1
        return 0
    for start, end, every, rows, make in tables:
        text = PAGE.read_text(encoding="utf-8")
        merged = {**committed_rows(start, end), **rows}
        new = make([merged[size] for size in every if size in merged])
        text = text[: text.index(start)] + new + text[text.index(end) + len(end) :]
        PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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


def committed_rows() -> dict[int, str]:
    text = PAGE.read_text(encoding="utf-8")
    body = text[text.index(START) : text.index(END)]
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
    rows = render(sizes)
    if args.check:
        committed = committed_rows()
        stale = [size for size, line in zip(sizes, rows, strict=True) if committed[size] != line]
        if stale:
            print(f"the spacing table is stale for {stale}: run python {sys.argv[0]}")
            return 1
        return 0
    committed = committed_rows() if START in PAGE.read_text(encoding="utf-8") else {}
    merged = {**committed, **dict(zip(sizes, rows, strict=True))}
    text = PAGE.read_text(encoding="utf-8")
    new = table([merged[size] for size in SIZES if size in merged])
    text = text[: text.index(START)] + new + text[text.index(END) + len(END) :]
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

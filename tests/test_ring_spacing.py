"""The claim's spacing rule: when a spaced layout exists, the claim finds one.

The existence condition (`HashRing.spacing_possible`) is checked against an exhaustive search,
the layout construction against every small count vector, and the claim against a fixed grid of
ring sizes, replication factors and member counts (joins one at a time, in groups, all at once,
and leaves) plus a hypothesis-drawn sample up to 65,536 partitions.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_core import HashRing
from dynamo_core._claim import column_layout
from dynamo_core.hashing import TOKEN_SPACE


def names(count: int, prefix: str = "node") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


def owners(ring: HashRing) -> list[str]:
    return [plist[0] for _, plist in ring.segments()]


def check(ring: HashRing) -> None:
    """Balance always; spacing whenever a spaced layout exists; the report agrees with both."""
    ring._check_invariants()
    assert ring.partitions is not None
    if not len(ring):
        assert ring.spacing_violations() == ()
        return
    counts = Counter(owners(ring))
    assert max(counts.values()) - min(counts.values()) <= 1  # equal weights: k or k + 1
    report = ring.spacing_violations()
    assert report == brute_report(ring)
    if ring.spacing_possible():
        assert report == (), (len(ring), ring.replicas, ring.partitions)
    if len(ring) < ring.replicas:
        assert len(report) == ring.partitions
    window = ring.replicas
    top = max(counts.values())
    assert ring.spacing_possible() == (len(ring) >= window and top * window <= ring.partitions)


def brute_report(ring: HashRing) -> tuple[int, ...]:
    labels = owners(ring)
    size, window = len(labels), ring.replicas
    return tuple(
        start
        for start in range(size)
        if len({labels[(start + i) % size] for i in range(window)}) < window
    )


# -- the existence condition -------------------------------------------------------------------


def spaced_layout_exists(size: int, counts: list[int], window: int) -> bool:
    """Exhaustive search: a cycle holding label i counts[i] times, no label twice in a window."""
    left = list(counts)
    seq: list[int] = []

    def fits(label: int) -> bool:
        pos = len(seq)
        if any(seq[pos - d] == label for d in range(1, window) if pos - d >= 0):
            return False
        # The seam: the last positions must also be apart from the first ones.
        return not any(
            seq[pos + d - size] == label for d in range(1, window) if 0 <= pos + d - size < pos
        )

    def place() -> bool:
        if len(seq) == size:
            return True
        tried: set[int] = set()
        for label in range(len(left)):
            # Labels with the same count left and never used are interchangeable: try one.
            key = left[label] if label not in seq else -1 - label
            if left[label] == 0 or key in tried or not fits(label):
                continue
            tried.add(key)
            left[label] -= 1
            seq.append(label)
            if place():
                return True
            seq.pop()
            left[label] += 1
        return False

    return place()


@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("replicas", [2, 3, 4, 5])
def test_the_existence_condition_matches_an_exhaustive_search(size: int, replicas: int) -> None:
    for members in range(replicas, size + 1):
        ring = HashRing(replicas, partitions=size)
        ring.add_nodes(names(members))
        counts = sorted(Counter(owners(ring)).values(), reverse=True)
        exists = spaced_layout_exists(size, counts, replicas)
        assert ring.spacing_possible() == exists, (size, replicas, members)
        assert (ring.spacing_violations() == ()) == exists


@settings(max_examples=200)
@given(counts=st.lists(st.integers(1, 12), min_size=1, max_size=12))
def test_the_column_layout_spaces_every_label_as_far_as_its_count_allows(
    counts: list[int],
) -> None:
    counts.sort(reverse=True)
    size = sum(counts)
    layout = column_layout(counts, size)
    assert Counter(layout) == dict(enumerate(counts))
    gap = size // counts[0]  # every window up to this size holds distinct labels
    for start in range(size):
        window = [layout[(start + i) % size] for i in range(gap)]
        assert len(set(window)) == len(window)


def test_the_column_layout_on_every_small_count_vector() -> None:
    for size in range(1, 11):
        for labels in range(1, size + 1):
            for counts in partitions_of(size, labels):
                layout = column_layout(counts, size)
                gap = size // counts[0]
                for start in range(size):
                    window = {layout[(start + i) % size] for i in range(gap)}
                    assert len(window) == gap, (size, counts)


def partitions_of(total: int, parts: int) -> Iterator[list[int]]:
    """Every way to write `total` as `parts` positive integers, in decreasing order."""
    for combo in itertools.combinations_with_replacement(range(total, 0, -1), parts):
        if sum(combo) == total:
            yield list(combo)


# -- the claim over a grid -----------------------------------------------------------------------

GRID = [(size, replicas) for size in (16, 32, 64, 128) for replicas in (2, 3, 4, 5)]


@pytest.mark.parametrize(("size", "replicas"), GRID)
def test_one_at_a_time_then_leaving_one_at_a_time(size: int, replicas: int) -> None:
    ring = HashRing(replicas, partitions=size)
    members = names(min(size, 16))
    for node in members:
        ring.add_node(node)
        check(ring)
    for node in members[::3] + members[1::3] + members[2::3]:
        ring.remove_node(node)
        check(ring)


@pytest.mark.parametrize(("size", "replicas"), GRID)
def test_all_at_once_and_in_groups(size: int, replicas: int) -> None:
    for count in range(1, min(size, 16) + 1):
        ring = HashRing(replicas, partitions=size)
        ring.add_nodes(names(count))
        check(ring)
    grouped = HashRing(replicas, partitions=size)
    pool = names(min(size, 15), "g")
    for first in range(0, len(pool), 3):
        grouped.add_nodes(pool[first : first + 3])
        check(grouped)
    while len(grouped) > 1:
        grouped.remove_nodes(grouped.nodes[1:3])
        check(grouped)


@settings(max_examples=12)
@given(
    bits=st.integers(4, 16),
    replicas=st.integers(2, 5),
    data=st.data(),
)
def test_drawn_sizes_histories_and_names(bits: int, replicas: int, data: st.DataObject) -> None:
    size = 1 << bits
    ring = HashRing(replicas, partitions=size)
    pool = data.draw(
        st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=24, max_size=24, unique=True)
    )
    # A big ring gets a few large steps; a small one many single steps.
    steps = 3 if size > 4096 else 10
    for _ in range(steps):
        outside = [node for node in pool if node not in ring]
        leave: bool = data.draw(st.booleans())
        if ring.nodes and leave:
            members: list[str] = list(ring.nodes)
            leaving = data.draw(st.lists(st.sampled_from(members), max_size=3, unique=True))
            ring.remove_nodes(leaving)
        elif outside and len(ring) < size:
            most = min(len(outside), size - len(ring), 12)
            joining = data.draw(st.lists(st.sampled_from(outside), max_size=most, unique=True))
            ring.add_nodes(joining)
        check(ring)


# -- what a ring that cannot be spaced keeps ------------------------------------------------------


def test_with_as_many_members_as_replicas_only_the_seam_repeats() -> None:
    # 64 is not a multiple of 3: some node owns 22 > 64 / 3 partitions, so no layout is spaced;
    # the claim keeps the repeats to the seam of the layout.
    ring = HashRing(3, partitions=64)
    ring.add_nodes(["a", "b", "c"])
    assert not ring.spacing_possible()
    assert 0 < len(ring.spacing_violations()) <= 3
    ring.add_node("d")  # four nodes: 16 each, spaced
    assert ring.spacing_possible()
    assert ring.spacing_violations() == ()


def test_too_few_partitions_for_the_members_is_reported() -> None:
    # 11 equal nodes on 16 partitions with 10 replicas: some node owns 2 partitions, and 2 * 10
    # exceeds 16, so no layout is spaced and the report says where.
    ring = HashRing(10, partitions=16)
    ring.add_nodes(names(11))
    assert not ring.spacing_possible()
    assert ring.spacing_violations()
    ring.add_nodes(names(5, "more"))  # 16 nodes, one partition each: trivially spaced
    assert ring.spacing_possible()
    assert ring.spacing_violations() == ()


def test_zones_of_equal_capacity_are_spaced_not_only_nodes() -> None:
    ring = HashRing(3, partitions=256)
    for round_ in range(3):
        group = [f"r{round_}-z{z}" for z in range(4)]
        ring.add_nodes(group, zones={node: f"az{z}" for z, node in enumerate(group)})
        zones = [ring.zone(node) for node in owners(ring)]
        assert ring.spacing_possible()
        assert ring.spacing_violations() == ()
        assert all(len({zones[(i + j) % 256] for j in range(3)}) == 3 for i in range(256))


def test_weighted_members_are_spaced_when_the_heaviest_fits() -> None:
    ring = HashRing(3, partitions=128)
    ring.add_nodes(names(6), weights={"node-000": 2.0, "node-001": 1.5})
    ring._check_invariants()
    # node-000 holds 2 / 7.5 of 128, about 34 partitions: 3 * 34 <= 128.
    assert ring.spacing_possible()
    assert ring.spacing_violations() == ()


def test_strategy_1_has_no_spacing_report() -> None:
    ring = HashRing(3, vnodes=4)
    with pytest.raises(ValueError, match="strategy-3"):
        ring.spacing_violations()
    with pytest.raises(ValueError, match="strategy-3"):
        ring.spacing_possible()


# -- partition_of --------------------------------------------------------------------------------


@given(tok=st.integers(0, TOKEN_SPACE - 1), bits=st.integers(0, 12))
def test_partition_of_is_the_partition_whose_range_holds_the_token(tok: int, bits: int) -> None:
    ring = HashRing(3, partitions=1 << bits)
    index = ring.partition_of(tok)
    assert tok in ring.partition_range(index)
    ring.add_node("a")
    assert ring.partition(tok.to_bytes(8, "big")) == ring.partition_of(
        ring.token(tok.to_bytes(8, "big"))
    )


@pytest.mark.parametrize(
    ("tok", "error", "match"),
    [
        (-1, ValueError, r"\[0, 2\*\*64\)"),
        (TOKEN_SPACE, ValueError, r"\[0, 2\*\*64\)"),
        (1.0, TypeError, "int"),
    ],
)
def test_partition_of_refuses_bad_tokens(tok: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        HashRing(3, partitions=16).partition_of(tok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strategy-3"):
        HashRing(3, vnodes=2).partition_of(0)


def test_the_committed_spacing_table_is_current_for_small_rings() -> None:
    script = Path(__file__).parent.parent / "docs" / "gen_spacing_table.py"
    spec = importlib.util.spec_from_file_location("gen_spacing_table", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check", "--sizes", "16,32"]) == 0, (
        "run: python docs/gen_spacing_table.py"
    )


# -- zones of equal capacity ----------------------------------------------------------------------


def zone_spacing_exists(size: int, replicas: int, zones: int, per_zone: int) -> bool:
    """Equal nodes hold the floor or ceiling of size / nodes: can each zone keep to size // r?"""
    floor, extra = divmod(size, zones * per_zone)
    cap = size // replicas
    return per_zone * floor <= cap and zones * min(per_zone * (floor + (extra > 0)), cap) >= size


def zone_histories(size: int, replicas: int, zones: int) -> Iterator[tuple[str, HashRing]]:
    """Rings with every zone holding the same number of nodes, after four kinds of history."""
    most = min(24, size) // zones
    grid = [[f"z{z}-n{i:02d}" for z in range(zones)] for i in range(most)]
    zone_of = {node: node.split("-")[0] for round_ in grid for node in round_}
    single, rounds = HashRing(replicas, partitions=size), HashRing(replicas, partitions=size)
    for count, round_ in enumerate(grid, 1):
        for node in round_:
            single.add_node(node, zone=zone_of[node])
        yield "one at a time", single
        rounds.add_nodes(round_, zones={n: zone_of[n] for n in round_})
        yield "rounds", rounds
        batch = HashRing(replicas, partitions=size)
        nodes = [n for r in grid[:count] for n in r]
        batch.add_nodes(nodes, zones={n: zone_of[n] for n in nodes})
        yield "all at once", batch
    for round_ in grid[:0:-1]:
        rounds.remove_nodes(round_)
        yield "leaves", rounds


def check_zones(ring: HashRing, zones: int) -> bool:
    """If a zone-spaced balanced layout exists, the ring has one; return whether it existed."""
    ring._check_invariants()
    counts = Counter(owners(ring))
    assert max(counts.values()) - min(counts.values()) <= 1  # equal weights: k or k + 1
    if not zone_spacing_exists(ring.partitions or 0, ring.replicas, zones, len(ring) // zones):
        return False
    labels = [ring.zone(node) for node in owners(ring)]
    size, window = len(labels), ring.replicas
    assert ring.spacing_possible()
    assert ring.spacing_violations() == ()
    assert all(len({labels[(i + j) % size] for j in range(window)}) == window for i in range(size))
    return True


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_equal_zones_are_spaced_whenever_a_balanced_layout_allows(size: int, replicas: int) -> None:
    spaced = 0
    for zones in range(replicas, replicas + 3):
        for _, ring in zone_histories(size, replicas, zones):
            spaced += check_zones(ring, zones)
    assert spaced, "the grid must hold rings that can be spaced by zone"


def test_uneven_remainders_are_spread_over_the_zones() -> None:
    # 10 equal nodes in two zones share 16 partitions: six nodes hold 2, four hold 1. Both zones
    # can hold 8 only if each has three of the six; the claim spreads them so.
    ring = HashRing(2, partitions=16)
    nodes = [f"{zone}-{i}" for i in range(5) for zone in ("a", "b")]
    ring.add_nodes(nodes, zones={node: node[0] for node in nodes})
    per_zone = Counter(ring.zone(node) for node in owners(ring))
    assert per_zone == {"a": 8, "b": 8}
    assert check_zones(ring, 2)


@settings(max_examples=5, deadline=None)
@given(bits=st.integers(7, 10), replicas=st.integers(2, 5), more=st.integers(0, 2))
def test_drawn_large_rings_space_equal_zones_grown_in_rounds(
    bits: int, replicas: int, more: int
) -> None:
    zones = replicas + more
    ring = HashRing(replicas, partitions=1 << bits)
    for i in range(min(24 // zones, 4)):
        group = [f"z{z}-n{i:02d}" for z in range(zones)]
        ring.add_nodes(group, zones={node: node.split("-")[0] for node in group})
        check_zones(ring, zones)

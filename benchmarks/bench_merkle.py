"""Merkle trees: bulk build beside pymerkle and merkletools, updates, diffs and exchange costs.

pymerkle and merkletools are audit-log trees: one leaf per item, no update, no diff. The bulk-build
groups give all three the same items — ``(key, item_digest(key, value))`` pairs, the digest a
store keeps beside each value — and each builds its tree and root from them. The other groups
have no peer (the peers cannot update or diff) and compare against bare-Python floors doing the
same work inline. `report` prints what an exchange costs in digests, bytes and round trips.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import random
import warnings
from collections.abc import Callable, Iterable

import mmh3

from benchmarks.harness import Case, Group
from dynamo_core.merkle import (
    DIGEST_SIZE,
    LoadItems,
    MerkleTree,
    Nodes,
    depth_for,
    encode_message,
    item_digest,
    run_exchange,
    tree_memory,
)

Item = tuple[bytes, bytes]
_MASK = 2**64 - 1
_PERSON = b"dynamo-core/tree"


def _items(n: int, salt: bytes = b"") -> list[Item]:
    keys = [b"user:%09d" % i for i in range(n)]
    return [(key, item_digest(key, b"value" + salt)) for key in keys]


# -- bare floors: the same work inlined ---------------------------------------------------------


def _floor_leaves(items: Iterable[Item], depth: int) -> list[int]:
    shift = 64 - depth
    hash128 = mmh3.hash128
    from_bytes = int.from_bytes
    acc = [0] * (1 << depth)
    for key, digest in items:
        acc[(hash128(key, 0, True, False) & _MASK) >> shift] ^= from_bytes(digest)
    return acc


def _floor_levels(leaves: list[int], depth: int) -> list[list[bytes]]:
    levels = [[value.to_bytes(DIGEST_SIZE) for value in leaves]]
    for height in range(1, depth + 1):
        base = hashlib.blake2b(bytes((1, height)), digest_size=DIGEST_SIZE, person=_PERSON)
        below = levels[-1]
        level = []
        for i in range(0, len(below), 2):
            hasher = base.copy()
            hasher.update(below[i] + below[i + 1])
            level.append(hasher.digest())
        levels.append(level)
    return levels


def _floor_build(items: list[Item], depth: int) -> bytes:
    return _floor_levels(_floor_leaves(items, depth), depth)[-1][0]


def _floor_diff(mine: list[list[bytes]], theirs: list[list[bytes]]) -> list[int]:
    frontier = [0] if mine[-1][0] != theirs[-1][0] else []
    for height in range(len(mine) - 1, 0, -1):
        below_mine, below_theirs = mine[height - 1], theirs[height - 1]
        frontier = [
            child
            for index in frontier
            for child in (2 * index, 2 * index + 1)
            if below_mine[child] != below_theirs[child]
        ]
    return frontier


# -- groups ------------------------------------------------------------------------------------


def _peers() -> tuple[Callable[[list[bytes]], object], Callable[[list[str]], object]]:
    from pymerkle import InmemoryTree

    with warnings.catch_warnings():  # merkletools warns that pysha3 is missing; sha256 is fine
        warnings.simplefilter("ignore")
        from merkletools import MerkleTools

    def pymerkle_build(entries: list[bytes]) -> object:
        return InmemoryTree.init_from_entries(entries).get_root()

    def merkletools_build(hex_leaves: list[str]) -> object:
        tools = MerkleTools()
        tools.add_leaf(hex_leaves)
        tools.make_tree()
        return tools.get_merkle_root()

    return pymerkle_build, merkletools_build


def _build_group(n: int) -> Group:
    pymerkle_build, merkletools_build = _peers()
    items = _items(n)
    digests = [digest for _, digest in items]
    hex_leaves = [digest.hex() for digest in digests]
    fitted = depth_for(n)
    return Group(
        f"bulk build, {n:,} items (root included)",
        [
            Case("MerkleTree.from_items, depth 16", lambda: MerkleTree.from_items(items).root),
            Case(
                f"MerkleTree.from_items, depth_for(n) = {fitted}",
                lambda: MerkleTree.from_items(items, fitted).root,
            ),
            Case("pymerkle", lambda: pymerkle_build(digests)),
            Case("merkletools", lambda: merkletools_build(hex_leaves)),
            Case("floor, depth 16", lambda: _floor_build(items, 16)),
        ],
        compare=("pymerkle", "merkletools", "floor, depth 16"),
    )


def _build_groups(quick: bool) -> list[Group]:
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    return [_build_group(n) for n in sizes]


def _update_groups(quick: bool) -> list[Group]:
    n, depth = (20_000 if quick else 100_000), 16
    items = _items(n)
    keys = [key for key, _ in items[:1024]]
    current = [digest for _, digest in items[:1024]]
    other = [item_digest(key, b"other") for key in keys]
    lazy_tree = MerkleTree.from_items(items, depth)
    eager_tree = lazy_tree.copy()
    step = itertools.cycle(range(1024)).__next__
    lazy_state = [current[:], other[:]]
    eager_state = [current[:], other[:]]

    def update(tree: MerkleTree, state: list[list[bytes]]) -> None:
        i = step()
        old, new = state[0][i], state[1][i]
        tree.update(keys[i], old, new)
        state[0][i], state[1][i] = new, old

    def update_and_root() -> bytes:
        update(eager_tree, eager_state)
        return eager_tree.root

    floor_leaves = _floor_leaves(items, depth)
    floor_levels = _floor_levels(floor_leaves, depth)
    floor_state = [current[:], other[:]]
    bases = [
        hashlib.blake2b(bytes((1, h)), digest_size=DIGEST_SIZE, person=_PERSON)
        for h in range(depth + 1)
    ]
    hash128, from_bytes = mmh3.hash128, int.from_bytes

    def floor_update_and_root() -> bytes:
        i = step()
        old, new = floor_state[0][i], floor_state[1][i]
        floor_state[0][i], floor_state[1][i] = new, old
        index = (hash128(keys[i], 0, True, False) & _MASK) >> (64 - depth)
        floor_leaves[index] ^= from_bytes(old) ^ from_bytes(new)
        floor_levels[0][index] = floor_leaves[index].to_bytes(DIGEST_SIZE)
        for height in range(1, depth + 1):
            index >>= 1
            below = floor_levels[height - 1]
            hasher = bases[height].copy()
            hasher.update(below[2 * index] + below[2 * index + 1])
            floor_levels[height][index] = hasher.digest()
        return floor_levels[depth][0]

    return [
        Group(
            f"single update, {n:,} items, depth {depth}",
            [
                Case("update (rehash deferred)", lambda: update(lazy_tree, lazy_state)),
                Case("update + root", update_and_root),
                Case("floor: XOR + rehash path", floor_update_and_root),
            ],
            compare=("floor: XOR + rehash path",),
        )
    ]


def _diff_group(items: list[Item], base: MerkleTree, changes: int) -> Group:
    depth = base.depth
    changed = dict(items)
    for key, _ in random.Random(changes).sample(items, changes):
        changed[key] = item_digest(key, b"changed")
    other = MerkleTree.from_items(changed.items(), depth)
    assert len(base.diff_segments(other)) <= changes
    mine = _floor_levels(_floor_leaves(items, depth), depth)
    theirs = _floor_levels(_floor_leaves(list(changed.items()), depth), depth)

    def scan_every_leaf() -> list[int]:
        return [i for i, (x, y) in enumerate(zip(mine[0], theirs[0], strict=True)) if x != y]

    return Group(
        f"diff, {changes:,} change(s) in {len(items):,} items, depth {depth}",
        [
            Case("MerkleTree.diff", lambda: base.diff(other)),
            Case("MerkleTree.diff_segments", lambda: base.diff_segments(other)),
            Case("floor: top-down", lambda: _floor_diff(mine, theirs)),
            Case("floor: scan every leaf", scan_every_leaf),
        ],
        compare=("floor: top-down", "floor: scan every leaf"),
    )


def _diff_groups(quick: bool) -> list[Group]:
    n, depth = (20_000 if quick else 100_000), 16
    items = _items(n)
    base = MerkleTree.from_items(items, depth)
    return [_diff_group(items, base, changes) for changes in (1, 1000)]


class _Replica:
    """Items indexed by segment, so a LoadItems costs only the items asked for."""

    def __init__(self, items: Iterable[Item], depth: int) -> None:
        self.store = dict(items)
        self.tree = MerkleTree.from_items(self.store.items(), depth)
        self.by_segment: dict[int, list[Item]] = {}
        for key, digest in self.store.items():
            self.by_segment.setdefault(self.tree.segment(key), []).append((key, digest))

    def load(self, request: LoadItems) -> list[Item]:
        return [item for index in request.segments for item in self.by_segment.get(index, ())]


def _diverged(n: int, d: int, depth: int, seed: int = 1) -> tuple[_Replica, _Replica]:
    items = _items(n)
    rnd = random.Random(seed)
    a, b = dict(items), dict(items)
    for i, (key, _) in enumerate(rnd.sample(items, d)):
        if i % 3 == 0:
            del b[key]
        elif i % 3 == 1:
            del a[key]
        else:
            b[key] = item_digest(key, b"newer")
    return _Replica(a.items(), depth), _Replica(b.items(), depth)


def _every_leaf_bytes(tree: MerkleTree) -> int:
    return len(encode_message(Nodes(0, bytes(tree._level(0)))))


def _exchange_groups(quick: bool) -> list[Group]:
    n, depth = (20_000 if quick else 100_000), 16
    a, b = _diverged(n, 1, depth)

    def ship_every_leaf() -> list[int]:
        data = json.dumps({"leaves": base64.b64encode(bytes(b.tree._level(0))).decode()})
        theirs = base64.b64decode(json.loads(data)["leaves"])
        mine = a.tree._level(0)
        return [
            i
            for i in range(0, len(mine), DIGEST_SIZE)
            if mine[i : i + DIGEST_SIZE] != theirs[i : i + DIGEST_SIZE]
        ]

    return [
        Group(
            f"exchange in one process, 1 differing key in {n:,}, depth {depth}",
            [
                Case("run_exchange", lambda: run_exchange(a.tree, b.tree, a.load, b.load)),
                Case("floor: ship every leaf and compare", ship_every_leaf),
            ],
            compare=("floor: ship every leaf and compare",),
        )
    ]


def groups(quick: bool) -> list[Group]:
    return (
        _build_groups(quick) + _update_groups(quick) + _diff_groups(quick) + _exchange_groups(quick)
    )


# -- figures that are not timings --------------------------------------------------------------


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def exchange_cost(n: int, d: int, depth: int, levels: int) -> dict[str, float]:
    """Run one exchange over two replicas of n keys that differ in d keys; return its costs."""
    a, b = _diverged(n, d, depth, seed=d + 17)
    report = run_exchange(a.tree, b.tree, a.load, b.load, levels_per_round=levels)
    assert report.repairs == d
    bound = d * (depth - math.log2(d)) if d else 1.0
    return {
        "segments": len(report.segments),
        "round_trips": report.round_trips,
        "rt_bound": math.ceil(depth / levels) + 2,
        "digests": report.digests,
        "bound": bound,
        "ratio": report.digests / bound,
        "bytes": report.wire_bytes,
        "items": report.items,
        "every_leaf_digests": 2**depth,
        "every_leaf_bytes": _every_leaf_bytes(a.tree),
    }


def report(quick: bool) -> str:
    n, depth = (25_000, 14) if quick else (100_000, 16)
    segments = 2**depth
    divergences = [1, 10, 100, segments // 100, segments // 10]
    rows = []
    for d in divergences:
        cost = exchange_cost(n, d, depth, 2)
        rows.append(
            [
                f"{d:,}",
                f"{cost['segments']:,}",
                f"{cost['round_trips']} (≤ {cost['rt_bound']})",
                f"{cost['digests']:,}",
                f"{cost['bound']:,.0f}",
                f"{cost['ratio']:.2f}",
                f"{cost['bytes']:,}",
                f"{cost['every_leaf_digests']:,}",
                f"{cost['every_leaf_bytes']:,}",
                f"{cost['every_leaf_bytes'] / cost['bytes']:.1f}",
            ]
        )
    first = _table(
        f"exchange cost vs divergence: {n:,} keys, depth {depth}, levels_per_round=2",
        [
            "differing keys d",
            "differing segments",
            "round trips",
            "digests",
            "d·(depth - log2 d)",
            "x bound",
            "bytes (all phases)",
            "every leaf: digests",
            "every leaf: bytes",
            "bytes saved x",
        ],
        rows,
    )
    d = segments // 100
    rows = []
    for levels in (1, 2, 3, 4, 6, 8):
        cost = exchange_cost(n, d, depth, levels)
        rows.append(
            [
                str(levels),
                f"{cost['round_trips']} (≤ {cost['rt_bound']})",
                f"{cost['digests']:,}",
                f"{cost['ratio']:.2f}",
                f"{cost['bytes']:,}",
            ]
        )
    second = _table(
        f"levels per round trip, d = {d:,} (1% of segments), {n:,} keys, depth {depth}",
        ["levels_per_round", "round trips", "digests", "x bound", "bytes"],
        rows,
    )
    rows = []
    for keys_per_range in (100, 1_000, 10_000):
        tree_depth = depth_for(keys_per_range)
        per_tree = tree_memory(tree_depth)
        rows.append(
            [
                f"{keys_per_range:,}",
                f"{1000 * keys_per_range:,}",
                str(tree_depth),
                f"{per_tree / 1024:,.1f} KiB",
                f"{1000 * per_tree / 2**20:,.1f} MiB",
            ]
        )
    third = _table(
        "memory: 1,000 ranges, depth = depth_for(keys per range)",
        ["keys per range", "keys on the node", "depth", "per tree (bound)", "1,000 trees"],
        rows,
    )
    return "\n\n".join((first, second, third))

"""The ring: lookups and joins beside uhashring and a bare floor; balance and movement tables.

Timing groups (`groups`) compare `HashRing` (Dynamo strategy 3, 4096 partitions) with uhashring,
the consistent-hash ring a Python user would otherwise pick, both with its default hash (md5)
and with ``hash_fn=mmh3.hash``, and with a bare floor: the same lookup written inline (the
token hash, a shift and a list index, no function call). `report` prints what is not a timing:
load balance for 10, 100 and 1000 equal nodes, and the fraction of keys a join moves.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import mmh3
from uhashring import HashRing as UHashRing

from benchmarks.harness import Case, Group
from dynamo_core import HashRing
from dynamo_core.hashing import TOKEN_SPACE

_MASK = TOKEN_SPACE - 1


def _names(n: int) -> list[str]:
    return [f"node-{i:04d}" for i in range(n)]


def _keys(n: int) -> list[str]:
    return [f"user:{(i * 2654435761) % (1 << 32):08x}" for i in range(n)]


def _ours(nodes: int, **options: Any) -> HashRing:
    ring = HashRing(3, **options)
    for name in _names(nodes):
        ring.add_node(name)
    return ring


def _uh_copy(ring: Any) -> Any:
    """A structural copy of a uhashring ring (it has no copy method; deepcopy is far slower)."""
    new = object.__new__(type(ring))
    new.__dict__.update(ring.__dict__)
    runtime = object.__new__(type(ring.runtime))
    runtime.__dict__.update(ring.runtime.__dict__)
    runtime._keys = list(runtime._keys)
    runtime._ring = dict(runtime._ring)
    runtime._nodes = {name: dict(conf) for name, conf in runtime._nodes.items()}
    runtime._node_points = dict(runtime._node_points)
    runtime._distribution = Counter(runtime._distribution)
    new.runtime = runtime
    new.hashi = runtime.hashi
    return new


def _lookup_groups(n_keys: int) -> list[Group]:
    keys = _keys(n_keys)
    ring = _ours(10)
    vnode_ring = _ours(10, vnodes=64)
    uh = UHashRing(_names(10))
    uh_mmh3 = UHashRing(_names(10), hash_fn=mmh3.hash)
    plists = ring._plists
    owners = ring._owners
    shift = 64 - 12
    hash128 = mmh3.hash128
    mask = _MASK
    ops = len(keys)

    def floor_plist() -> object:
        return [plists[(hash128(k.encode(), 0, True, False) & mask) >> shift] for k in keys]

    def floor_owner() -> object:
        return [owners[(hash128(k.encode(), 0, True, False) & mask) >> shift] for k in keys]

    plist = ring.preference_list
    owner = ring.owner
    return [
        Group(
            f"preference_list(key), 3 replicas, 10 nodes ({ops:,} str keys per call)",
            [
                Case("HashRing (4096 partitions)", lambda: [plist(k) for k in keys], ops),
                Case(
                    "HashRing (vnodes=64)",
                    lambda: [vnode_ring.preference_list(k) for k in keys],
                    ops,
                ),
                Case("uhashring", lambda: [list(uh.range(k, 3, True)) for k in keys], ops),
                Case(
                    "uhashring mmh3",
                    lambda: [list(uh_mmh3.range(k, 3, True)) for k in keys],
                    ops,
                ),
                Case("floor (hash, shift, index)", floor_plist, ops),
            ],
            compare=("uhashring", "uhashring mmh3", "floor (hash, shift, index)"),
        ),
        Group(
            f"owner(key), 10 nodes ({ops:,} str keys per call)",
            [
                Case("HashRing (4096 partitions)", lambda: [owner(k) for k in keys], ops),
                Case("HashRing (vnodes=64)", lambda: [vnode_ring.owner(k) for k in keys], ops),
                Case("uhashring", lambda: [uh.get_node(k) for k in keys], ops),
                Case("uhashring mmh3", lambda: [uh_mmh3.get_node(k) for k in keys], ops),
                Case("floor (hash, shift, index)", floor_owner, ops),
            ],
            compare=("uhashring", "uhashring mmh3", "floor (hash, shift, index)"),
        ),
    ]


def _membership_groups() -> list[Group]:
    base = _ours(100)
    vnode_base = _ours(100, vnodes=64)
    uh = UHashRing(_names(100))
    uh_mmh3 = UHashRing(_names(100), hash_fn=mmh3.hash)
    joiner = "node-new"

    def ours_add() -> None:
        base.copy().add_node(joiner)

    def ours_vnodes_add() -> None:
        vnode_base.copy().add_node(joiner)

    def ours_copy() -> None:
        base.copy()

    def uh_add() -> None:
        _uh_copy(uh).add_node(joiner)

    def uh_mmh3_add() -> None:
        _uh_copy(uh_mmh3).add_node(joiner)

    def ours_cycle() -> None:
        base.add_node(joiner)
        base.remove_node(joiner)

    def uh_cycle() -> None:
        uh.add_node(joiner)
        uh.remove_node(joiner)

    return [
        Group(
            "add_node to a 100-node ring (each case copies the ring, then adds)",
            [
                Case("HashRing (4096 partitions)", ours_add),
                Case("HashRing (vnodes=64)", ours_vnodes_add),
                Case("uhashring", uh_add),
                Case("uhashring mmh3", uh_mmh3_add),
                Case("HashRing copy alone", ours_copy),
            ],
            compare=("uhashring", "uhashring mmh3"),
        ),
        Group(
            "add_node then remove_node, 100-node ring",
            [
                Case("HashRing (4096 partitions)", ours_cycle),
                Case("uhashring", uh_cycle),
            ],
            compare=("uhashring",),
        ),
    ]


def groups(quick: bool) -> list[Group]:
    return _lookup_groups(1_000 if quick else 10_000) + _membership_groups()


# -- balance and movement ----------------------------------------------------------------------


def _max_over_mean(shares: dict[str, float]) -> float:
    return max(shares.values()) / (sum(shares.values()) / len(shares))


def _uh_shares(ring: Any) -> dict[str, float]:
    """Primary shares of a uhashring ring, exactly, from its sorted points (md5: 2**128)."""
    points = ring.runtime._keys
    owner = ring.runtime._ring
    space = 2**128 if ring.runtime._hash_fn.__module__ != "mmh3" else 2**32
    shares: dict[str, float] = dict.fromkeys(ring.runtime._nodes, 0.0)
    for prev, point in itertools.pairwise([points[-1] - space, *points]):
        shares[owner[point]] += (point - prev) / space
    return shares


def _vnode_ring(nodes: int, vnodes: int) -> HashRing:
    """A strategy-1 ring built in one pass (its placement does not depend on join order)."""
    data: dict[str, Any] = {
        "type": "hash_ring",
        "v": 1,
        "replicas": 3,
        "hash": "murmur3",
        "vnodes": vnodes,
        "nodes": [{"id": name, "weight": 1.0} for name in _names(nodes)],
    }
    return HashRing.from_dict(data)


def _moved_fraction(old: HashRing, new: HashRing) -> float:
    """The fraction of the key space whose owner differs between two rings (exact)."""
    cuts = sorted({r.start for r, _ in old.segments()} | {r.start for r, _ in new.segments()})
    moved = 0
    for i, cut in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else cuts[0] + TOKEN_SPACE
        if old.preference_list_for_token(cut)[0] != new.preference_list_for_token(cut)[0]:
            moved += end - cut
    return moved / TOKEN_SPACE


def _uh_moved_fraction(nodes: int, keys: list[str]) -> float:
    ring = UHashRing(_names(nodes))
    before = [ring.get_node(k) for k in keys]
    ring.add_node("node-new")
    moved: int = sum(a != ring.get_node(k) for a, k in zip(before, keys, strict=True))
    return moved / len(keys)


def report(quick: bool) -> str:
    """Balance (max/mean ownership) and movement on join, as Markdown tables."""
    sizes = (10, 100) if quick else (10, 100, 1000)
    lines = [
        "### Balance: max/mean ownership, equal nodes, 3 replicas",
        "",
        (
            "Primary = share of keys a node coordinates; replicated = share it stores a "
            "replica of (1.00 is perfect)."
        ),
        "",
        "| ring | " + " | ".join(f"{n} nodes: primary / replicated" for n in sizes) + " |",
        "| --- |" + " --- |" * len(sizes),
    ]
    built: dict[int, HashRing] = {n: _ours(n) for n in sizes}
    rows: list[tuple[str, list[str]]] = []
    rows.append(
        (
            "HashRing, 4096 partitions (strategy 3)",
            [
                f"{_max_over_mean(built[n].ownership()):.3f} / "
                f"{_max_over_mean(built[n].ownership(replicated=True)):.3f}"
                for n in sizes
            ],
        )
    )
    if not quick:
        big = {n: _ours(n, partitions=65536) for n in sizes}
        rows.append(
            (
                "HashRing, 65536 partitions (strategy 3)",
                [
                    f"{_max_over_mean(big[n].ownership()):.3f} / "
                    f"{_max_over_mean(big[n].ownership(replicated=True)):.3f}"
                    for n in sizes
                ],
            )
        )
    for vnodes in (16, 64, 256):
        cells = []
        for n in sizes:
            ring = _vnode_ring(n, vnodes)
            cells.append(
                f"{_max_over_mean(ring.ownership()):.3f} / "
                f"{_max_over_mean(ring.ownership(replicated=True)):.3f}"
            )
        rows.append((f"HashRing, vnodes={vnodes} (strategy 1)", cells))
    rows.append(
        (
            "uhashring (160 vnodes, md5), primary only",
            [f"{_max_over_mean(_uh_shares(UHashRing(_names(n)))):.3f}" for n in sizes],
        )
    )
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]

    keys = _keys(20_000 if quick else 100_000)
    lines += [
        "",
        "### Keys moved when one node joins n equal nodes",
        "",
        (
            "HashRing figures are exact (from the token ranges); uhashring's are measured on "
            f"{len(keys):,} keys."
        ),
        "",
        "| ring | " + " | ".join(f"{n} -> {n + 1}" for n in sizes) + " |",
        "| --- |" + " --- |" * len(sizes),
        "| ideal 1/(n+1) | " + " | ".join(f"{1 / (n + 1):.4f}" for n in sizes) + " |",
    ]
    cells = []
    for n in sizes:
        after = built[n].copy()
        after.add_node("node-new")
        cells.append(f"{_moved_fraction(built[n], after):.4f}")
    lines.append("| HashRing, 4096 partitions | " + " | ".join(cells) + " |")
    cells = []
    for n in sizes:
        before = _vnode_ring(n, 64)
        after = before.copy()
        after.add_node("node-new")
        cells.append(f"{_moved_fraction(before, after):.4f}")
    lines.append("| HashRing, vnodes=64 | " + " | ".join(cells) + " |")
    lines.append(
        "| uhashring (160 vnodes) | "
        + " | ".join(f"{_uh_moved_fraction(n, keys):.4f}" for n in sizes)
        + " |"
    )
    lines += ["", *_zone_report(quick)]
    return "\n".join(lines)


def _zone_report(quick: bool) -> list[str]:
    """Replicated balance of a ring in 3 zones, grown in rounds or one node at a time."""
    sizes = (6, 12) if quick else (6, 12, 48)
    lines = [
        "### Zones: 3 zones, 3 replicas, 4096 partitions",
        "",
        (
            "Max/mean replicated ownership, and the share of the data moved by the last growth "
            "step that went to nodes other than the new ones."
        ),
        "",
        "| grown by | " + " | ".join(f"{n} nodes" for n in sizes) + " |",
        "| --- |" + " --- |" * len(sizes),
    ]
    for label, rounds in (("add_nodes, one node per zone per call", True), ("add_node", False)):
        cells = []
        for n in sizes:
            ring = HashRing(3)
            before = ring
            for start in range(0, n, 3):
                names = [f"node-{i:03d}" for i in range(start, start + 3)]
                zones = {name: f"az{i % 3}" for i, name in enumerate(names)}
                before = ring.copy()
                if rounds:
                    ring.add_nodes(names, zones=zones)
                else:
                    for name in names:
                        ring.add_node(name, zone=zones[name])
            plan = before.transfers_to(ring)
            total = sum(t.range.size for t in plan) or 1
            stray = sum(t.range.size for t in plan if t.target not in ring.nodes[-3:])
            replicated = ring.ownership(replicated=True)
            cells.append(f"{_max_over_mean(replicated):.3f}, {stray / total:.1%} astray")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines

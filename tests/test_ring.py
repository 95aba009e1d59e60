"""The consistent-hash ring: placement, lookups, claim properties, plans and serialization."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import mmh3
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from dynamo_core import EmptyRingError, HashRing, TokenRange, Transfer, codec
from dynamo_core import ring as ring_module
from dynamo_core.errors import DecodeError, DynamoError
from dynamo_core.hashing import TOKEN_SPACE, coalesce, keyed_token, token
from dynamo_core.strategies import keys, node_ids, rings, tokens

SECRET = b"0123456789abcdef-cluster-secret!"


def build(names: int | list[str], **options: object) -> HashRing:
    ring = HashRing(**options)  # type: ignore[arg-type]
    for name in names if isinstance(names, list) else [f"node-{i:03d}" for i in range(names)]:
        ring.add_node(name)
    return ring


def counts(ring: HashRing) -> dict[str, int]:
    """Partitions per node of a strategy-3 ring (from the public segments)."""
    return dict(Counter(plist[0] for _, plist in ring.segments()))


def pieces(
    old: HashRing, new: HashRing
) -> Iterator[tuple[TokenRange, tuple[str, ...], tuple[str, ...]]]:
    """The common refinement of two rings: each piece with its old and new preference list."""
    cuts = sorted({r.start for r, _ in old.segments()} | {r.start for r, _ in new.segments()})
    for i, cut in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else (cuts[0] or TOKEN_SPACE)
        yield (
            TokenRange(cut, end),
            old.preference_list_for_token(cut),
            new.preference_list_for_token(cut),
        )


def spacing_violations(ring: HashRing, window: int) -> int:
    """Windows of `window` consecutive partitions that repeat a node (0: spacing holds)."""
    owners = [plist[0] for _, plist in ring.segments()]
    size = len(owners)
    return sum(len({owners[(i + j) % size] for j in range(window)}) < window for i in range(size))


# -- construction and arguments --------------------------------------------------------------------


def test_defaults_are_strategy_3_with_4096_partitions() -> None:
    ring = HashRing()
    assert (ring.replicas, ring.partitions, ring.vnodes, ring.keyed) == (3, 4096, None, False)
    assert ring.nodes == ()
    assert len(ring) == 0
    assert repr(ring) == (
        "HashRing.from_dict({'type': 'hash_ring', 'v': 1, 'replicas': 3, 'nodes': [], "
        "'hash': 'murmur3', 'partitions': 4096, 'owners': []})"
    )
    ring._check_invariants()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"replicas": 0}, ValueError, "replicas"),
        ({"replicas": 65}, ValueError, "replicas"),
        ({"replicas": 2.0}, TypeError, "replicas"),
        ({"replicas": True}, TypeError, "replicas"),
        ({"partitions": 0}, ValueError, "partitions"),
        ({"partitions": -8}, ValueError, "partitions"),
        ({"partitions": 1000}, ValueError, "power of two"),
        ({"partitions": 2**19}, ValueError, "partitions"),
        ({"partitions": 64.0}, TypeError, "partitions"),
        ({"vnodes": 0}, ValueError, "vnodes"),
        ({"vnodes": 4097}, ValueError, "vnodes"),
        ({"vnodes": "8"}, TypeError, "vnodes"),
        ({"partitions": 64, "vnodes": 8}, ValueError, "not both"),
        ({"hash_key": b"short"}, ValueError, "hash_key"),
        ({"hash_key": "a string secret!!"}, TypeError, "hash_key"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        HashRing(**kwargs)  # type: ignore[arg-type]


def test_token_range_is_the_hashing_one_re_exported() -> None:
    from dynamo_core import hashing

    assert ring_module.TokenRange is hashing.TokenRange
    assert "TokenRange" in ring_module.__all__


def test_every_strategy_is_a_hash_ring() -> None:
    for ring in (HashRing(vnodes=4), HashRing(hash_key=SECRET), HashRing(partitions=8)):
        assert isinstance(ring, HashRing)
        ring.add_node("a")
        assert ring.owner("k") == "a"
        assert ring.copy() == ring
        assert type(ring.copy()) is type(ring)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.add_node("a"), ValueError, "already a member"),
        (lambda r: r.add_node(""), ValueError, "node"),
        (lambda r: r.add_node("x" * 256), ValueError, "node"),
        (lambda r: r.add_node(7), TypeError, "node"),
        (lambda r: r.add_node("x", weight=0), ValueError, "weight"),
        (lambda r: r.add_node("x", weight=-1.0), ValueError, "weight"),
        (lambda r: r.add_node("x", weight=math.nan), ValueError, "weight"),
        (lambda r: r.add_node("x", weight=math.inf), ValueError, "weight"),
        (lambda r: r.add_node("x", weight="1"), TypeError, "weight"),
        (lambda r: r.add_node("x", weight=True), TypeError, "weight"),
        (lambda r: r.add_node("x", zone=""), ValueError, "zone"),
        (lambda r: r.add_node("x", zone=3), TypeError, "zone"),
        (lambda r: r.add_node("x", weight=0.001), ValueError, "under one of the 64 partitions"),
        (lambda r: r.remove_node("missing"), ValueError, "not a member"),
        (lambda r: r.remove_node(None), TypeError, "node"),
        (lambda r: r.weight("missing"), ValueError, "not a member"),
        (lambda r: r.zone("missing"), ValueError, "not a member"),
        (lambda r: r.ranges("missing"), ValueError, "not a member"),
    ],
    ids=[
        "duplicate",
        "empty-id",
        "long-id",
        "int-id",
        "zero-weight",
        "negative-weight",
        "nan-weight",
        "inf-weight",
        "str-weight",
        "bool-weight",
        "empty-zone",
        "int-zone",
        "share-under-one",
        "remove-missing",
        "remove-none",
        "weight-missing",
        "zone-missing",
        "ranges-missing",
    ],
)
def test_bad_membership_changes_raise_and_change_nothing(
    call: object, error: type, match: str
) -> None:
    ring = build(["a", "b", "c"], partitions=64)
    before = ring.to_dict()
    with pytest.raises(error, match=match):
        call(ring)  # type: ignore[operator]
    assert ring.to_dict() == before
    ring._check_invariants()


def test_vnodes_weight_is_capped_per_node() -> None:
    ring = HashRing(vnodes=4096)
    with pytest.raises(ValueError, match="tokens"):
        ring.add_node("big", weight=100.0)
    assert len(ring) == 0


def test_membership_accessors() -> None:
    ring = HashRing(partitions=64)
    ring.add_node("b", weight=2.5, zone="z1")
    ring.add_node("a")
    assert ring.nodes == ("a", "b")
    assert "a" in ring
    assert "c" not in ring
    assert 3 not in ring
    assert (ring.weight("b"), ring.zone("b"), ring.weight("a"), ring.zone("a")) == (
        2.5,
        "z1",
        1.0,
        None,
    )


# -- the empty ring --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{}, {"vnodes": 4}, {"hash_key": SECRET}, {"partitions": 1}], ids=str
)
def test_lookups_on_an_empty_ring_raise_empty_ring_error(options: dict[str, object]) -> None:
    ring = HashRing(**options)  # type: ignore[arg-type]
    for lookup in (ring.owner, ring.preference_list, ring.walk):
        with pytest.raises(EmptyRingError, match="no nodes"):
            lookup("key")
        with pytest.raises(EmptyRingError):
            lookup(b"key")
    with pytest.raises(EmptyRingError):
        ring.preference_list_for_token(5)
    assert issubclass(EmptyRingError, LookupError)
    assert issubclass(EmptyRingError, DynamoError)
    assert ring.ownership() == {}
    assert ring.segments() == []
    # Emptied again after use, it behaves the same.
    ring.add_node("a")
    ring.remove_node("a")
    ring._check_invariants()
    with pytest.raises(EmptyRingError):
        ring.owner("key")


# -- lookups ---------------------------------------------------------------------------------------


@given(key=keys())
def test_inlined_lookup_agrees_with_the_token_hash(key: str | bytes) -> None:
    ring = RING_10
    tok = token(key)
    assert ring.token(key) == tok
    plist = ring.preference_list(key)
    assert plist == ring.preference_list_for_token(tok)
    assert plist == ring.segments()[tok >> (64 - 12)][1]
    assert ring.owner(key) == plist[0]
    assert ring.partition(key) == tok >> 52
    assert tok in ring.partition_range(ring.partition(key))
    if isinstance(key, str):
        assert ring.preference_list(key.encode()) == plist


RING_10 = build(10)
KEYED_3 = build(3, hash_key=SECRET)
VNODES_3 = build(3, vnodes=4)


@given(key=st.binary(max_size=64))
def test_bytes_keys_of_keyed_and_strategy_1_rings_use_their_own_token(key: bytes) -> None:
    # Only the default unkeyed strategy-3 ring may take the inlined bytes path.
    keyed = keyed_token(key, SECRET)
    assert KEYED_3.token(key) == keyed
    assert KEYED_3.preference_list(key) == KEYED_3.preference_list_for_token(keyed)
    assert VNODES_3.token(key) == token(key)
    assert VNODES_3.preference_list(key) == VNODES_3.preference_list_for_token(token(key))


def test_the_inlined_hash_is_the_documented_token() -> None:
    # The hot path computes mmh3.hash128(key, 0, True, False) & (2**64 - 1) itself.
    for key in ("", "abc", "ключ", "user:1"):
        expected = mmh3.hash128(key.encode(), 0, True, False) % 2**64
        assert token(key) == expected
        assert RING_10.owner(key) == RING_10.segments()[expected >> 52][1][0]


@pytest.mark.parametrize("ring", [RING_10, build(3, vnodes=4), build(3, hash_key=SECRET)], ids=str)
@pytest.mark.parametrize("bad", [1, None, 1.5, bytearray(b"x"), ["a"]])
def test_bad_keys_raise_type_error(ring: HashRing, bad: object) -> None:
    for lookup in (ring.owner, ring.preference_list, ring.walk, ring.token):
        with pytest.raises(TypeError, match="key"):
            lookup(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("ring", [RING_10, build(3, vnodes=4)], ids=str)
def test_a_lone_surrogate_is_refused_not_hashed(ring: HashRing) -> None:
    # mmh3 would crash on such a str: the ring must encode it first (and fail cleanly).
    for lookup in (ring.owner, ring.preference_list, ring.token):
        with pytest.raises(UnicodeEncodeError):
            lookup("bad \udc00 key")


def test_preference_list_for_token_checks_its_argument() -> None:
    with pytest.raises(TypeError, match="tok"):
        RING_10.preference_list_for_token("5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tok"):
        RING_10.preference_list_for_token(2**64)
    with pytest.raises(ValueError, match="tok"):
        RING_10.preference_list_for_token(-1)


def test_strategy_3_lookup_is_token_shifted_to_a_partition() -> None:
    ring = build(5, partitions=256)
    assert ring.partition_range(0) == TokenRange(0, 2**56)
    assert ring.partition_range(255) == TokenRange(255 << 56, 2**64)
    for key in ("a", "b", b"\x00c"):
        index = token(key) >> 56
        assert ring.partition(key) == index
        assert ring.owner(key) == ring.segments()[index][1][0]
    with pytest.raises(ValueError, match="0..255"):
        ring.partition_range(256)
    with pytest.raises(TypeError, match="index"):
        ring.partition_range(1.0)  # type: ignore[arg-type]
    vnode_ring = build(2, vnodes=2)
    with pytest.raises(ValueError, match="strategy-3"):
        vnode_ring.partition("a")
    with pytest.raises(ValueError, match="strategy-3"):
        vnode_ring.partition_range(0)


def test_strategy_1_places_the_documented_tokens() -> None:
    ring = HashRing(2, vnodes=3)
    ring.add_node("a")
    ring.add_node("b", weight=2.0)
    documented = sorted(
        [(token(f"a#{i}"), "a") for i in range(3)] + [(token(f"b#{i}"), "b") for i in range(6)]
    )
    starts = [rng.start for rng, _ in ring.segments()]
    assert starts == [tok for tok, _ in documented]
    # A key belongs to the first node token strictly greater than its own token.
    for key in ("x", "y", "z", "cart:1", b"\xff"):
        tok = token(key)
        after = [node for t, node in documented if t > tok]
        assert ring.owner(key) == (after[0] if after else documented[0][1])
    # A key exactly on a token belongs to the next one.
    first_tok, _ = documented[0]
    assert ring.preference_list_for_token(first_tok)[0] == documented[1][1]


def test_keyed_rings_place_keys_with_the_keyed_hash() -> None:
    keyed = build(4, hash_key=SECRET, partitions=64)
    plain = build(4, partitions=64)
    assert keyed.keyed
    assert keyed.token("k") == keyed_token("k", SECRET)
    assert keyed.owner("k") == keyed.preference_list_for_token(keyed_token("k", SECRET))[0]
    placements = [(keyed.owner(f"k{i}"), plain.owner(f"k{i}")) for i in range(200)]
    assert any(a != b for a, b in placements)
    keyed_vnodes = HashRing(vnodes=2, hash_key=SECRET)
    keyed_vnodes.add_node("a")
    keyed_vnodes.add_node("b")
    expected = sorted([keyed_token(f"{n}#{i}", SECRET) for n in "ab" for i in range(2)])
    assert [rng.start for rng, _ in keyed_vnodes.segments()] == expected


@given(ring=rings(min_nodes=1), key=keys())
def test_preference_lists_are_distinct_nodes_and_zones_first(ring: HashRing, key: str) -> None:
    plist = ring.preference_list(key)
    assert len(plist) == min(ring.replicas, len(ring))
    assert len(set(plist)) == len(plist)
    assert ring.owner(key) == plist[0]
    zone_keys = [ring.zone(n) or f"node:{n}" for n in plist]
    all_zones = {ring.zone(n) or f"node:{n}" for n in ring.nodes}
    # Distinct zones first: as many different zones as the ring has (up to the list length),
    # and every zone repeat comes after all the zones.
    distinct = len(set(zone_keys))
    assert distinct == min(len(plist), len(all_zones))
    assert len(set(zone_keys[:distinct])) == distinct


@given(ring=rings(min_nodes=1), key=keys())
def test_walk_yields_every_node_once_preference_list_first(ring: HashRing, key: str) -> None:
    walked = list(ring.walk(key))
    plist = ring.preference_list(key)
    assert sorted(walked) == list(ring.nodes)
    assert tuple(walked[: len(plist)]) == plist


def test_walk_continues_in_ring_order_after_the_preference_list() -> None:
    ring = build(6, replicas=2, partitions=64)
    key = "some key"
    start = ring.partition(key)
    owners = [plist[0] for _, plist in ring.segments()]
    order: list[str] = []
    for i in range(64):
        node = owners[(start + i) % 64]
        if node not in order:
            order.append(node)
    walked = list(ring.walk(key))
    plist = ring.preference_list(key)
    assert walked[len(plist) :] == [n for n in order if n not in plist]


# -- balance, spacing, zones -----------------------------------------------------------------------


def test_strategy_3_balance_at_10_nodes_is_within_one_percent() -> None:
    ring = RING_10
    primary = ring.ownership()
    assert max(primary.values()) * len(primary) <= 1.01
    replicated = ring.ownership(replicated=True)
    assert max(replicated.values()) / (sum(replicated.values()) / 10) <= 1.01
    assert set(counts(ring).values()) <= {409, 410}


def test_riak_example_claim_takes_only_what_balance_needs() -> None:
    # Riak's documented case: adding a node to [8, 8, 8, 8] should give [7, 7, 6, 6, 6].
    ring = build(["a", "b", "c", "d"], partitions=32)
    assert counts(ring) == {"a": 8, "b": 8, "c": 8, "d": 8}
    before = ring.copy()
    ring.add_node("e")
    assert sorted(counts(ring).values(), reverse=True) == [7, 7, 6, 6, 6]
    assert counts(ring)["e"] == 6
    changed = [
        i
        for i, ((_, old), (_, new)) in enumerate(
            zip(before.segments(), ring.segments(), strict=True)
        )
        if old[0] != new[0]
    ]
    assert len(changed) == 6
    assert all(ring.segments()[i][1][0] == "e" for i in changed)


@pytest.mark.parametrize("replicas", [2, 3, 4])
@pytest.mark.parametrize("partitions", [64, 1024])
def test_sequential_joins_space_replicas_on_distinct_nodes(replicas: int, partitions: int) -> None:
    ring = HashRing(replicas, partitions=partitions)
    for i in range(12):
        ring.add_node(f"n{i}")
        if len(ring) > replicas:
            # Any `replicas` consecutive partitions are on distinct nodes.
            assert spacing_violations(ring, replicas) == 0, len(ring)
            for _, plist in ring.segments():
                assert len(plist) == replicas


def test_with_as_many_nodes_as_replicas_spacing_is_nearly_met() -> None:
    # 4096 is not a multiple of 3: one node must own 1366 > 4096 / 3 partitions, so at least one
    # window repeats a node; the layout leaves exactly that one.
    ring = build(3, replicas=3)
    assert spacing_violations(ring, 3) <= 2
    ring4 = build(4, replicas=4)
    assert spacing_violations(ring4, 4) == 0


def test_zones_give_each_preference_list_distinct_zones() -> None:
    ring = HashRing(3, partitions=256)
    for i in range(9):
        ring.add_node(f"n{i}", zone=f"az{i % 3}")
    for _, plist in ring.segments():
        assert sorted(ring.zone(n) or "" for n in plist) == ["az0", "az1", "az2"]
    # With two zones for three replicas, both zones come first and a third node fills in.
    two = HashRing(3, partitions=256)
    for i in range(6):
        two.add_node(f"n{i}", zone=f"az{i % 2}")
    for _, plist in two.segments():
        assert {two.zone(plist[0]), two.zone(plist[1])} == {"az0", "az1"}
        assert len(set(plist)) == 3
    two._check_invariants()


def test_zone_spacing_with_one_node_per_zone_is_node_spacing() -> None:
    ring = HashRing(3, partitions=1024)
    for i in range(6):
        ring.add_node(f"n{i}", zone=f"az{i}")
    assert ring._violations() == 0
    assert spacing_violations(ring, 3) == 0


def test_weights_give_proportional_shares() -> None:
    ring = HashRing(partitions=4096)
    ring.add_node("small", weight=1.0)
    ring.add_node("big", weight=3.0)
    ring.add_node("mid", weight=2.0)
    share = counts(ring)
    for node, weight in (("small", 1), ("big", 3), ("mid", 2)):
        exact = 4096 * weight / 6
        assert math.floor(exact) <= share[node] <= math.ceil(exact)
    vnode_ring = HashRing(vnodes=256)
    vnode_ring.add_node("small", weight=1.0)
    vnode_ring.add_node("big", weight=3.0)
    owned = vnode_ring.ownership()
    assert 0.6 < owned["big"] < 0.9


@settings(max_examples=30)
@given(ring=rings(min_nodes=1, strategy="partitions"))
def test_every_node_holds_between_floor_and_ceiling_of_its_share(ring: HashRing) -> None:
    total = sum(ring.weight(n) for n in ring.nodes)
    assert ring.partitions is not None
    for node, count in counts(ring).items():
        exact = ring.partitions * ring.weight(node) / total
        assert math.floor(exact - 1e-9) <= count <= math.ceil(exact + 1e-9)


# -- ownership and ranges --------------------------------------------------------------------------


@given(ring=rings(min_nodes=1))
def test_ownership_sums_to_one_and_replicated_to_the_list_length(ring: HashRing) -> None:
    primary = ring.ownership()
    assert list(primary) == list(ring.nodes)
    assert math.isclose(sum(primary.values()), 1.0)
    replicated = ring.ownership(replicated=True)
    assert math.isclose(sum(replicated.values()), min(ring.replicas, len(ring)))
    for node in ring.nodes:
        assert replicated[node] >= primary[node]


@settings(max_examples=40)
@given(ring=rings(min_nodes=1), data=st.data())
def test_ranges_are_exactly_what_a_node_owns(ring: HashRing, data: st.DataObject) -> None:
    node = data.draw(st.sampled_from(ring.nodes))
    for replicated in (False, True):
        ranges = ring.ranges(node, replicated=replicated)
        assert all(not r.wraps for r in ranges)
        assert all(a.end < b.start for a, b in pairwise(ranges))
        size = sum(r.size for r in ranges)
        assert math.isclose(size / TOKEN_SPACE, ring.ownership(replicated=replicated)[node])
        for rng in ranges:
            for tok in (rng.start, rng.end - 1):
                plist = ring.preference_list_for_token(tok)
                assert node in plist if replicated else plist[0] == node
    tok = data.draw(tokens())
    inside = any(tok in r for r in ring.ranges(node))
    assert inside == (ring.preference_list_for_token(tok)[0] == node)


@given(ring=rings(min_nodes=1))
def test_segments_tile_the_circle(ring: HashRing) -> None:
    segments = ring.segments()
    assert sum(rng.size for rng, _ in segments) == TOKEN_SPACE
    for (a, _), (b, _) in pairwise(segments):
        assert a.end == b.start
    assert segments[-1][0].end % TOKEN_SPACE == segments[0][0].start


# -- movement on join and leave --------------------------------------------------------------------


def moved(old: HashRing, new: HashRing) -> list[tuple[TokenRange, str, str]]:
    return [(rng, a[0], b[0]) for rng, a, b in pieces(old, new) if a[0] != b[0]]


def others_moved_only_for_spacing(
    ring: HashRing, changes: list[tuple[TokenRange, str, str]], movers: list[str], *, source: bool
) -> None:
    """Only the movers' partitions changed hands, unless spacing needed more (strategy 3)."""
    if all((old if source else new) in movers for _, old, new in changes):
        return
    assert ring.partitions is not None  # strategy 1 moves only the movers' ranges
    # While every node holds every key the owners are rearranged freely (no data moves);
    # otherwise only to space a ring that can be spaced, or to reduce violations.
    assert (
        len(ring) <= ring.replicas or not ring.spacing_violations() or not ring.spacing_possible()
    )


@settings(max_examples=60)
@given(ring=rings(min_nodes=1, max_nodes=7, weights=False), node=node_ids())
def test_a_join_moves_its_share_to_the_joiner_and_others_only_for_spacing(
    ring: HashRing, node: str
) -> None:
    assume(node not in ring)
    before = ring.copy()
    ring.add_node(node)
    changes = moved(before, ring)
    others_moved_only_for_spacing(ring, changes, [node], source=False)
    if len(ring) <= ring.replicas:
        assert all(t.target == node for t in check_plan(before, ring))
    fraction = sum(rng.size for rng, _, new in changes if new == node) / TOKEN_SPACE
    if ring.partitions is not None:
        # Exactly the joiner's partitions moved: floor or ceiling of Q / (n + 1).
        assert math.floor(ring.partitions / len(ring)) <= fraction * ring.partitions
        assert fraction * ring.partitions <= math.ceil(ring.partitions / len(ring))
    assert math.isclose(fraction, ring.ownership()[node])


@settings(max_examples=60)
@given(ring=rings(min_nodes=2, weights=False), data=st.data())
def test_a_leave_moves_the_leavers_share_and_others_only_for_spacing(
    ring: HashRing, data: st.DataObject
) -> None:
    node = data.draw(st.sampled_from(ring.nodes))
    before = ring.copy()
    ring.remove_node(node)
    changes = moved(before, ring)
    others_moved_only_for_spacing(ring, changes, [node], source=True)
    fraction = sum(rng.size for rng, old, _ in changes if old == node) / TOKEN_SPACE
    assert math.isclose(fraction, before.ownership()[node])
    if ring.partitions is not None:
        # Handed off evenly: every remaining node is within one partition of the others.
        assert max(counts(ring).values()) - min(counts(ring).values()) <= 1


@settings(max_examples=40)
@given(
    ring=rings(min_nodes=1, max_nodes=7, weights=True, strategy="partitions"),
    weight=st.sampled_from([0.5, 1.0, 2.0]),
)
def test_weighted_joins_move_little_beyond_the_joiners_share(ring: HashRing, weight: float) -> None:
    before = ring.copy()
    ring.add_node("joiner", weight=weight)
    changes = moved(before, ring)
    to_others = [c for c in changes if c[2] != "joiner"]
    # Only to keep every node within one partition of its share may another node gain, and
    # then at most one partition per node, unless spacing needed more.
    if len(to_others) > len(ring):
        others_moved_only_for_spacing(ring, changes, ["joiner"], source=False)
    assert counts(ring)["joiner"] >= 1


def test_join_moves_about_one_over_n_plus_one() -> None:
    ring = build(10)
    before = ring.copy()
    ring.add_node("new")
    fraction = sum(rng.size for rng, _, _ in moved(before, ring)) / TOKEN_SPACE
    assert abs(fraction - 1 / 11) <= 1 / 4096


# -- several nodes at once -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.add_nodes("xyz"), TypeError, "single str"),
        (lambda r: r.add_nodes(["x", "x"]), ValueError, "repeat"),
        (lambda r: r.add_nodes(["x", "a"]), ValueError, "already a member"),
        (lambda r: r.add_nodes(["x"], weights={"y": 2.0}), ValueError, "not being added"),
        (lambda r: r.add_nodes(["x"], zones={"y": "z"}), ValueError, "not being added"),
        (lambda r: r.add_nodes(["x", "y"], weights={"y": -1.0}), ValueError, "weight"),
        (lambda r: r.add_nodes(["x", 5]), TypeError, "node"),
        (lambda r: r.remove_nodes("ab"), TypeError, "single str"),
        (lambda r: r.remove_nodes(["a", "a"]), ValueError, "repeat"),
        (lambda r: r.remove_nodes(["a", "missing"]), ValueError, "not a member"),
    ],
    ids=[
        "str",
        "repeat",
        "member",
        "stray-weight",
        "stray-zone",
        "bad-weight",
        "bad-id",
        "remove-str",
        "remove-repeat",
        "remove-missing",
    ],
)
def test_bad_batches_raise_and_change_nothing(call: object, error: type, match: str) -> None:
    for ring in (build(["a", "b", "c"], partitions=64), build(["a", "b", "c"], vnodes=4)):
        before = ring.to_dict()
        with pytest.raises(error, match=match):
            call(ring)  # type: ignore[operator]
        assert ring.to_dict() == before
        ring._check_invariants()


def test_empty_batches_change_nothing() -> None:
    ring = build(3, partitions=64)
    before = ring.copy()
    ring.add_nodes([])
    ring.remove_nodes([])
    assert ring == before


@settings(max_examples=40)
@given(ring=rings(min_nodes=1, max_nodes=5, weights=False), count=st.integers(1, 3))
def test_a_batch_join_moves_only_to_the_joiners(ring: HashRing, count: int) -> None:
    new = [f"joiner-{i}" for i in range(count)]
    before = ring.copy()
    ring.add_nodes(new, zones=dict.fromkeys(new[:1], "az-new"))
    ring._check_invariants()
    changes = moved(before, ring)
    others_moved_only_for_spacing(ring, changes, new, source=False)
    fraction = sum(rng.size for rng, _, target in changes if target in new) / TOKEN_SPACE
    assert math.isclose(fraction, sum(ring.ownership()[n] for n in new))
    check_plan(before, ring)


@settings(max_examples=40)
@given(ring=rings(min_nodes=3, weights=False), data=st.data())
def test_a_batch_leave_moves_only_the_leavers_share(ring: HashRing, data: st.DataObject) -> None:
    leaving = data.draw(
        st.lists(st.sampled_from(ring.nodes), min_size=1, max_size=len(ring) - 1, unique=True)
    )
    before = ring.copy()
    ring.remove_nodes(leaving)
    ring._check_invariants()
    others_moved_only_for_spacing(ring, moved(before, ring), leaving, source=True)
    check_plan(before, ring)


def test_a_batch_equals_one_by_one_for_strategy_1() -> None:
    batch = build(["a", "b"], vnodes=8)
    batch.add_nodes(["c", "d"], weights={"c": 2.0}, zones={"d": "z"})
    single = build(["a", "b"], vnodes=8)
    single.add_node("c", weight=2.0)
    single.add_node("d", zone="z")
    assert batch == single
    batch.remove_nodes(["a", "c"])
    single.remove_node("c")
    single.remove_node("a")
    assert batch == single


@pytest.mark.parametrize("zones", [3, 4])
def test_growing_zones_in_rounds_keeps_them_spaced(zones: int) -> None:
    ring = HashRing(3, partitions=1024)
    for round_ in range(6):
        names = [f"r{round_}-{z}" for z in range(zones)]
        before = ring.copy()
        ring.add_nodes(names, zones={n: f"az{z}" for z, n in enumerate(names)})
        ring._check_invariants()
        # Spaced but for the seam (1024 is not a multiple of 3): no list walks far.
        assert ring._violations() <= 6
        replicated = ring.ownership(replicated=True)
        assert max(replicated.values()) / (sum(replicated.values()) / len(ring)) <= 1.03
        if round_:
            plan = check_plan(before, ring)
            # Nearly all the data goes to the new nodes (a little moves where the seam shifts).
            others = sum(t.range.size for t in plan if t.target not in names)
            assert others <= 0.03 * sum(t.range.size for t in plan)


# -- transfers -------------------------------------------------------------------------------------


def check_plan(old: HashRing, new: HashRing) -> list[Transfer]:
    plan = old.transfers_to(new)
    if not len(old) or not len(new):
        assert plan == []  # nothing to send, or nobody to send it to
        return plan
    for transfer in plan:
        assert isinstance(transfer, Transfer)
    for rng, before, after in pieces(old, new):
        wanted = {n for n in after if n not in before}
        covering = [t for t in plan if rng.start in t.range]
        assert {t.target for t in covering} == wanted, (rng, before, after)
        assert len(covering) == len(wanted)
        departed = [n for n in before if n not in after and n in new]
        survivors = [n for n in before if n in new]
        targets = [n for n in after if n not in before]
        for t in covering:
            # The whole piece lies inside the transfer, and the source held it before: a node
            # that lost the replica but stayed, else the first survivor, else the old owner.
            assert (rng.end - 1) % TOKEN_SPACE in t.range
            assert t.source in before
            i = targets.index(t.target)
            expected = departed[i] if i < len(departed) else (survivors or before)[0]
            assert t.source == expected
    # Coalesced: no two transfers of the same pair touch.
    by_pair: dict[tuple[str, str], list[TokenRange]] = {}
    for t in plan:
        by_pair.setdefault((t.source, t.target), []).append(t.range)
    for ranges in by_pair.values():
        ends = {r.end % TOKEN_SPACE for r in ranges}
        assert not any(r.start in ends for r in ranges) or len(ranges) == 1
    assert plan == sorted(plan, key=lambda t: (t.range.start, t.source, t.target))
    return plan


@settings(max_examples=60)
@given(ring=rings(min_nodes=1), data=st.data())
def test_transfers_cover_exactly_the_ranges_whose_replicas_changed(
    ring: HashRing, data: st.DataObject
) -> None:
    before = ring.copy()
    for _ in range(data.draw(st.integers(1, 3))):
        if len(ring) > 1 and data.draw(st.booleans()):
            ring.remove_node(data.draw(st.sampled_from(ring.nodes)))
        else:
            ring.add_node(data.draw(node_ids().filter(lambda n: n not in ring)))
    check_plan(before, ring)
    check_plan(ring, before)
    assert before.transfers_to(before.copy()) == []


def test_transfers_of_a_join_all_target_the_joiner_and_coalesce() -> None:
    ring = build(8, partitions=256)
    before = ring.copy()
    ring.add_node("new")
    plan = check_plan(before, ring)
    assert plan
    assert {t.target for t in plan} == {"new"}
    # Each partition the joiner took makes it a replica of 3 consecutive partitions, all sent
    # by the node it took the partition from: one transfer per partition taken.
    covered = sum(t.range.size for t in plan)
    assert covered == 3 * counts(ring)["new"] * 2**56
    assert len(plan) == counts(ring)["new"]
    assert all(t.range.size == 3 * 2**56 for t in plan)


def test_transfers_between_strategies_and_from_an_empty_ring() -> None:
    parts = build(4, partitions=16)
    vnodes = build(4, vnodes=3)
    check_plan(parts, vnodes)
    check_plan(vnodes, parts)
    assert HashRing().transfers_to(parts) == []
    assert parts.transfers_to(HashRing()) == []
    with pytest.raises(ValueError, match="different token hashes"):
        parts.transfers_to(build(4, partitions=16, hash_key=SECRET))
    with pytest.raises(TypeError, match="HashRing"):
        parts.transfers_to("ring")  # type: ignore[arg-type]


def test_a_transfer_of_the_whole_circle_coalesces_into_one() -> None:
    one = build(["a"], partitions=16)
    two = one.copy()
    two.add_node("b")
    plan = one.transfers_to(two)
    assert plan == [Transfer(TokenRange(0, TOKEN_SPACE), "a", "b")]


def test_transfer_validation_and_round_trip() -> None:
    transfer = Transfer(TokenRange(10, 5), "a", "b")
    assert Transfer.from_dict(codec.loads(codec.dumps(transfer.to_dict()))) == transfer
    with pytest.raises(ValueError, match="differ"):
        Transfer(TokenRange(0, 5), "a", "a")
    with pytest.raises(TypeError, match="range"):
        Transfer((0, 5), "a", "b")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="target"):
        Transfer(TokenRange(0, 5), "a", 3)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="differ"):
        Transfer.from_dict({**transfer.to_dict(), "target": "a"})


# -- copies, identity, serialization ---------------------------------------------------------------


@settings(max_examples=40)
@given(ring=rings(), node=node_ids())
def test_a_copy_is_equal_and_independent(ring: HashRing, node: str) -> None:
    copy = ring.copy()
    assert copy == ring
    assert copy.fingerprint == ring.fingerprint
    encoded = ring.to_dict()
    if node in copy:
        copy.remove_node(node)
    else:
        copy.add_node(node)
    copy._check_invariants()
    ring._check_invariants()
    assert ring.to_dict() == encoded
    assert copy != ring
    assert copy.fingerprint != ring.fingerprint


@given(ring=rings())
def test_to_dict_round_trips(ring: HashRing) -> None:
    encoded = ring.to_dict()
    decoded = HashRing.from_dict(codec.loads(codec.dumps(encoded)))
    decoded._check_invariants()
    assert decoded == ring
    assert decoded.to_dict() == encoded
    assert decoded.fingerprint == ring.fingerprint
    assert len(ring.fingerprint) == 16
    if len(ring):
        assert decoded.segments() == ring.segments()


def test_equality_compares_configuration_and_placement() -> None:
    a = build(3, partitions=64)
    assert a == build(3, partitions=64)
    assert a != build(3, partitions=128)
    assert a != build(3, partitions=64, replicas=2)
    assert a != build(3, partitions=64, hash_key=SECRET)
    assert a != build(3, vnodes=4)
    assert a != "ring"
    with pytest.raises(TypeError):
        hash(a)


def test_keyed_rings_never_serialize_the_secret_and_check_it_on_decode() -> None:
    ring = build(3, hash_key=SECRET, partitions=64)
    data = ring.to_dict()
    assert data["hash"] == "blake2b-keyed"
    assert SECRET.hex() not in codec.dumps(data).decode()
    assert SECRET.decode() not in codec.dumps(data).decode()
    assert HashRing.from_dict(data, hash_key=SECRET) == ring
    with pytest.raises(DecodeError, match="pass its hash_key"):
        HashRing.from_dict(data)
    with pytest.raises(DecodeError, match="not the secret"):
        HashRing.from_dict(data, hash_key=SECRET[::-1])
    with pytest.raises(DecodeError, match="16..64"):
        HashRing.from_dict(data, hash_key=b"x" * 100)
    with pytest.raises(DecodeError, match="without a hash_key"):
        HashRing.from_dict(build(3, partitions=64).to_dict(), hash_key=SECRET)


def _with(
    data: dict[str, codec.JSONValue], **changes: codec.JSONValue
) -> dict[str, codec.JSONValue]:
    return {**data, **changes}


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: _with(d, owners=d["owners"][:-1]), "16 entries"),
        (lambda d: _with(d, owners=[0] * 16), "share"),
        (lambda d: _with(d, owners=[9] * 16), "0..2"),
        (lambda d: _with(d, owners=[True] * 16), "integer"),
        (lambda d: _with(d, partitions=24), "power of two"),
        (lambda d: _with(d, partitions=2**20), "partitions"),
        (lambda d: _with(d, replicas=0), "replicas"),
        (lambda d: _with(d, vnodes=4), "exactly one"),
        (lambda d: {k: v for k, v in d.items() if k != "owners"}, "owners"),
        (lambda d: _with(d, nodes=list(reversed(d["nodes"]))), "sort"),
        (lambda d: _with(d, nodes=[{"id": "a", "weight": 0}]), "weight"),
        (lambda d: _with(d, nodes=[{"id": "a", "weight": 1, "extra": 1}]), "unknown"),
        (lambda d: _with(d, nodes=[{"id": "", "weight": 1}]), "id"),
        (lambda d: _with(d, hash="sha1"), "hash"),
        (lambda d: _with(d, key_id="abc"), "key_id"),
        (lambda d: _with(d, type="token_range"), "hash_ring"),
    ],
    ids=[
        "short-owners",
        "unbalanced",
        "owner-index",
        "bool-owner",
        "not-power-of-two",
        "too-many-partitions",
        "zero-replicas",
        "both-strategies",
        "no-owners",
        "unsorted-nodes",
        "zero-weight",
        "unknown-field",
        "empty-id",
        "unknown-hash",
        "key-id-unkeyed",
        "wrong-type",
    ],
)
def test_from_dict_rejects_bad_rings(mutate: object, match: str) -> None:
    data = build(["a", "b", "c"], partitions=16).to_dict()
    with pytest.raises(DecodeError, match=match):
        HashRing.from_dict(mutate(data))  # type: ignore[operator]


def test_from_dict_caps_vnode_tokens_and_nodes() -> None:
    data = build(["a"], vnodes=4096).to_dict()
    data["nodes"] = [{"id": "a", "weight": 100.0}]
    with pytest.raises(DecodeError, match="tokens"):
        HashRing.from_dict(data)
    data["nodes"] = [{"id": f"n{i}", "weight": 1.0} for i in range(ring_module.MAX_NODES + 1)]
    with pytest.raises(DecodeError, match="limit"):
        HashRing.from_dict(data)


PLACEMENT_SCRIPT = textwrap.dedent(
    """
    from dynamo_core import HashRing
    out = []
    for options in ({"partitions": 256}, {"vnodes": 8}):
        ring = HashRing(3, **options)
        for i in range(12):
            ring.add_node(f"node-{i}", weight=1.0 + (i % 3) / 2, zone=f"az{i % 3}")
        ring.remove_node("node-4")
        ring.add_node("late")
        out.append(ring.fingerprint)
        out.extend(",".join(ring.preference_list(f"key-{k}")) for k in range(50))
    print("\\n".join(out))
    """
)


def test_placement_is_identical_across_processes_and_hash_seeds() -> None:
    outputs = set()
    for seed in ("0", "1", "123456789", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", PLACEMENT_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=120,
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    lines = outputs.pop().splitlines()
    assert len(lines) == 102
    ring = HashRing(3, partitions=256)
    for i in range(12):
        ring.add_node(f"node-{i}", weight=1.0 + (i % 3) / 2, zone=f"az{i % 3}")
    ring.remove_node("node-4")
    ring.add_node("late")
    assert lines[0] == ring.fingerprint
    assert lines[1:51] == [",".join(ring.preference_list(f"key-{k}")) for k in range(50)]


# -- the stateful test -----------------------------------------------------------------------------


class RingMachine(RuleBasedStateMachine):
    """Random joins and leaves against a model of the membership; invariants after each step."""

    members = Bundle("members")

    def __init__(self) -> None:
        super().__init__()
        self.ring = HashRing()
        self.model: dict[str, tuple[float, str | None]] = {}
        self.weighted = False

    @initialize(
        kind=st.sampled_from(["partitions", "vnodes"]),
        replicas=st.integers(1, 4),
        partitions=st.sampled_from([16, 64, 256]),
        vnodes=st.integers(1, 6),
        weighted=st.booleans(),
    )
    def start(self, kind: str, replicas: int, partitions: int, vnodes: int, weighted: bool) -> None:
        if kind == "partitions":
            self.ring = HashRing(replicas, partitions=partitions)
        else:
            self.ring = HashRing(replicas, vnodes=vnodes)
        self.weighted = weighted

    @rule(
        target=members,
        node=node_ids(),
        weight=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
        zone=st.none() | st.sampled_from(["az1", "az2", "az3"]),
    )
    def join(self, node: str, weight: float, zone: str | None) -> str:
        weight = weight if self.weighted else 1.0
        before = self.ring.copy()
        if node in self.model:
            with pytest.raises(ValueError, match="already"):
                self.ring.add_node(node, weight=weight, zone=zone)
            assert self.ring == before
            return node
        weights = [w for w, _ in self.model.values()] + [weight]
        partitions = self.ring.partitions
        if partitions is not None and any(partitions * w < sum(weights) for w in weights):
            # Some node's share would be under one partition: the ring refuses the join.
            with pytest.raises(ValueError, match="under one"):
                self.ring.add_node(node, weight=weight, zone=zone)
            assert self.ring == before
            return node
        self.ring.add_node(node, weight=weight, zone=zone)
        self.model[node] = (weight, zone)
        changes = moved(before, self.ring) if len(before) else []
        if not self.weighted:
            others_moved_only_for_spacing(self.ring, changes, [node], source=False)
        check_plan(before, self.ring)
        return node

    @rule(node=consumes(members))
    def leave(self, node: str) -> None:
        before = self.ring.copy()
        if node not in self.model:
            with pytest.raises(ValueError, match="not a member"):
                self.ring.remove_node(node)
            assert self.ring == before
            return
        self.ring.remove_node(node)
        del self.model[node]
        changes = moved(before, self.ring) if len(self.ring) else []
        if not self.weighted:
            others_moved_only_for_spacing(self.ring, changes, [node], source=True)
        check_plan(before, self.ring)

    @rule(
        nodes=st.lists(node_ids(), min_size=1, max_size=3, unique=True),
        zone=st.none() | st.sampled_from(["az1", "az2", "az3"]),
    )
    def join_several(self, nodes: list[str], zone: str | None) -> None:
        assume(not any(node in self.model for node in nodes))
        before = self.ring.copy()
        weights = [w for w, _ in self.model.values()] + [1.0] * len(nodes)
        partitions = self.ring.partitions
        if partitions is not None and any(partitions * w < sum(weights) for w in weights):
            with pytest.raises(ValueError, match="under one"):
                self.ring.add_nodes(nodes, zones=dict.fromkeys(nodes, zone))
            assert self.ring == before
            return
        self.ring.add_nodes(nodes, zones=dict.fromkeys(nodes, zone))
        for node in nodes:
            self.model[node] = (1.0, zone)
        if not self.weighted and len(before):
            others_moved_only_for_spacing(self.ring, moved(before, self.ring), nodes, source=False)
        check_plan(before, self.ring)

    @rule(data=st.data())
    def leave_several(self, data: st.DataObject) -> None:
        if len(self.model) < 2:
            return
        leaving = data.draw(
            st.lists(st.sampled_from(sorted(self.model)), min_size=1, max_size=2, unique=True)
        )
        before = self.ring.copy()
        self.ring.remove_nodes(leaving)
        for node in leaving:
            del self.model[node]
        if not self.weighted and len(self.ring):
            others_moved_only_for_spacing(self.ring, moved(before, self.ring), leaving, source=True)
        check_plan(before, self.ring)

    @rule(data=st.data(), new=node_ids(), weight=st.none() | st.sampled_from([0.5, 2.0]))
    def replace(self, data: st.DataObject, new: str, weight: float | None) -> None:
        if not self.model:
            return
        old = data.draw(st.sampled_from(sorted(self.model)))
        before = self.ring.copy()
        if new in self.model:
            with pytest.raises(ValueError, match="already"):
                self.ring.replace(old, new)
            assert self.ring == before
            return
        weight = weight if self.weighted else None
        weights = [w for n, (w, _) in self.model.items() if n != old]
        weights.append(self.model[old][0] if weight is None else weight)
        partitions = self.ring.partitions
        if partitions is not None and any(partitions * w < sum(weights) for w in weights):
            with pytest.raises(ValueError, match="under one"):
                self.ring.replace(old, new, weight=weight)
            assert self.ring == before
            return
        self.ring.replace(old, new, weight=weight)
        old_weight, zone = self.model.pop(old)
        self.model[new] = (old_weight if weight is None else weight, zone)
        plan = check_plan(before, self.ring)
        if self.ring.partitions is not None and weight in (None, old_weight):
            # Exactly old's partitions change hands, all to new, and new receives all data.
            assert all((o, n) == (old, new) for _, o, n in moved(before, self.ring))
            assert all(t.target == new for t in plan)
            assert len(self.ring.ranges(new)) == len(before.ranges(old))

    @rule(
        data=st.data(),
        weight=st.sampled_from([0.5, 1.0, 2.0]),
        zone=st.none() | st.sampled_from(["az1", "az2", "az3"]),
    )
    def update(self, data: st.DataObject, weight: float, zone: str | None) -> None:
        if not self.model:
            return
        node = data.draw(st.sampled_from(sorted(self.model)))
        weight = weight if self.weighted else 1.0
        before = self.ring.copy()
        weights = [w for n, (w, _) in self.model.items() if n != node] + [weight]
        partitions = self.ring.partitions
        if partitions is not None and any(partitions * w < sum(weights) for w in weights):
            with pytest.raises(ValueError, match="under one"):
                self.ring.update_node(node, weight=weight, zone=zone)
            assert self.ring == before
            return
        self.ring.update_node(node, weight=weight, zone=zone)
        self.model[node] = (weight, zone)
        check_plan(before, self.ring)

    @rule()
    def round_trip(self) -> None:
        assert HashRing.from_dict(self.ring.to_dict()) == self.ring

    @invariant()
    def consistent(self) -> None:
        self.ring._check_invariants()
        assert self.ring.nodes == tuple(sorted(self.model))
        for node, (weight, zone) in self.model.items():
            assert (self.ring.weight(node), self.ring.zone(node)) == (weight, zone)
        if self.model:
            assert math.isclose(sum(self.ring.ownership().values()), 1.0)
            assert len(self.ring.preference_list("probe")) == min(
                self.ring.replicas, len(self.model)
            )


RingMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=20)
TestRingMachine = RingMachine.TestCase


# -- the docs figure -------------------------------------------------------------------------------


def test_the_committed_ring_figure_is_current() -> None:
    script = Path(__file__).parent.parent / "docs" / "gen_ring_figure.py"
    spec = importlib.util.spec_from_file_location("gen_ring_figure", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    svg = module.render()
    assert svg.startswith("<svg ")
    assert svg == module.render(), "the figure must be deterministic"
    assert module.main(["--check"]) == 0, "run: python docs/gen_ring_figure.py"


# -- replace and in-place changes ------------------------------------------------------------------


def test_replace_moves_exactly_the_old_nodes_partitions_to_the_new_one() -> None:
    ring = HashRing(3, partitions=256)
    ring.add_nodes(["a", "b", "c", "d", "e"], zones={"c": "az1"}, weights={"c": 2.0})
    before = ring.copy()
    ring.replace("c", "f")
    ring._check_invariants()
    assert (ring.weight("f"), ring.zone("f")) == (2.0, "az1")
    assert "c" not in ring
    assert moved(before, ring) and all((o, n) == ("c", "f") for _, o, n in moved(before, ring))
    plan = check_plan(before, ring)
    # f receives every range c held a replica of, and nobody else receives anything.
    assert {t.target for t in plan} == {"f"}
    assert coalesced(t.range for t in plan) == before.ranges("c", replicated=True)


def coalesced(ranges: Iterator[TokenRange]) -> list[TokenRange]:
    return coalesce(sorted(ranges, key=lambda r: r.start))


def test_replace_with_a_new_weight_or_zone_rebalances() -> None:
    ring = HashRing(3, partitions=256)
    ring.add_nodes(["a", "b", "c", "d"], zones={n: f"az{i}" for i, n in enumerate("abcd")})
    ring.replace("a", "x", weight=3.0, zone=None)
    ring._check_invariants()
    assert (ring.weight("x"), ring.zone("x")) == (3.0, None)
    assert counts(ring)["x"] in (128, 129)  # 3 / 6 of 256
    # x holds half the ring: no layout keeps 3 consecutive partitions on distinct nodes.
    assert not ring.spacing_possible()
    assert ring.spacing_violations()
    ring.update_node("x", weight=1.0, zone="az9")
    assert (ring.weight("x"), ring.zone("x")) == (1.0, "az9")
    assert set(counts(ring).values()) == {64}
    assert ring.spacing_possible()
    assert ring.spacing_violations() == ()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.replace("zz", "n"), ValueError, "not a member"),
        (lambda r: r.replace("a", "b"), ValueError, "already a member"),
        (lambda r: r.replace("a", ""), ValueError, "new"),
        (lambda r: r.replace("a", 7), TypeError, "new"),
        (lambda r: r.replace("a", "n", weight=0.0), ValueError, "weight"),
        (lambda r: r.replace("a", "n", weight=1000.0), ValueError, "under one"),
        (lambda r: r.replace("a", "n", zone=""), ValueError, "zone"),
        (lambda r: r.update_node("zz", weight=2.0), ValueError, "not a member"),
        (lambda r: r.update_node("a", weight=-1.0), ValueError, "weight"),
        (lambda r: r.update_node("a", weight=1000.0), ValueError, "under one"),
        (lambda r: r.update_node("a", zone=3), TypeError, "zone"),
    ],
    ids=[
        "replace-stranger",
        "replace-by-member",
        "replace-by-empty",
        "replace-by-int",
        "replace-zero-weight",
        "replace-huge-weight",
        "replace-empty-zone",
        "update-stranger",
        "update-negative-weight",
        "update-huge-weight",
        "update-int-zone",
    ],
)
def test_bad_replace_and_update_raise_and_change_nothing(
    call: object, error: type, match: str
) -> None:
    ring = build(["a", "b", "c", "d"], partitions=64)
    before = ring.copy()
    with pytest.raises(error, match=match):
        call(ring)  # type: ignore[operator]
    assert ring == before
    ring._check_invariants()


def test_update_node_moves_the_weight_change_only() -> None:
    ring = build(8, partitions=1024)
    before = ring.copy()
    ring.update_node("node-000", weight=2.0)
    ring._check_invariants()
    assert counts(ring)["node-000"] in (227, 228)  # 2 / 9 of 1024
    gained = [c for c in moved(before, ring) if c[2] == "node-000"]
    assert len(gained) == counts(ring)["node-000"] - 128
    assert ring.spacing_violations() == ()
    ring.update_node("node-000", weight=1.0)
    assert set(counts(ring).values()) == {128}
    ring.update_node("node-000")  # no change asked: nothing happens
    strategy_1 = build(3, vnodes=4)
    strategy_1.update_node("node-001", weight=2.0, zone="z")
    strategy_1._check_invariants()
    assert strategy_1.ownership()["node-001"] > build(3, vnodes=4).ownership()["node-001"]
    strategy_1.replace("node-001", "other")
    assert (strategy_1.weight("other"), strategy_1.zone("other")) == (2.0, "z")

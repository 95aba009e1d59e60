"""MerkleTree: tictac leaves, lazy rehashing, exact diffs, shape binding, codec, memory budget."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import itertools
import random
import tracemalloc
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree as ET

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

from dynamo_core import codec
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import (
    TOKEN_SPACE,
    TokenRange,
    coalesce,
    murmur3_128,
    token,
    token_function,
)
from dynamo_core.merkle import (
    DEFAULT_DEPTH,
    DIGEST_SIZE,
    MAX_DEPTH,
    MerkleTree,
    depth_for,
    item_digest,
    tree_memory,
)
from dynamo_core.merkle.tree import _node_hash
from dynamo_core.strategies import item_digests, keys, merkle_trees, token_ranges

SECRET = b"0123456789abcdef0123456789abcdef"


def kb(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def digest_of(i: int) -> bytes:
    return hashlib.blake2b(i.to_bytes(8, "big"), digest_size=DIGEST_SIZE).digest()


# Items keyed by bytes (a str key is the same item as its UTF-8 bytes).
# Digests bound to their keys, as item_digest makes them: arbitrary digests could cancel in a
# leaf (two keys with one digest XOR to nothing), which key-bound digests never do.
item_maps = st.dictionaries(keys().map(kb), st.binary(max_size=8), max_size=40).map(
    lambda items: {key: item_digest(key, value) for key, value in items.items()}
)
depths = st.integers(0, 8)


@st.composite
def shapes(draw: st.DrawFn) -> tuple[int, TokenRange]:
    depth = draw(depths)
    kind = draw(st.sampled_from(["whole", "power of two", "any"]))
    if kind == "whole":
        return depth, TokenRange.whole()
    if kind == "power of two":  # aligned ranges take the shift fast paths
        bits = draw(st.integers(max(depth, 1), 63))
        start = draw(st.sampled_from([0, 2**63, TOKEN_SPACE - 2**bits]))
        return depth, TokenRange(start, (start + 2**bits) % TOKEN_SPACE or TOKEN_SPACE)
    rng = draw(token_ranges().filter(lambda r: r.size >= 1 << depth))
    return depth, rng


def in_range(items: dict[bytes, bytes], rng: TokenRange) -> dict[bytes, bytes]:
    return {key: digest for key, digest in items.items() if token(key) in rng}


def build(items: dict[bytes, bytes], depth: int, rng: TokenRange) -> MerkleTree:
    tree = MerkleTree.from_items(items.items(), depth, start=rng.start, end=rng.end)
    tree._check_invariants()
    return tree


def model_segments(tree: MerkleTree, a: dict[bytes, bytes], b: dict[bytes, bytes]) -> list[int]:
    """The brute-force answer: segments holding a key whose digest differs between a and b."""
    return sorted({tree.segment(key) for key in a.keys() | b.keys() if a.get(key) != b.get(key)})


# -- item digests ------------------------------------------------------------------------------


def test_item_digest_is_blake2b_128_over_length_prefixed_key_and_value() -> None:
    expected = hashlib.blake2b(
        (5).to_bytes(8, "big") + b"alice" + b"value", digest_size=16, person=b"dynamo-core/item"
    ).digest()
    assert item_digest(b"alice", b"value") == expected
    assert item_digest("alice", b"value") == expected
    assert item_digest("alice", bytearray(b"value")) == expected
    assert item_digest("alice", memoryview(b"value")) == expected
    assert len(expected) == DIGEST_SIZE


def test_item_digest_binds_the_split_between_key_and_value() -> None:
    assert item_digest("ab", b"c") != item_digest("a", b"bc")
    assert item_digest("", b"ab") != item_digest("a", b"b")


@pytest.mark.parametrize(
    ("key", "value", "error", "match"),
    [
        (1, b"v", TypeError, "key"),
        ("k", "v", TypeError, "value"),
        ("\ud800", b"v", ValueError, "key"),
        (None, b"v", TypeError, "key"),
    ],
)
def test_item_digest_rejects_bad_arguments(
    key: object, value: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        item_digest(key, value)  # type: ignore[arg-type]


# -- construction ------------------------------------------------------------------------------


def test_defaults() -> None:
    tree = MerkleTree()
    assert tree.depth == DEFAULT_DEPTH == 16
    assert tree.segments == 65_536
    assert tree.range == TokenRange.whole()
    assert tree.token_fn is token
    assert tree.nbytes == 32 * 65_536 - 16
    assert len(tree.root) == DIGEST_SIZE
    tree._check_invariants()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"depth": -1}, ValueError, "depth"),
        ({"depth": MAX_DEPTH + 1}, ValueError, "depth"),
        ({"depth": 2.0}, TypeError, "depth"),
        ({"depth": True}, TypeError, "depth"),
        ({"start": -1}, ValueError, "start"),
        ({"end": 0}, ValueError, "end"),
        ({"end": TOKEN_SPACE + 1}, ValueError, "end"),
        ({"start": "0"}, TypeError, "start"),
        ({"depth": 4, "start": 10, "end": 20}, ValueError, "fewer than"),
        ({"token_fn": 3}, TypeError, "token_fn"),
        ({"token_fn": lambda key: "x"}, TypeError, "token_fn"),
        ({"token_fn": lambda key: TOKEN_SPACE}, ValueError, "token_fn"),
    ],
)
def test_constructor_rejects_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        MerkleTree(**kwargs)  # type: ignore[arg-type]


def test_smallest_range_for_a_depth_is_accepted() -> None:
    tree = MerkleTree(3, start=100, end=108)
    assert [tree.segment_range(i).size for i in range(8)] == [1] * 8
    assert tree.segment_of_token(107) == 7
    tree._check_invariants()


def test_trees_are_unhashable_and_have_a_repr() -> None:
    tree = MerkleTree(2)
    with pytest.raises(TypeError):
        hash(tree)
    tree.insert(b"k", b"1" * 16)
    text = repr(tree)
    assert text.startswith("MerkleTree.from_dict({'type': 'merkle_tree', 'v': 1, 'depth': 2,")
    call = ast.parse(text, mode="eval").body
    assert isinstance(call, ast.Call)
    assert MerkleTree.from_dict(ast.literal_eval(call.args[0])) == tree


# -- segments ----------------------------------------------------------------------------------


@given(shape=shapes())
def test_segment_ranges_tile_the_tree_range(shape: tuple[int, TokenRange]) -> None:
    depth, rng = shape
    tree = MerkleTree(depth, start=rng.start, end=rng.end)
    segments = [tree.segment_range(i) for i in range(min(tree.segments, 64))]
    assert segments[0].start == rng.start
    for i, (this, following) in enumerate(itertools.pairwise(segments)):
        assert this.end % TOKEN_SPACE == following.start
        assert tree.segment_of_token(this.start) == i
        assert tree.segment_of_token((this.end - 1) % TOKEN_SPACE) == i
    last = tree.segment_range(tree.segments - 1)
    assert last.end == rng.end
    assert sum(tree.segment_range(i).size for i in range(tree.segments)) == rng.size
    assert coalesce(tree.segment_range(i) for i in range(tree.segments)) == coalesce([rng])


@given(shape=shapes(), key=keys())
def test_a_key_lies_in_its_segment_range(shape: tuple[int, TokenRange], key: str | bytes) -> None:
    depth, rng = shape
    tree = MerkleTree(depth, start=rng.start, end=rng.end)
    tok = token(key)
    if tok not in rng:
        with pytest.raises(ValueError, match="outside the tree's range"):
            tree.segment(key)
        with pytest.raises(ValueError, match="outside"):
            tree.insert(key, bytes(16))
        return
    index = tree.segment(key)
    assert tok in tree.segment_range(index)
    assert tree.segment_of_token(tok) == index


def test_whole_circle_segments_are_the_top_bits_of_the_token() -> None:
    tree = MerkleTree(10)
    for key in ("a", "b", b"\x00", "cart:alice"):
        assert tree.segment(key) == token(key) >> 54


def test_segment_and_index_arguments_are_checked() -> None:
    tree = MerkleTree(4)
    with pytest.raises(TypeError, match="key"):
        tree.segment(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tok"):
        tree.segment_of_token(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tok"):
        tree.segment_of_token(-1)
    with pytest.raises(ValueError, match="index"):
        tree.segment_range(16)
    with pytest.raises(TypeError, match="index"):
        tree.leaf("0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="height"):
        tree.node(5, 0)
    with pytest.raises(ValueError, match="index"):
        tree.node(4, 1)
    assert tree.node(4, 0) == tree.node(tree.depth, 0)


# -- tictac leaves and incremental updates -----------------------------------------------------


def test_a_leaf_is_the_xor_of_its_item_digests() -> None:
    tree = MerkleTree(0)
    d1, d2 = item_digest("a", b"1"), item_digest("b", b"2")
    tree.insert("a", d1)
    tree.insert("b", d2)
    assert tree.leaf(0) == bytes(x ^ y for x, y in zip(d1, d2, strict=True))
    tree._check_invariants()


@given(items=item_maps, shape=shapes(), data=st.data())
@settings(max_examples=60)
def test_inserts_in_any_order_give_the_same_tree(
    items: dict[bytes, bytes], shape: tuple[int, TokenRange], data: st.DataObject
) -> None:
    depth, rng = shape
    items = in_range(items, rng)
    order = data.draw(st.permutations(sorted(items)))
    tree = MerkleTree(depth, start=rng.start, end=rng.end)
    for key in order:
        tree.insert(key, items[key])
    tree._check_invariants()
    rebuilt = build(items, depth, rng)
    assert tree == rebuilt
    assert tree.root == rebuilt.root


@given(items=item_maps, shape=shapes(), data=st.data())
@settings(max_examples=60)
def test_removing_every_item_returns_to_the_empty_root(
    items: dict[bytes, bytes], shape: tuple[int, TokenRange], data: st.DataObject
) -> None:
    depth, rng = shape
    items = in_range(items, rng)
    empty = MerkleTree(depth, start=rng.start, end=rng.end)
    tree = build(items, depth, rng)
    if items:
        assert tree.root != empty.root
    for key in data.draw(st.permutations(sorted(items))):
        tree.remove(key, items[key])
    tree._check_invariants()
    assert tree.root == empty.root
    assert tree == empty


def test_inserting_an_item_twice_cancels_it() -> None:
    tree = MerkleTree(4)
    empty_root = tree.root
    digest = item_digest("k", b"v")
    tree.insert("k", digest)
    tree.insert("k", digest)
    assert tree.root == empty_root


@given(
    items=item_maps,
    ops=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 60), item_digests()), max_size=40),
    shape=shapes(),
)
@settings(max_examples=60)
def test_incremental_updates_equal_a_rebuild(
    items: dict[bytes, bytes],
    ops: list[tuple[int, int, bytes]],
    shape: tuple[int, TokenRange],
) -> None:
    depth, rng = shape
    model = in_range(items, rng)
    tree = build(model, depth, rng)
    for kind, n, digest in ops:
        key = b"op-%d" % n
        if token(key) not in rng:
            continue
        if key not in model:
            tree.insert(key, digest)
            model[key] = digest
        elif kind == 0:
            tree.remove(key, model.pop(key))
        else:
            tree.update(key, model[key], digest)
            model[key] = digest
        if kind == 2:  # sometimes read the root mid-way (exercises partial rehashes)
            assert len(tree.root) == DIGEST_SIZE
    tree._check_invariants()
    assert tree == build(model, depth, rng)
    assert tree.root == build(model, depth, rng).root


def test_many_changes_between_reads_rehash_everything() -> None:
    tree = MerkleTree(6)
    items = {b"k%d" % i: digest_of(i) for i in range(500)}
    for key, digest in items.items():
        tree.insert(key, digest)
    assert tree._stale  # more changes than leaves: one full rehash
    tree._check_invariants()
    assert tree == MerkleTree.from_items(items.items(), 6)


def test_insert_many_takes_any_iterable_and_counts() -> None:
    items = {b"g%d" % i: digest_of(i) for i in range(40)}
    tree = MerkleTree(5)
    assert tree.insert_many(pair for pair in items.items()) == 40
    assert tree.insert_many([]) == 0
    assert tree.insert_many(iter(())) == 0
    assert tree == MerkleTree.from_items(items.items(), 5)
    with pytest.raises(ValueError, match="zero"):
        tree.insert_many([(b"z", bytes(16))])
    with pytest.raises(ValueError, match="zero"):
        tree.insert(b"z", bytes(16))
    assert tree == MerkleTree.from_items(items.items(), 5)


def test_insert_many_adds_to_an_existing_tree() -> None:
    first = {b"a%d" % i: digest_of(i) for i in range(50)}
    second = {b"b%d" % i: digest_of(1000 + i) for i in range(50)}
    tree = MerkleTree.from_items(first.items(), 8)
    assert tree.insert_many(second.items()) == 50
    tree._check_invariants()
    assert tree == MerkleTree.from_items({**first, **second}.items(), 8)


@pytest.mark.parametrize(
    "bad",
    [
        [(b"a", digest_of(1)), (b"b", b"short")],
        [(b"a", digest_of(1)), (7, digest_of(2))],
        [(b"a", digest_of(1)), (b"b", "x" * 16)],
    ],
)
def test_bad_items_change_nothing(bad: list[tuple[object, object]]) -> None:
    tree = MerkleTree.from_items([(b"z", digest_of(9))], 4)
    before = tree.copy()
    with pytest.raises((TypeError, ValueError)):
        tree.insert_many(bad)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        tree.insert(*bad[1])  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        tree.update(bad[1][0], digest_of(1), bad[1][1])  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        MerkleTree.from_items(bad, 4)  # type: ignore[arg-type]
    tree._check_invariants()
    assert tree == before


def test_bulk_insert_rejects_keys_outside_a_range_that_starts_at_zero() -> None:
    half = MerkleTree(4, start=0, end=2**63)
    keys = [b"k%d" % i for i in range(64)]
    inside = [(key, digest_of(i)) for i, key in enumerate(keys) if token(key) < 2**63]
    outside = next(key for key in keys if token(key) >= 2**63)
    with pytest.raises(ValueError, match="outside"):
        half.insert_many([*inside, (outside, digest_of(99))])
    assert half == MerkleTree(4, start=0, end=2**63)
    assert half.insert_many(inside) == len(inside)
    one_by_one = MerkleTree(4, start=0, end=2**63)
    for key, digest in inside:
        one_by_one.insert(key, digest)
    assert half == one_by_one


def test_update_checks_both_digests_before_changing() -> None:
    tree = MerkleTree(4)
    tree.insert("k", digest_of(1))
    before = tree.copy()
    with pytest.raises(ValueError, match="new_digest"):
        tree.update("k", digest_of(1), b"x")
    with pytest.raises(TypeError, match="old_digest"):
        tree.update("k", None, digest_of(2))  # type: ignore[arg-type]
    assert tree == before


def test_copy_is_independent() -> None:
    tree = MerkleTree.from_items([(b"a", digest_of(1))], 5)
    clone = tree.copy()
    clone._check_invariants()
    assert clone == tree
    clone.insert(b"b", digest_of(2))
    assert clone != tree
    assert tree.diff_segments(clone) == [tree.segment(b"b")]
    tree._check_invariants()


@given(a=item_maps, b=item_maps, shape=shapes())
@settings(max_examples=60)
def test_merge_of_disjoint_trees_is_the_tree_of_the_union(
    a: dict[bytes, bytes], b: dict[bytes, bytes], shape: tuple[int, TokenRange]
) -> None:
    depth, rng = shape
    a = in_range(a, rng)
    b = {key: digest for key, digest in in_range(b, rng).items() if key not in a}
    tree = build(a, depth, rng)
    tree.merge(build(b, depth, rng))
    tree._check_invariants()
    assert tree == build({**a, **b}, depth, rng)


# -- diff --------------------------------------------------------------------------------------


@given(a=item_maps, changes=item_maps, drops=st.sets(st.integers(0, 39)), shape=shapes())
def test_diff_reports_exactly_the_differing_segments(
    a: dict[bytes, bytes],
    changes: dict[bytes, bytes],
    drops: set[int],
    shape: tuple[int, TokenRange],
) -> None:
    depth, rng = shape
    a = in_range(a, rng)
    b = {**a, **in_range(changes, rng)}  # new keys and new digests for existing ones
    for i, key in enumerate(sorted(a)):
        if i in drops:
            b.pop(key, None)
    ta, tb = build(a, depth, rng), build(b, depth, rng)
    expected = model_segments(ta, a, b)
    assert ta.diff_segments(tb) == expected
    assert tb.diff_segments(ta) == expected
    ranges = ta.diff(tb)
    assert ranges == coalesce(ta.segment_range(i) for i in expected)
    assert ranges == tb.diff(ta)
    # every differing key is covered; every equal segment is not
    for key in a.keys() | b.keys():
        covered = any(token(key) in piece for piece in ranges)
        assert covered == (ta.segment(key) in expected)
    assert (ta == tb) == (not expected)
    assert (ta.root == tb.root) == (not expected)


def test_diff_with_one_change_is_one_segment_range() -> None:
    items = {b"k%d" % i: digest_of(i) for i in range(2000)}
    a = MerkleTree.from_items(items.items(), 10)
    b = a.copy()
    b.update(b"k7", items[b"k7"], digest_of(-1 % 2**32))
    index = a.segment(b"k7")
    assert a.diff(b) == [a.segment_range(index)]
    assert a.diff(a.copy()) == []


def test_diff_coalesces_adjacent_segments() -> None:
    a = MerkleTree(3)
    b = MerkleTree(3)
    for index in (2, 3, 4, 6):
        tok = b.segment_range(index).start
        b._lanes[2 * index] ^= 1  # poke the leaf directly: any change to segments 2, 3, 4 and 6
        b._touch(index)
        assert b.segment_of_token(tok) == index
    b._check_invariants()
    quarter = 2**61
    assert a.diff(b) == [TokenRange(2 * quarter, 5 * quarter), TokenRange(6 * quarter, 7 * quarter)]


def test_diff_over_a_wrapping_range_splits_at_zero() -> None:
    a = MerkleTree(1, start=2**63 + 2**62, end=2**62)  # [3/4, 1/4) of the circle: wraps
    b = a.copy()
    assert a.segment_range(0) == TokenRange(2**63 + 2**62, TOKEN_SPACE)
    assert a.segment_range(1) == TokenRange(0, 2**62)
    b._lanes[0] ^= 1
    b._lanes[2] ^= 1
    b._touch(0)
    b._touch(1)
    assert a.diff(b) == [TokenRange(0, 2**62), TokenRange(2**63 + 2**62, TOKEN_SPACE)]


# -- shape binding and domain separation -------------------------------------------------------

SHAPES = [
    {"depth": 4},
    {"depth": 5},
    {"depth": 4, "start": 1},
    {"depth": 4, "end": TOKEN_SPACE - 1},
    {"depth": 4, "start": 2**63, "end": 2**63},  # the whole circle, read from 2**63
    {"depth": 4, "token_fn": token_function(SECRET)},
]


def test_trees_of_different_shapes_never_compare_equal() -> None:
    trees = [MerkleTree(**kwargs) for kwargs in SHAPES]  # type: ignore[arg-type]
    roots = {tree.root for tree in trees}
    assert len(roots) == len(trees), "an empty tree's root must bind its shape"
    for i, first in enumerate(trees):
        for j, second in enumerate(trees):
            assert (first == second) == (i == j)
            assert first.same_shape(second) == (i == j)
            if i != j:
                with pytest.raises(ValueError, match="different shapes"):
                    first.diff(second)
                with pytest.raises(ValueError, match="different shapes"):
                    first.merge(second)
    with pytest.raises(TypeError, match="MerkleTree"):
        trees[0].diff("tree")  # type: ignore[arg-type]
    assert trees[0].__eq__("tree") is NotImplemented


def test_swapped_children_change_the_root() -> None:
    x, y = digest_of(1), digest_of(2)
    for depth in (1, 3):
        a = MerkleTree(depth)
        b = MerkleTree(depth)
        for tree, first, second in ((a, x, y), (b, y, x)):
            tree._lanes[0:2] = memoryview(first).cast("Q")
            tree._lanes[2:4] = memoryview(second).cast("Q")
            tree._touch(0)
            tree._touch(1)
            tree._check_invariants()
        assert a.leaf(0) == b.leaf(1)
        assert a.root != b.root
        assert a.node(1, 0) != b.node(1, 0)
        assert a.diff_segments(b) == [0, 1]


def test_a_duplicated_last_node_does_not_collide() -> None:
    # CVE-2012-2459: a tree that duplicates an odd last node gives [a, b, c] and [a, b, c, c] one
    # root. Here the shape is fixed: the duplicate is a real leaf, and a deeper tree whose leaves
    # repeat a shallower tree's leaves has a different root too.
    a, b, c = digest_of(1), digest_of(2), digest_of(3)
    three = MerkleTree(2)
    four = MerkleTree(2)
    for tree, leaves in ((three, (a, b, c, bytes(16))), (four, (a, b, c, c))):
        for index, value in enumerate(leaves):
            tree._lanes[2 * index : 2 * index + 2] = memoryview(value).cast("Q")
            tree._touch(index)
        tree._check_invariants()
    assert three.root != four.root
    doubled = MerkleTree(3)
    for index in range(8):
        doubled._lanes[2 * index : 2 * index + 2] = memoryview(four.leaf(index % 4)).cast("Q")
        doubled._touch(index)
    assert doubled.root != four.root
    assert doubled.node(3, 0) != four.node(2, 0)


def test_a_leaf_forged_from_inner_nodes_does_not_collide() -> None:
    # A tree one level shallower whose leaves are the deeper tree's height-1 nodes: without
    # domain separation its top node would equal the deeper tree's top node.
    deep = MerkleTree.from_items([(b"k%d" % i, digest_of(i)) for i in range(64)], 4)
    shallow = MerkleTree(3)
    for index in range(8):
        shallow._lanes[2 * index : 2 * index + 2] = memoryview(deep.node(1, index)).cast("Q")
        shallow._touch(index)
    shallow._check_invariants()
    for height in range(1, 4):
        assert shallow.node(height - 1, 0) == deep.node(height, 0) or height > 1
    assert shallow.node(3, 0) != deep.node(4, 0)
    assert shallow.root != deep.root
    # and an inner hash never equals the same children hashed at another height
    pair = deep.node(1, 0) + deep.node(1, 1)
    assert len({_node_hash(h, pair) for h in range(1, MAX_DEPTH + 1)}) == MAX_DEPTH


def test_root_is_blake2b_of_the_shape_and_the_top_node() -> None:
    tree = MerkleTree.from_items([(b"a", digest_of(1))], 2, start=5, end=2**64 - 3)
    shape = (
        bytes([1, 2]) + (5).to_bytes(8, "big") + (2**64 - 4).to_bytes(8, "big")
    ) + tree.fingerprint.to_bytes(8, "big")
    expected = hashlib.blake2b(
        b"\x02" + shape + tree.node(2, 0), digest_size=16, person=b"dynamo-core/tree"
    ).digest()
    assert tree.root == expected
    left = tree.node(0, 0) + tree.node(0, 1)
    assert (
        tree.node(1, 0)
        == hashlib.blake2b(
            bytes([1, 1]) + left, digest_size=16, person=b"dynamo-core/tree"
        ).digest()
    )


# -- token functions ---------------------------------------------------------------------------


def test_a_keyed_token_function_places_keys_by_the_keyed_hash() -> None:
    keyed = token_function(SECRET)
    tree = MerkleTree(8, token_fn=keyed)
    assert tree.token_fn is keyed
    assert tree.fingerprint == keyed(b"dynamo-core/merkle/token-fingerprint")
    assert tree.fingerprint != MerkleTree(8).fingerprint
    for key in ("a", b"b", "cart:alice"):
        assert tree.segment(key) == keyed(key) >> 56
    items = [(b"k%d" % i, digest_of(i)) for i in range(100)]
    built = MerkleTree.from_items(items, 8, token_fn=keyed)
    built._check_invariants()
    one_by_one = MerkleTree(8, token_fn=keyed)
    for key, digest in items:
        one_by_one.insert(key, digest)
    assert built == one_by_one


def test_a_token_function_that_misbehaves_on_a_key_is_reported() -> None:
    def flaky(key: str | bytes) -> int:
        return -1 if key == b"bad" else 5

    tree = MerkleTree(2, token_fn=flaky)
    with pytest.raises(ValueError, match="token_fn returned"):
        tree.insert(b"bad", digest_of(1))
    with pytest.raises(TypeError, match="key"):
        tree.insert(5, digest_of(1))  # type: ignore[arg-type]
    tree._check_invariants()


# -- codec -------------------------------------------------------------------------------------


@given(tree=merkle_trees())
def test_codec_round_trip(tree: MerkleTree) -> None:
    data = tree.to_dict()
    decoded = MerkleTree.from_dict(codec.loads(codec.dumps(data)))
    decoded._check_invariants()
    assert decoded == tree
    assert decoded.root == tree.root
    assert decoded.to_dict() == data


def test_from_type_draws_trees() -> None:
    @given(st.from_type(MerkleTree))
    @settings(max_examples=10)
    def check(tree: MerkleTree) -> None:
        tree._check_invariants()

    check()


def test_encoding_is_sparse_and_canonical() -> None:
    tree = MerkleTree.from_items([(b"a", digest_of(1)), (b"b", digest_of(2))], 16)
    data = tree.to_dict()
    assert set(data) == {"type", "v", "depth", "start", "end", "fingerprint", "leaves"}
    assert len(codec.dumps(data)) < 200  # two leaves, not 65,536
    assert MerkleTree.from_dict(data).to_dict() == data


def test_decoding_with_a_keyed_token_function() -> None:
    keyed = token_function(SECRET)
    tree = MerkleTree.from_items([(b"a", digest_of(1))], 4, token_fn=keyed)
    assert MerkleTree.from_dict(tree.to_dict(), token_fn=keyed) == tree
    with pytest.raises(DecodeError, match="different token function"):
        MerkleTree.from_dict(tree.to_dict())
    with pytest.raises(DecodeError, match="different token function"):
        MerkleTree.from_dict(MerkleTree(4).to_dict(), token_fn=keyed)


def _record(index: int, value: bytes) -> bytes:
    return index.to_bytes(4, "big") + value


def _hostile(**fields: object) -> dict[str, object]:
    good = MerkleTree(3).to_dict()
    return {**good, **fields}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, "object"),
        ({"type": "merkle_tree", "v": 1}, "missing"),
        (_hostile(type="token_range"), "expected an encoded merkle_tree"),
        (_hostile(v=2), "v"),
        (_hostile(extra=1), "unknown"),
        (_hostile(depth=21), "depth"),
        (_hostile(depth=-1), "depth"),
        (_hostile(depth=True), "depth"),
        (_hostile(start=2**64), "start"),
        (_hostile(end=0), "end"),
        (_hostile(start=0, end=4), "fewer tokens"),
        (_hostile(fingerprint=-1), "fingerprint"),
        (_hostile(leaves=5), "base64"),
        (_hostile(leaves="!!!!"), "base64"),
        (_hostile(leaves=codec.encode_bytes(b"\x00" * 19)), "records"),
        (_hostile(leaves=codec.encode_bytes(_record(8, digest_of(1)))), "index 8"),
        (
            _hostile(
                leaves=codec.encode_bytes(_record(2, digest_of(1)) + _record(2, digest_of(2)))
            ),
            "increase",
        ),
        (
            _hostile(
                leaves=codec.encode_bytes(_record(3, digest_of(1)) + _record(1, digest_of(2)))
            ),
            "increase",
        ),
        (_hostile(leaves=codec.encode_bytes(_record(1, bytes(16)))), "empty"),
        (_hostile(leaves=codec.encode_bytes(bytes(20 * 9))), "limit"),
    ],
)
def test_hostile_decodes_raise_decode_error(data: object, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        MerkleTree.from_dict(data)


def test_max_depth_caps_what_a_decoder_allocates() -> None:
    data = MerkleTree(12).to_dict()
    assert MerkleTree.from_dict(data, max_depth=12).depth == 12
    with pytest.raises(DecodeError, match="depth"):
        MerkleTree.from_dict(data, max_depth=11)
    with pytest.raises(ValueError, match="max_depth"):
        MerkleTree.from_dict(data, max_depth=21)


# -- depth and the memory budget ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "depth"),
    [(0, 0), (1, 0), (2, 1), (3, 1), (1000, 9), (1024, 10), (1_000_000, 19), (2**30, 20)],
)
def test_depth_for_examples(count: int, depth: int) -> None:
    assert depth_for(count) == depth


@given(count=st.integers(0, 2**40), cap=st.integers(0, MAX_DEPTH), per=st.integers(1, 64))
def test_depth_for_never_gives_more_segments_than_keys(count: int, cap: int, per: int) -> None:
    depth = depth_for(count, max_depth=cap, keys_per_segment=per)
    assert 0 <= depth <= cap
    assert (1 << depth) <= max(1, count // per)
    if depth < cap:  # not capped: the next depth would overshoot
        assert (2 << depth) > count // per


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((-1,), {}, ValueError),
        ((1.5,), {}, TypeError),
        ((10,), {"max_depth": 21}, ValueError),
        ((10,), {"keys_per_segment": 0}, ValueError),
        ((10,), {"keys_per_segment": 1.0}, TypeError),
    ],
)
def test_depth_for_rejects_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        depth_for(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("depth", [0, 1, 4, 8, 12])
def test_tree_memory_bounds_the_measured_memory(depth: int) -> None:
    items = [(b"k%d" % i, digest_of(i)) for i in range(2 << depth)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tree = MerkleTree.from_items(items, depth)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tree.nbytes == 32 * 2**depth - 16
    assert used <= tree_memory(depth), (used, tree_memory(depth))
    assert used >= tree.nbytes  # the bound is not vacuous


@given(counts=st.lists(st.integers(0, 1_000_000), min_size=1, max_size=1000))
def test_the_budget_holds_for_any_spread_of_1m_keys_over_1000_ranges(counts: list[int]) -> None:
    total = sum(counts)
    assume(total <= 1_000_000)
    assert sum(tree_memory(depth_for(count)) for count in counts) <= 64 * 2**20


def test_1000_ranges_with_1m_keys_fit_in_64_mib() -> None:
    # A tree allocates all its memory when it is created and never grows: trace the creation of
    # 1,000 per-range trees sized by depth_for, then fill them with 1M keys and check that no
    # buffer was replaced or resized.
    rnd = random.Random(7)
    ranges = 1000
    width = TOKEN_SPACE // ranges
    pool = [rnd.randbytes(16) for _ in range(4096)]
    per_range: list[list[tuple[bytes, bytes]]] = [[] for _ in range(ranges)]
    for i in range(1_000_000):
        key = b"user:%d" % i
        per_range[min(token(key) // width, ranges - 1)].append((key, pool[i & 4095]))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        trees = [
            MerkleTree(
                depth_for(len(items)),
                start=r * width,
                end=TOKEN_SPACE if r == ranges - 1 else (r + 1) * width,
            )
            for r, items in enumerate(per_range)
        ]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    buffers = [[id(level) for level in tree._levels] for tree in trees]
    for tree, items in zip(trees, per_range, strict=True):
        assert tree.insert_many(items) == len(items)
        assert tree.root  # rehash in place
    assert [[id(level) for level in tree._levels] for tree in trees] == buffers
    assert sum(tree.nbytes for tree in trees) < used < 64 * 2**20, f"{used / 2**20:.1f} MiB"
    assert used <= sum(tree_memory(tree.depth) for tree in trees)
    assert sum(len(items) for items in per_range) == 1_000_000
    sample = trees[123]
    sample._check_invariants()
    assert sample == MerkleTree.from_items(
        per_range[123], sample.depth, start=sample.start, end=sample.end
    )


# -- a stateful test against a dict model ------------------------------------------------------


class TreeMachine(RuleBasedStateMachine):
    """A MerkleTree beside a dict of key -> digest: the tree must always equal a rebuild."""

    known = Bundle("known")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[bytes, bytes] = {}
        self.tree = MerkleTree(0)
        self.rng = TokenRange.whole()

    @initialize(shape=shapes())
    def choose_shape(self, shape: tuple[int, TokenRange]) -> None:
        depth, self.rng = shape
        self.tree = MerkleTree(depth, start=self.rng.start, end=self.rng.end)

    @rule(target=known, key=keys().map(kb), digest=item_digests())
    def insert(self, key: bytes, digest: bytes) -> bytes:
        if token(key) not in self.rng:
            with pytest.raises(ValueError, match="outside"):
                self.tree.insert(key, digest)
            return key
        if key in self.model:
            self.tree.update(key, self.model[key], digest)
        else:
            self.tree.insert(key, digest)
        self.model[key] = digest
        return key

    @rule(key=consumes(known))
    def remove(self, key: bytes) -> None:
        if key in self.model:
            self.tree.remove(key, self.model.pop(key))

    @rule(key=known, digest=item_digests())
    def update(self, key: bytes, digest: bytes) -> None:
        if key in self.model:
            self.tree.update(key, self.model[key], digest)
            self.model[key] = digest

    @rule(new=st.dictionaries(st.binary(min_size=1, max_size=8), item_digests(), max_size=30))
    def insert_many(self, new: dict[bytes, bytes]) -> None:
        fresh = {k: d for k, d in new.items() if k not in self.model and token(k) in self.rng}
        assert self.tree.insert_many(fresh.items()) == len(fresh)
        self.model.update(fresh)

    @rule()
    def read_root(self) -> None:
        assert len(self.tree.root) == DIGEST_SIZE

    @rule()
    def round_trip(self) -> None:
        self.tree = MerkleTree.from_dict(self.tree.to_dict())

    @invariant()
    def matches_a_rebuild(self) -> None:
        self.tree._check_invariants()
        rebuilt = MerkleTree.from_items(
            self.model.items(), self.tree.depth, start=self.rng.start, end=self.rng.end
        )
        assert self.tree == rebuilt
        assert self.tree.root == rebuilt.root
        assert self.tree.diff(rebuilt) == []


TestTreeMachine = TreeMachine.TestCase
TestTreeMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


# -- the shared hash and the docs figure -------------------------------------------------------


@given(key=st.binary(max_size=64))
def test_murmur3_128_is_the_token_hash(key: bytes) -> None:
    assert murmur3_128(key) & (TOKEN_SPACE - 1) == token(key)
    tree = MerkleTree(12)
    assert tree.segment(key) == (murmur3_128(key) & (TOKEN_SPACE - 1)) >> 52


def _figure_module() -> ModuleType:
    path = Path(__file__).parent.parent / "docs" / "gen_anti_entropy_figure.py"
    spec = importlib.util.spec_from_file_location("anti_entropy_figure", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_figure_script_renders_valid_svg() -> None:
    figure = _figure_module()
    svg = figure.render(
        [("a", "#000", "", [(1, 100), (10, 1000), (100, 5000)]), ("b", "#f00", "4,2", [(1, 10)])],
        title="t",
        x_label="x",
        y_label="y",
    )
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2


def test_the_committed_figure_is_well_formed() -> None:
    path = Path(__file__).parent.parent / "docs" / "concepts" / "anti-entropy-bytes.svg"
    root = ET.fromstring(path.read_text(encoding="utf-8"))
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 5
    assert "differing keys" in path.read_text(encoding="utf-8")

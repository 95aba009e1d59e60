"""Hypothesis strategies for dynamo_core's types, for your own property-based tests.

Needs the ``hypothesis`` extra. ``st.from_type(HashRing)`` and the like work once dynamo_core
is installed: hypothesis's entry point registers each type, lazily, when its module is imported
(``import hypothesis`` itself loads no dynamo_core module). Importing this module registers
them all as well, so `from_type` works with hypothesis's plugins off too.

Every value these strategies draw prints as the call that rebuilds it
(``HashRing.from_dict({...})``, ``DVVSet.from_entries([...])``, ...), so a shrunk example can
be pasted into a test.

Examples:
    >>> from hypothesis import given
    >>> from dynamo_core.testing.strategies import token_ranges
    >>> @given(token_ranges())
    ... def test_size(rng):
    ...     assert 1 <= rng.size <= 2**64
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from dynamo_core import merkle
from dynamo_core._check import MAX_NODE_ID_LEN
from dynamo_core.dvv import DVVSet
from dynamo_core.hashing import TOKEN_SPACE, TokenRange
from dynamo_core.hints import Hint
from dynamo_core.membership import Change, GossipDigest, GossipUpdate, VersionRecord
from dynamo_core.merkle import DIGEST_SIZE, MerkleTree
from dynamo_core.messages import (
    ExchangeMessage,
    FetchReply,
    FetchRequest,
    Forward,
    ForwardReply,
    GetReply,
    Heartbeat,
    HintAck,
    Message,
    PutReply,
    ReadRepair,
    RepairPull,
    RepairPush,
    RequestFailed,
    RequestResult,
    StoreReply,
    StoreRequest,
    SyncDiff,
    SyncOffer,
)
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.ring import HashRing
from dynamo_core.streaming import StreamBatch, StreamPull
from dynamo_core.testing.faults import Fault, FaultAction, FaultPlan
from dynamo_core.testing.schedule import ClockSkew, Operation, Schedule, Workload
from dynamo_core.vclock import VectorClock, Versioned

__all__ = [
    "changes",
    "clock_skews",
    "concurrent_dvv_pairs",
    "dvv_replicas",
    "dvv_sets",
    "fault_plans",
    "hints",
    "item_digests",
    "keys",
    "merkle_trees",
    "node_ids",
    "node_messages",
    "quorum_policies",
    "register_type_strategies",
    "request_results",
    "rings",
    "schedules",
    "simulation_configs",
    "strategy_for_type",
    "token_ranges",
    "tokens",
    "vector_clocks",
    "version_records",
    "versioned",
    "workloads",
]


def keys() -> st.SearchStrategy[str | bytes]:
    """Keys as users pass them: `str` (any UTF-8-encodable text) or `bytes`."""
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=32) | st.binary(max_size=32)


def node_ids() -> st.SearchStrategy[str]:
    """Valid node ids: non-empty printable strings of at most 255 characters."""
    return st.text(
        st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
        min_size=1,
        max_size=min(24, MAX_NODE_ID_LEN),
    )


def tokens() -> st.SearchStrategy[int]:
    """Tokens in ``[0, 2**64)``, with the ends of the circle drawn often."""
    return st.integers(0, TOKEN_SPACE - 1) | st.sampled_from([0, 1, TOKEN_SPACE - 1, 2**63])


def token_ranges() -> st.SearchStrategy[TokenRange]:
    """Token ranges, wrapping and not, including the whole circle."""
    return st.builds(TokenRange, tokens(), st.integers(1, TOKEN_SPACE)) | st.just(
        TokenRange.whole()
    )


def item_digests() -> st.SearchStrategy[bytes]:
    """Non-zero 16-byte item digests, as [`item_digest`][dynamo_core.merkle.item_digest] returns."""
    return st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE).filter(any)


def merkle_trees(
    *, max_depth: int = 8, max_items: int = 32, whole_circle: bool | None = None
) -> st.SearchStrategy[MerkleTree]:
    """Merkle trees of depth ``0 .. max_depth`` holding up to `max_items` random items.

    The range is the whole circle or a random one (wrapping or not) with at least ``2**depth``
    tokens; keys are drawn until they land in it, so small ranges hold few items.

    Args:
        max_depth: The deepest tree drawn (``0 .. 20``; keep it small, a tree is
            ``32 * 2**depth`` bytes).
        max_items: The most items drawn.
        whole_circle: ``True``: always the whole circle; ``False``: never; ``None``: either.
    """

    @st.composite
    def build(draw: st.DrawFn) -> MerkleTree:
        depth = draw(st.integers(0, max_depth))
        whole = draw(st.booleans()) if whole_circle is None else whole_circle
        if whole:
            rng = TokenRange.whole()
        else:
            rng = draw(token_ranges().filter(lambda r: r.size >= 1 << depth))
        tree = MerkleTree(depth, start=rng.start, end=rng.end)
        items = draw(st.dictionaries(keys(), item_digests(), max_size=max_items))
        for key, digest in items.items():
            if tree.token_fn(key) in rng:
                tree.insert(key, digest)
        return tree

    return build()


T = TypeVar("T")

_NODE_POOL = ("a", "b", "c", "d", "e")


def vector_clocks(
    *,
    nodes: st.SearchStrategy[str] | None = None,
    max_entries: int = 6,
    max_counter: int = 2**63 - 1,
) -> st.SearchStrategy[VectorClock]:
    """Vector clocks of up to `max_entries` entries, with timestamps.

    By default node ids come mostly from a small pool (``"a"`` .. ``"e"``) and counters are
    mostly small, so independently drawn clocks overlap and compare in every way (`EQUAL`,
    `BEFORE`, `AFTER`, `CONCURRENT`); sometimes they are any valid node id or counter.

    Args:
        nodes: Node ids to draw from (default: the pool, or any valid id).
        max_entries: The most entries.
        max_counter: The largest counter (``1 .. 2**63 - 1``).
    """
    node_ids_ = (
        nodes
        if nodes is not None
        else st.one_of(st.sampled_from(_NODE_POOL), st.sampled_from(_NODE_POOL), node_ids())
    )
    counters = st.integers(1, min(4, max_counter)) | st.integers(1, max_counter)
    stamps = st.floats(0.0, 2e9, allow_nan=False, allow_infinity=False)

    def build(entries: dict[str, tuple[int, float]]) -> VectorClock:
        return VectorClock(
            {node: counter for node, (counter, _) in entries.items()},
            timestamps={node: stamp for node, (_, stamp) in entries.items()},
        )

    return st.dictionaries(node_ids_, st.tuples(counters, stamps), max_size=max_entries).map(build)


def versioned(
    values: st.SearchStrategy[T] | None = None, clocks: st.SearchStrategy[VectorClock] | None = None
) -> st.SearchStrategy[Versioned[Any]]:
    """Versioned values: `values` (default: short `bytes`) with `clocks` (`vector_clocks()`)."""
    return st.builds(
        Versioned,
        values if values is not None else st.binary(max_size=4),
        clocks if clocks is not None else vector_clocks(),
    )


@st.composite
def _dvv_history(
    draw: st.DrawFn,
    values: st.SearchStrategy[Any],
    replicas: int,
    max_steps: int,
) -> list[DVVSet[Any]]:
    """Replica states after a random history of writes, syncs and deletes among `replicas`.

    Replica ``i`` coordinates with actor ``"r{i}"`` only, so no dot is ever issued twice and the
    states are ones a correct cluster can reach.
    """
    states: list[DVVSet[Any]] = [DVVSet() for _ in range(replicas)]
    seen: list[VectorClock] = [VectorClock()]
    for _ in range(draw(st.integers(0, max_steps))):
        kind = draw(st.sampled_from(("write", "write", "sync", "discard")))
        i = draw(st.integers(0, replicas - 1))
        if kind == "sync":
            states[i] = states[i].sync(states[draw(st.integers(0, replicas - 1))])
        else:
            context = draw(st.sampled_from(seen) | st.none())
            if kind == "write":
                states[i] = states[i].update(draw(values), f"r{i}", context)
            elif context is not None:
                states[i] = states[i].discard(context)
        if draw(st.booleans()):
            seen.append(states[i].context)
    return states


def dvv_replicas(
    count: int = 3, values: st.SearchStrategy[Any] | None = None, *, max_steps: int = 12
) -> st.SearchStrategy[tuple[DVVSet[Any], ...]]:
    """`count` replicas' states of one key, drawn from one shared history.

    Use this (not several independent `dvv_sets()` draws) to test laws that combine states, such
    as ``a.sync(b) == b.sync(a)``: independent draws may give the same dot two different
    values, which a correct cluster never does.
    """
    vals = values if values is not None else st.binary(max_size=4)
    return _dvv_history(vals, count, max_steps).map(tuple)


def dvv_sets(
    values: st.SearchStrategy[Any] | None = None,
    *,
    max_steps: int = 12,
    min_siblings: int = 0,
    max_siblings: int | None = None,
) -> st.SearchStrategy[DVVSet[Any]]:
    """Reachable `DVVSet` states: one replica's state after a random history of three replicas.

    Random histories rarely leave siblings (about a third of the states have two or more),
    yet concurrent siblings are what merge laws are about. With `min_siblings` the state is
    built to have them: a short shared history, then ``min_siblings .. max_siblings``
    concurrent writes, each by its own coordinator from the same context, synced together.
    Such states shrink to the fewest siblings with the shortest values, quickly.

    Args:
        values: The values written (default: short `bytes`).
        max_steps: The longest history.
        min_siblings: The fewest siblings every drawn state has (0 .. 16).
        max_siblings: The most concurrent writes added (default: ``min_siblings + 2``); the
            shared history may leave siblings of its own beside them.

    Raises:
        ValueError: `min_siblings` or `max_siblings` is out of range.
    """
    vals = values if values is not None else st.binary(max_size=4)
    if not 0 <= min_siblings <= _MAX_DRAWN_SIBLINGS:
        raise ValueError(f"min_siblings must be in 0 .. {_MAX_DRAWN_SIBLINGS}, got {min_siblings}")
    top = min_siblings + 2 if max_siblings is None else max_siblings
    if not min_siblings <= top <= _MAX_DRAWN_SIBLINGS:
        raise ValueError(
            f"max_siblings must be in min_siblings .. {_MAX_DRAWN_SIBLINGS} "
            f"({min_siblings} .. {_MAX_DRAWN_SIBLINGS}), got {max_siblings}"
        )
    if min_siblings == 0:
        return st.builds(
            lambda states, i: states[i], _dvv_history(vals, 3, max_steps), st.integers(0, 2)
        )
    return _concurrent_writes(vals, max_steps, min_siblings, top).map(_sync_all)


_MAX_DRAWN_SIBLINGS = 16


def _sync_all(states: tuple[DVVSet[Any], ...]) -> DVVSet[Any]:
    merged = states[0]
    for state in states[1:]:
        merged = merged.sync(state)
    return merged


@st.composite
def _concurrent_writes(
    draw: st.DrawFn, values: st.SearchStrategy[Any], max_steps: int, least: int, most: int
) -> tuple[DVVSet[Any], ...]:
    """States after `least .. most` concurrent writes from one shared base state.

    Writer ``i`` coordinates as actor ``"w{i}"``, which the base history (actors ``"r0"`` ..
    ``"r2"``) never uses, so every dot is issued once. The writes share the base's context, so
    none replaces another: each state holds one new sibling the others lack.
    """
    history = draw(_dvv_history(values, 3, max_steps))
    base = _sync_all(tuple(history))
    count = draw(st.integers(least, most))
    blind = draw(st.booleans())  # a write without a context keeps the base's siblings too
    context = None if blind else base.context
    return tuple(base.update(draw(values), f"w{i}", context) for i in range(count))


def concurrent_dvv_pairs(
    values: st.SearchStrategy[Any] | None = None, *, max_steps: int = 8
) -> st.SearchStrategy[tuple[DVVSet[Any], DVVSet[Any]]]:
    """Two replicas' states of one key after concurrent writes: neither descends the other.

    Both come from one shared history followed by one write each, by different coordinators,
    from the same context; so ``a.sync(b)`` holds both writes as siblings. Use it for merge laws
    that need a real conflict; it shrinks to two one-byte writes on an empty history.

    Args:
        values: The values written (default: short `bytes`).
        max_steps: The longest shared history.
    """
    vals = values if values is not None else st.binary(max_size=4)
    return _concurrent_writes(vals, max_steps, 2, 2).map(lambda states: (states[0], states[1]))


def hints(
    states: st.SearchStrategy[Any] | None = None, *, targets: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[Hint[Any]]:
    """Hints: a target node, a key, a state and a creation time in ``0 .. 2e9`` seconds.

    Args:
        states: The hinted states (default: `dvv_sets()`, the library's default state type).
        targets: The target node ids (default: `node_ids()`).
    """
    return st.builds(
        Hint,
        targets if targets is not None else node_ids(),
        keys(),
        states if states is not None else dvv_sets(),
        st.floats(0.0, 2e9, allow_nan=False, allow_infinity=False),
    )


def quorum_policies(
    *, max_n: int = 7, strict: bool | None = None
) -> st.SearchStrategy[QuorumPolicy]:
    """Valid quorum policies with ``n`` in ``1 .. max_n``, sloppy or not, any `pr` and `pw`.

    Args:
        max_n: The largest replication factor drawn.
        strict: ``True``: only ``r + w > n``; ``False``: only ``r + w <= n`` (needs ``n >= 2``);
            ``None``: either.
    """

    @st.composite
    def build(draw: st.DrawFn) -> QuorumPolicy:
        n = draw(st.integers(2 if strict is False else 1, max_n))
        r = draw(st.integers(1, n - 1 if strict is False else n))
        if strict is None:
            w = draw(st.integers(1, n))
        elif strict:
            w = draw(st.integers(n - r + 1, n))
        else:
            w = draw(st.integers(1, n - r))
        pw = draw(st.integers(0, w))
        write_any = w == 1 and pw == 0 and draw(st.booleans())
        return QuorumPolicy(
            n,
            r,
            w,
            sloppy=draw(st.booleans()),
            notfound_ok=draw(st.booleans()),
            write_any=write_any,
            pr=draw(st.integers(0, r)),
            pw=pw,
        )

    return build()


def rings(
    *,
    min_nodes: int = 0,
    max_nodes: int = 8,
    strategy: str | None = None,
    zones: bool | None = None,
    weights: bool | None = None,
    max_replicas: int = 4,
    join_headroom: int = 2,
) -> st.SearchStrategy[HashRing]:
    """Hash rings after a random history of joins and leaves.

    Partition counts are small (the smallest powers of two from 8 that leave room for the
    joins below, up to 256) so rings are cheap to build; node ids come from `node_ids()`,
    zones (when drawn) from a pool of three, weights (when drawn) from ``0.5 .. 3``.

    A strategy-3 ring always has room for `join_headroom` more nodes of weight ``0.5 .. 3``
    (``add_node`` never fails with "share would be under one partition"), so a test can grow
    the ring it draws.

    Args:
        min_nodes: The fewest nodes the ring ends with.
        max_nodes: The most nodes the ring ends with (and holds at any time).
        strategy: ``"partitions"`` (Dynamo strategy 3), ``"vnodes"`` (strategy 1), or `None`
            for either.
        zones: ``True``: every node has a zone; ``False``: none has; `None`: any mix.
        weights: ``True``: weights vary; ``False``: all 1.0; `None`: either.
        max_replicas: The largest replication factor drawn.
        join_headroom: How many nodes a test may add to a drawn ring (``0 .. 64``).

    Raises:
        ValueError: the node counts or `join_headroom` are out of range.
    """
    if not 0 <= min_nodes <= max_nodes:
        raise ValueError(f"need 0 <= min_nodes <= max_nodes, got {min_nodes}, {max_nodes}")
    if not 0 <= join_headroom <= 64:
        raise ValueError(f"join_headroom must be in 0 .. 64, got {join_headroom}")
    zone_pool = st.sampled_from(("us-east-1a", "us-east-1b", "us-east-1c"))
    zone_of: st.SearchStrategy[str | None] = (
        st.none() | zone_pool if zones is None else (zone_pool if zones else st.none())
    )
    varied = st.sampled_from((0.5, 1.0, 1.0, 1.5, 2.0, 3.0))
    weight_of: st.SearchStrategy[float] = (
        (st.just(1.0) | varied) if weights is None else (varied if weights else st.just(1.0))
    )
    # Weights within 0.5 .. 3 give every node of `most` a share of at least Q / (6 * most); all
    # members at 1.0 and joiners at 0.5 .. 3, at least Q / (2 * most + 4).
    most = max_nodes + join_headroom
    least = max(8, 6 * most if weights is not False else 2 * most + 4 if join_headroom else most)
    counts = [q for q in (8, 16, 32, 64, 128, 256) if q >= least] or [1 << (least - 1).bit_length()]

    @st.composite
    def build(draw: st.DrawFn) -> HashRing:
        kind = strategy or draw(st.sampled_from(("partitions", "vnodes")))
        replicas = draw(st.integers(1, max_replicas))
        if kind == "partitions":
            ring = HashRing(replicas, partitions=draw(st.sampled_from(counts)))
        else:
            ring = HashRing(replicas, vnodes=draw(st.integers(1, 8)))
        target = draw(st.integers(min_nodes, max_nodes))
        steps = draw(st.integers(0, 2 * max_nodes))
        while steps > 0 or len(ring) < target:
            steps -= 1
            leave = len(ring) >= max_nodes or (steps >= 0 and len(ring) > 0 and draw(st.booleans()))
            if leave:
                ring.remove_node(draw(st.sampled_from(ring.nodes)))
            else:
                node = draw(node_ids().filter(lambda n: n not in ring))
                ring.add_node(node, weight=draw(weight_of), zone=draw(zone_of))
        return ring

    return build()


def changes() -> st.SearchStrategy[Change]:
    """Membership change requests: joins (with zones and weights) and leaves."""
    ids = st.from_regex(r"[a-z0-9]{1,6}/[0-9]{1,3}/[0-9]{1,3}", fullmatch=True)
    joins = st.builds(
        Change,
        ids,
        st.just("join"),
        node_ids(),
        st.none() | node_ids(),
        st.floats(0.5, 3.0),
    )
    leaves = st.builds(Change, ids, st.just("leave"), node_ids())
    return joins | leaves


def version_records() -> st.SearchStrategy[VersionRecord]:
    """Ring versions: settled ones, and transitions with a plan and some completed transfers."""

    @st.composite
    def build(draw: st.DrawFn) -> VersionRecord:
        before = draw(rings(strategy="partitions", min_nodes=1, max_nodes=5))
        after = before.copy()
        newcomer = draw(node_ids().filter(lambda n: n not in before))
        after.add_node(newcomer)
        plan = tuple(before.transfers_to(after))
        epoch = draw(st.integers(0, 2**20))
        applied = frozenset(draw(st.lists(changes().map(lambda c: c.id), max_size=3)))
        if not plan or draw(st.booleans()):
            done = tuple((i, t.source) for i, t in enumerate(plan))
            return VersionRecord(epoch, after, None, plan, applied, done)
        picked = draw(st.sets(st.integers(0, len(plan) - 1), max_size=len(plan) - 1))
        done = tuple((i, plan[i].source) for i in sorted(picked))
        return VersionRecord(epoch, after, before, plan, applied, done)

    return build()


def _result_strategies() -> dict[type[Any], st.SearchStrategy[Any]]:
    """One strategy per request result type."""
    nodes = st.lists(node_ids(), max_size=3).map(tuple)
    pairs = st.lists(st.tuples(node_ids(), node_ids()), max_size=2).map(tuple)
    values = st.lists(st.binary(max_size=8), max_size=3).map(tuple)
    return {
        PutReply: st.builds(PutReply, nodes, pairs),
        GetReply: st.builds(GetReply, values, st.binary(max_size=16), st.booleans()),
        RequestFailed: st.builds(RequestFailed, st.text(max_size=20), st.integers(0, 5), nodes),
    }


def request_results() -> st.SearchStrategy[RequestResult]:
    """The outcomes of client requests: `PutReply`, `GetReply` and `RequestFailed`."""
    return st.one_of(*_result_strategies().values())


def _message_strategies() -> dict[type[Any], st.SearchStrategy[Any]]:
    """One strategy per node message type (for `node_messages` and `st.from_type`)."""
    ids = st.integers(0, 2**63 - 1)
    key = st.binary(max_size=12)
    hint = st.none() | node_ids()
    state = dvv_sets()
    rng = token_ranges()
    root = st.none() | st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE)
    segments = st.lists(st.integers(0, 63), min_size=1, max_size=4, unique=True)
    exchange = st.one_of(
        st.builds(merkle.GetItems, segments.map(lambda xs: tuple(sorted(xs)))),
        st.builds(merkle.Nodes, st.integers(0, 8), st.binary(min_size=16, max_size=16)),
        st.just(merkle.InSync()),
        st.just(merkle.Close()),
    )
    fingerprint = st.text("0123456789abcdef", min_size=16, max_size=16)
    cursor = st.none() | st.binary(min_size=8, max_size=20)
    forward_put = st.builds(
        Forward, ids, st.just("put"), key, st.binary(max_size=8), st.none() | st.binary(max_size=8)
    )
    return {
        Heartbeat: st.builds(Heartbeat, ids, ids),
        StoreRequest: st.builds(StoreRequest, ids, key, state, hint, ids),
        StoreReply: st.builds(StoreReply, ids, st.booleans(), st.text(max_size=20)),
        FetchRequest: st.builds(FetchRequest, ids, key, hint),
        FetchReply: st.builds(FetchReply, ids, st.none() | state),
        ReadRepair: st.builds(ReadRepair, key, state, hint),
        Forward: forward_put | st.builds(Forward, ids, st.just("get"), key),
        ForwardReply: st.builds(ForwardReply, ids, request_results()),
        HintAck: st.builds(HintAck, ids),
        SyncOffer: st.builds(SyncOffer, ids, st.lists(st.tuples(rng, root), max_size=3).map(tuple)),
        SyncDiff: st.builds(SyncDiff, ids, st.lists(rng, max_size=3).map(tuple)),
        ExchangeMessage: st.builds(
            ExchangeMessage, ids, rng, st.sampled_from(("initiator", "responder")), exchange
        ),
        RepairPush: st.builds(RepairPush, st.lists(st.tuples(key, state), max_size=3).map(tuple)),
        RepairPull: st.builds(RepairPull, st.lists(key, max_size=3).map(tuple)),
        GossipDigest: st.builds(
            GossipDigest,
            ids,
            fingerprint,
            st.booleans(),
            st.lists(st.integers(0, 99), max_size=4).map(tuple),
            fingerprint,
            st.booleans(),
        ),
        GossipUpdate: st.builds(
            GossipUpdate,
            st.none() | version_records(),
            ids,
            fingerprint,
            st.lists(
                st.tuples(st.integers(0, 99), node_ids()), max_size=3, unique_by=lambda x: x[0]
            )
            .map(sorted)
            .map(tuple),
            st.lists(changes(), max_size=3).map(tuple),
        ),
        StreamPull: st.builds(StreamPull, ids, ids, ids, rng, cursor, ids),
        StreamBatch: st.builds(
            StreamBatch,
            ids,
            ids,
            ids,
            st.sampled_from(("ok", "not_yet", "stale")),
            st.lists(st.tuples(key, state), max_size=3).map(tuple),
            cursor,
            st.booleans(),
            ids,
            ids,
        ),
    }


def node_messages() -> st.SearchStrategy[Message]:
    """Every kind of node-to-node message, with small random contents.

    Useful to test a transport or a codec round trip: each message encodes with ``to_dict``
    and decodes with [`message_from_dict`][dynamo_core.messages.message_from_dict]. Each type
    is also registered for ``st.from_type``.
    """
    return st.one_of(*_message_strategies().values())


def simulation_configs(*, max_ops: int = 60, faults: bool = True) -> st.SearchStrategy[Any]:
    """Small simulation configurations, each run cheap enough for a property test.

    Draws a [`SimulationConfig`][dynamo_core.testing.SimulationConfig]: the cluster's shape,
    the quorum, the workload and the enabled faults.

    Args:
        max_ops: The most read-modify-write cycles per run.
        faults: Whether to draw the enabled faults (otherwise none).
    """
    from dynamo_core.testing.simulation import FAULTS, SimulationConfig  # noqa: PLC0415

    @st.composite
    def build(draw: st.DrawFn) -> SimulationConfig:
        nodes = draw(st.integers(3, 6))
        n = draw(st.integers(1, min(nodes, 4)))
        chosen = draw(st.lists(st.sampled_from(FAULTS), unique=True)) if faults else []
        return SimulationConfig(
            nodes=nodes,
            n=n,
            r=draw(st.integers(1, n)),
            w=draw(st.integers(1, n)),
            sloppy=draw(st.booleans()),
            ops=draw(st.integers(1, max_ops)),
            clients=draw(st.integers(1, 4)),
            keys=draw(st.integers(1, 4)),
            faults=tuple(chosen),
            partitions=draw(st.sampled_from((16, 32, 64))),
        )

    return build()


def _check_fault_plan_args(
    names: tuple[str, ...], max_faults: int, duration: float, max_down: int | None
) -> int:
    """Check `fault_plans`'s arguments; return the most nodes out at once."""
    _check_names(names, "nodes")
    _ticks(duration)
    if not 0 <= max_faults <= 1000:
        raise ValueError(f"max_faults must be in 0 .. 1000, got {max_faults}")
    down_cap = (len(names) - 1) // 2 if max_down is None else max_down
    if not 0 <= down_cap <= len(names):
        raise ValueError(f"max_down must be in 0 .. {len(names)}, got {max_down}")
    return down_cap


def fault_plans(
    nodes: Sequence[str] = ("n1", "n2", "n3", "n4", "n5"),
    *,
    max_faults: int = 6,
    duration: float = 10.0,
    max_down: int | None = None,
    wipes: bool = False,
    pauses: bool = False,
) -> st.SearchStrategy[FaultPlan]:
    """Fault plans for a [`SimulatedCluster`][dynamo_core.testing.SimulatedCluster] or a `World`.

    For the nodes (or [`World`][dynamo_core.testing.World] processes) named `nodes`, draws up
    to `max_faults` crashes, restarts, isolations, rejoins, partitions and heals (and, with
    `pauses`, pauses and resumes) at times in ``0 .. duration`` (in tenths of a second, so
    they shrink to round numbers), each one valid where it falls: a restart follows a crash of
    the same node, at most `max_down` nodes are down, isolated or paused at once. Shrinks
    towards fewer, earlier faults. The default names are those of ``SimulatedCluster(5)``.

    Examples:
        >>> from hypothesis import given
        >>> from dynamo_core.testing import SimulatedCluster
        >>> @given(fault_plans())
        ... def test_no_acknowledged_write_is_lost(plan):
        ...     cluster = SimulatedCluster(5, seed=1)
        ...     plan.apply(cluster)
        ...     ...  # your workload, then cluster.heal(), restarts and checks

    Args:
        nodes: The cluster's node names.
        max_faults: The most faults in a plan.
        duration: The latest time of a fault, in seconds after ``plan.apply``.
        max_down: The most nodes down or isolated at once (default: a minority,
            ``(len(nodes) - 1) // 2``, so a majority quorum stays possible).
        wipes: Whether crashes may also erase the node's storage (amnesia).
        pauses: Whether nodes may be paused (a gray failure) and resumed.

    Raises:
        ValueError: `nodes` is empty or repeats a name, or another argument is out of range.
    """
    names = tuple(nodes)
    down_cap = _check_fault_plan_args(names, max_faults, duration, max_down)
    ticks = max(1, int(duration * 10))
    crash: FaultAction = "crash"

    @st.composite
    def build(draw: st.DrawFn) -> FaultPlan:  # noqa: PLR0912 - one branch per fault kind
        times = sorted(draw(st.lists(st.integers(0, ticks), max_size=max_faults)))
        down: list[str] = []
        isolated: list[str] = []
        paused: list[str] = []
        faults: list[Fault] = []
        parted = 0  # the size of the side the current partition cuts off
        for tick in times:
            out = len(down) + len(isolated) + len(paused) + parted
            running = [n for n in names if n not in down and n not in isolated + paused]
            options: list[FaultAction] = []
            if out < down_cap and running:
                options += [crash, "isolate"] + (["wipe"] if wipes else [])
                options += ["pause"] if pauses else []
                if len(running) > 1:
                    options.append("partition")
            if down:
                options.append("restart")
            if isolated:
                options.append("rejoin")
            if paused:
                options.append("resume")
            if isolated or parted:
                options.append("heal")
            if not options:  # max_down is 0 and nothing is down: no fault fits here
                continue
            action = draw(st.sampled_from(options))
            if action in ("crash", "wipe", "isolate", "pause"):
                node = draw(st.sampled_from(running))
                {"isolate": isolated, "pause": paused}.get(action, down).append(node)
                chosen: tuple[str, ...] = (node,)
            elif action == "resume":
                chosen = (paused.pop(draw(st.integers(0, len(paused) - 1))),)
            elif action == "restart":
                chosen = (down.pop(draw(st.integers(0, len(down) - 1))),)
            elif action == "rejoin":
                chosen = (isolated.pop(draw(st.integers(0, len(isolated) - 1))),)
            elif action == "partition":  # replaces the current partition
                parted = draw(st.integers(1, min(down_cap - out + parted, len(running) - 1)))
                chosen = tuple(sorted(draw(st.permutations(running))[:parted]))
            else:
                isolated.clear()
                parted = 0
                chosen = ()
            faults.append(Fault(tick / 10, action, chosen))
        return FaultPlan(tuple(faults))

    return build()


def _check_names(processes: Sequence[str], what: str = "processes") -> tuple[str, ...]:
    names = tuple(processes)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{what} must be distinct names, at least one; got {names!r}")
    return names


def _ticks(duration: float) -> int:
    if not 0.0 < duration <= 1e6:
        raise ValueError(f"duration must be in (0, 1e6] seconds, got {duration}")
    return max(1, int(duration * 10))


def clock_skews(
    processes: Sequence[str] = ("n1", "n2", "n3", "n4", "n5"),
    *,
    max_skews: int = 3,
    duration: float = 10.0,
    max_offset: float = 1.0,
    max_drift: float = 0.5,
) -> st.SearchStrategy[tuple[ClockSkew, ...]]:
    """Clock skews for a [`World`][dynamo_core.testing.World]'s processes, in time order.

    Each [`ClockSkew`][dynamo_core.testing.ClockSkew] jumps a process's clock by an offset in
    ``-max_offset .. max_offset`` seconds and sets its rate in
    ``1 - max_drift .. 1 + max_drift``, at a time in ``0 .. duration`` (tenths of a second;
    offsets in tenths, rates in hundredths, so they print round). Shrinks towards fewer, earlier
    skews with no jump and no drift.

    Args:
        processes: The process names.
        max_skews: The most skews.
        duration: The latest time of a skew, in seconds.
        max_offset: The largest jump, in seconds (``0 .. 1e6``).
        max_drift: The largest rate change (``0 .. 0.99``: a clock never stops).

    Raises:
        ValueError: `processes` is empty or repeats a name, or another argument is out of range.
    """
    names = _check_names(processes)
    ticks = _ticks(duration)
    if not 0 <= max_skews <= 1000:
        raise ValueError(f"max_skews must be in 0 .. 1000, got {max_skews}")
    if not 0.0 <= max_offset <= 1e6:
        raise ValueError(f"max_offset must be in 0 .. 1e6 seconds, got {max_offset}")
    if not 0.0 <= max_drift <= 0.99:
        raise ValueError(f"max_drift must be in 0 .. 0.99, got {max_drift}")
    offset = int(max_offset * 10)
    drift = int(max_drift * 100)
    skew = st.builds(
        lambda tick, name, tenths, hundredths: ClockSkew(
            tick / 10, name, tenths / 10, 1.0 + hundredths / 100
        ),
        st.integers(0, ticks),
        st.sampled_from(names),
        st.integers(-offset, offset),
        st.integers(-drift, drift),
    )
    return st.lists(skew, max_size=max_skews).map(
        lambda skews: tuple(sorted(skews, key=lambda s: s.at))
    )


def workloads(
    processes: Sequence[str] = ("n1", "n2", "n3", "n4", "n5"),
    *,
    max_operations: int = 10,
    duration: float = 10.0,
    keys: Sequence[str] = ("k",),
    kinds: Sequence[str] = ("put",),
) -> st.SearchStrategy[Workload]:
    """Client workloads: up to `max_operations` operations through any of `processes`.

    Each [`Operation`][dynamo_core.testing.Operation] has a kind from `kinds`, a key from
    `keys`, a time in ``0 .. duration`` (tenths of a second) and a unique value (its index in
    time order). Shrinks towards fewer, earlier operations through the first process on the
    first key.

    Args:
        processes: The process names a client may reach.
        max_operations: The most operations (``0 .. 10_000``).
        duration: The latest time of an operation, in seconds.
        keys: The keys.
        kinds: The operation kinds (``"put"``, ``"get"``: what your driver understands).

    Raises:
        ValueError: `processes`, `keys` or `kinds` is empty or repeats itself, or another
            argument is out of range.
    """
    names = _check_names(processes)
    ticks = _ticks(duration)
    if not 0 <= max_operations <= 10_000:
        raise ValueError(f"max_operations must be in 0 .. 10000, got {max_operations}")
    for what, pool in (("keys", tuple(keys)), ("kinds", tuple(kinds))):
        if not pool or len(set(pool)) != len(pool) or not all(isinstance(x, str) for x in pool):
            raise ValueError(f"{what} must be distinct strings, at least one; got {pool!r}")
    draw_one = st.tuples(
        st.integers(0, ticks), st.sampled_from(names), st.sampled_from(tuple(kinds)),
        st.sampled_from(tuple(keys)),
    )  # fmt: skip

    def build(drawn: list[tuple[int, str, str, str]]) -> Workload:
        ordered = sorted(drawn, key=lambda d: d[0])
        return Workload(
            tuple(
                Operation(tick / 10, name, kind, key, index)
                for index, (tick, name, kind, key) in enumerate(ordered)
            )
        )

    return st.lists(draw_one, max_size=max_operations).map(build)


def schedules(
    processes: Sequence[str] = ("n1", "n2", "n3", "n4", "n5"),
    *,
    max_faults: int = 6,
    max_skews: int = 0,
    max_operations: int = 10,
    duration: float = 10.0,
    keys: Sequence[str] = ("k",),
    kinds: Sequence[str] = ("put",),
    max_down: int | None = None,
    wipes: bool = False,
    pauses: bool = False,
    max_offset: float = 1.0,
    max_drift: float = 0.5,
) -> st.SearchStrategy[Schedule]:
    """Whole schedules for a [`World`][dynamo_core.testing.World]: faults, skews, a workload.

    Draws a [`Schedule`][dynamo_core.testing.Schedule] from
    [`fault_plans`][dynamo_core.strategies.fault_plans],
    [`clock_skews`][dynamo_core.strategies.clock_skews] and
    [`workloads`][dynamo_core.strategies.workloads] (their arguments, passed on). A failing
    schedule shrinks to a few events a person can read: print it.

    Examples:
        >>> from hypothesis import given
        >>> @given(schedules(("a", "b", "c"), max_skews=2))
        ... def test_my_protocol(schedule):
        ...     world = ...  # spawn your processes
        ...     schedule.apply(world, lambda op: ...)  # give each operation to its process

    Raises:
        ValueError: an argument is out of range (see the three strategies).
    """
    return st.builds(
        Schedule,
        fault_plans(
            processes,
            max_faults=max_faults,
            duration=duration,
            max_down=max_down,
            wipes=wipes,
            pauses=pauses,
        ),
        clock_skews(
            processes,
            max_skews=max_skews,
            duration=duration,
            max_offset=max_offset,
            max_drift=max_drift,
        ),
        workloads(
            processes, max_operations=max_operations, duration=duration, keys=keys, kinds=kinds
        ),
    )


def _value_strategy(thing: Any) -> st.SearchStrategy[Any]:
    args = getattr(thing, "__args__", None)
    if args and not isinstance(args[0], TypeVar):
        return st.from_type(args[0])
    return st.binary(max_size=4)


def _type_table() -> dict[type[Any], Callable[[Any], st.SearchStrategy[Any]]]:
    """The strategy of every registered type, as a function of the (maybe parametrized) type."""
    table: dict[type[Any], Callable[[Any], st.SearchStrategy[Any]]] = {
        TokenRange: lambda _: token_ranges(),
        MerkleTree: lambda _: merkle_trees(),
        VectorClock: lambda _: vector_clocks(),
        Versioned: lambda thing: versioned(_value_strategy(thing)),
        DVVSet: lambda thing: dvv_sets(_value_strategy(thing)),
        Hint: lambda _: hints(),
        QuorumPolicy: lambda _: quorum_policies(),
        HashRing: lambda _: rings(),
        Change: lambda _: changes(),
        VersionRecord: lambda _: version_records(),
        FaultPlan: lambda _: fault_plans(),
    }
    for kind, strategy in (_message_strategies() | _result_strategies()).items():
        table[kind] = functools.partial(_fixed, strategy)
    return table


def _fixed(strategy: st.SearchStrategy[Any], _: Any) -> st.SearchStrategy[Any]:
    return strategy


_TYPES: dict[type[Any], Callable[[Any], st.SearchStrategy[Any]]] = {}


def strategy_for_type(thing: Any) -> st.SearchStrategy[Any]:
    """Return the strategy ``st.from_type(thing)`` uses for a dynamo_core type.

    `thing` may be parametrized (``DVVSet[int]`` draws states of `int` values).

    Raises:
        TypeError: `thing` is not a type this module has a strategy for.
    """
    if not _TYPES:
        _TYPES.update(_type_table())
    factory = _TYPES.get(getattr(thing, "__origin__", None) or thing)
    if factory is None:
        raise TypeError(f"dynamo_core.strategies has no strategy for {thing!r}")
    return factory(thing)


def register_type_strategies() -> None:
    """Register every strategy of this module for ``st.from_type``.

    Importing this module calls it, so with hypothesis's plugins off
    (``HYPOTHESIS_NO_PLUGINS=1``) ``import dynamo_core.strategies`` is all `from_type` needs.
    Call it again to restore these strategies after registering others for the same types.
    """
    if not _TYPES:
        _TYPES.update(_type_table())
    for kind in _TYPES:
        st.register_type_strategy(kind, strategy_for_type)


register_type_strategies()

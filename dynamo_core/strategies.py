"""Hypothesis strategies for dynamo_core's types, for your own property-based tests.

Needs the ``hypothesis`` extra. The strategies are also registered with hypothesis through its
``hypothesis`` entry point, so ``st.from_type(TokenRange)`` works once dynamo_core is installed.

Examples:
    >>> from hypothesis import given
    >>> from dynamo_core.strategies import token_ranges
    >>> @given(token_ranges())
    ... def test_size(rng):
    ...     assert 1 <= rng.size <= 2**64
"""

from __future__ import annotations

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
from dynamo_core.vclock import VectorClock, Versioned

__all__ = [
    "changes",
    "dvv_replicas",
    "dvv_sets",
    "hints",
    "item_digests",
    "keys",
    "merkle_trees",
    "node_ids",
    "node_messages",
    "quorum_policies",
    "request_results",
    "rings",
    "simulation_configs",
    "token_ranges",
    "tokens",
    "vector_clocks",
    "version_records",
    "versioned",
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
    values: st.SearchStrategy[Any] | None = None, *, max_steps: int = 12
) -> st.SearchStrategy[DVVSet[Any]]:
    """Reachable `DVVSet` states: one replica's state after a random history of three replicas.

    Args:
        values: The values written (default: short `bytes`).
        max_steps: The longest history.
    """
    vals = values if values is not None else st.binary(max_size=4)
    return st.builds(
        lambda states, i: states[i], _dvv_history(vals, 3, max_steps), st.integers(0, 2)
    )


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
    """Valid quorum policies with ``n`` in ``1 .. max_n``, sloppy or not.

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
        write_any = w == 1 and draw(st.booleans())
        return QuorumPolicy(
            n,
            r,
            w,
            sloppy=draw(st.booleans()),
            notfound_ok=draw(st.booleans()),
            write_any=write_any,
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
) -> st.SearchStrategy[HashRing]:
    """Hash rings after a random history of joins and leaves.

    Partition counts are small (the smallest power of two from 8 that gives every node at
    least one partition, up to 256) so rings are cheap to build; node ids come from
    `node_ids()`, zones (when drawn) from a pool of three, weights (when drawn) from
    ``0.5 .. 3``.

    Args:
        min_nodes: The fewest nodes the ring ends with.
        max_nodes: The most nodes the ring ends with (and holds at any time).
        strategy: ``"partitions"`` (Dynamo strategy 3), ``"vnodes"`` (strategy 1), or `None`
            for either.
        zones: ``True``: every node has a zone; ``False``: none has; `None`: any mix.
        weights: ``True``: weights vary; ``False``: all 1.0; `None`: either.
        max_replicas: The largest replication factor drawn.
    """
    if not 0 <= min_nodes <= max_nodes:
        raise ValueError(f"need 0 <= min_nodes <= max_nodes, got {min_nodes}, {max_nodes}")
    zone_pool = st.sampled_from(("us-east-1a", "us-east-1b", "us-east-1c"))
    zone_of: st.SearchStrategy[str | None] = (
        st.none() | zone_pool if zones is None else (zone_pool if zones else st.none())
    )
    varied = st.sampled_from((0.5, 1.0, 1.0, 1.5, 2.0, 3.0))
    weight_of: st.SearchStrategy[float] = (
        (st.just(1.0) | varied) if weights is None else (varied if weights else st.just(1.0))
    )
    # Weights within 0.5 .. 3 give every node a share of at least Q / (6 * max_nodes).
    least = max(8, 6 * max_nodes if weights is not False else max_nodes)
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


def _value_strategy(thing: Any) -> st.SearchStrategy[Any]:
    args = getattr(thing, "__args__", None)
    if args and not isinstance(args[0], TypeVar):
        return st.from_type(args[0])
    return st.binary(max_size=4)


def _hypothesis_setup_hook() -> None:
    """Register the strategies for `st.from_type`; called by hypothesis's entry point."""
    st.register_type_strategy(TokenRange, token_ranges())
    st.register_type_strategy(MerkleTree, merkle_trees())
    st.register_type_strategy(VectorClock, vector_clocks())
    st.register_type_strategy(Versioned, lambda thing: versioned(_value_strategy(thing)))
    st.register_type_strategy(DVVSet, lambda thing: dvv_sets(_value_strategy(thing)))
    st.register_type_strategy(Hint, hints())
    st.register_type_strategy(QuorumPolicy, quorum_policies())
    st.register_type_strategy(HashRing, rings())
    st.register_type_strategy(Change, changes())
    st.register_type_strategy(VersionRecord, version_records())
    for kind, strategy in (_message_strategies() | _result_strategies()).items():
        st.register_type_strategy(kind, strategy)

"""Node: the composed Dynamo core, driven through its pure interface (inputs in, effects out).

A tiny in-test router delivers `Send` effects in order, drops messages to nodes marked down,
and calls every node's invariant checker after every input.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dynamo_core import (
    DVVSet,
    GetReply,
    HashRing,
    MemoryStorage,
    Node,
    NodeConfig,
    PutReply,
    QuorumPolicy,
    RequestFailed,
    codec,
)
from dynamo_core.errors import DecodeError, LocalProtocolError
from dynamo_core.hints import HintsDelivered
from dynamo_core.merkle import Nodes
from dynamo_core.messages import (
    ExchangeMessage,
    FetchReply,
    Forward,
    ForwardReply,
    Heartbeat,
    HintAck,
    Message,
    RepairPush,
    StoreReply,
    StoreRequest,
    SyncDiff,
)
from dynamo_core.node import (
    AntiEntropyDone,
    Effect,
    Reply,
    Send,
    decode_context,
    encode_context,
)
from dynamo_core.testing import SimulatedCluster
from dynamo_core.vclock import VectorClock

FAST = NodeConfig(
    heartbeat_interval=0.5,
    request_timeout=0.4,
    forward_timeout=0.8,
    anti_entropy_interval=0.5,
    exchange_timeout=2.0,
    merkle_depth=4,
    handoff_timeout=1.0,
    handoff_backoff=0.25,
)


def ring_of(
    *names: str, replicas: int = 3, partitions: int = 16, hash_key: bytes | None = None
) -> HashRing:
    ring = HashRing(replicas, partitions=partitions, hash_key=hash_key)
    for name in names:
        ring.add_node(name)
    return ring


class Router:
    """Delivers messages between nodes in FIFO order; nodes in `down` receive nothing."""

    def __init__(self, names: tuple[str, ...] = ("a", "b", "c"), *, n: int = 3, **kw: Any) -> None:
        self.ring = ring_of(*names, replicas=n, hash_key=kw.pop("hash_key", None))
        self.policy = QuorumPolicy(n, kw.pop("r", 2), kw.pop("w", 2))
        self.storages = {name: MemoryStorage() for name in names}
        self.nodes = {
            name: Node(
                name,
                self.ring,
                policy=self.policy,
                config=FAST,
                storage=self.storages[name],
                first_epoch=0,
                incarnation=1,
            )
            for name in names
        }
        self.now = 0.0
        self.queue: deque[tuple[str, str, Message]] = deque()
        self.down: set[str] = set()
        self.replies: dict[str, Any] = {}
        self.notes: list[tuple[str, Effect]] = []

    def apply(self, name: str, effects: list[Effect]) -> None:
        self.nodes[name]._check_invariants()
        for effect in effects:
            if isinstance(effect, Send):
                self.queue.append((name, effect.target, effect.message))
            elif isinstance(effect, Reply):
                assert effect.request_id not in self.replies, "a request answered twice"
                self.replies[effect.request_id] = effect.result
            else:
                self.notes.append((name, effect))

    def deliver(self) -> None:
        while self.queue:
            source, target, message = self.queue.popleft()
            if target in self.down or source in self.down:
                continue
            self.apply(target, self.nodes[target].receive(source, message, self.now))

    def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for name, node in self.nodes.items():
                if name not in self.down and node.deadline() <= self.now:
                    self.apply(name, node.on_timer(self.now))
            self.deliver()

    def put(self, via: str, rid: str, key: str, value: bytes, context: bytes | None) -> Any:
        self.apply(via, self.nodes[via].put(rid, key, value, context, self.now))
        self.deliver()
        if rid not in self.replies:
            self.advance(2.0)
        return self.replies[rid]

    def get(self, via: str, rid: str, key: str) -> Any:
        self.apply(via, self.nodes[via].get(rid, key, self.now))
        self.deliver()
        if rid not in self.replies:
            self.advance(2.0)
        return self.replies[rid]


# -- construction ------------------------------------------------------------------------------


def test_construction_checks_its_arguments() -> None:
    ring = ring_of("a", "b", "c")
    assert Node("z", ring).status == "outside"  # a node outside the ring may start (to join)
    with pytest.raises(TypeError, match="seeds"):
        Node("z", ring, seeds="a")
    with pytest.raises(ValueError, match="policy.n"):
        Node("a", ring, policy=QuorumPolicy(2, 1, 1))
    with pytest.raises(TypeError, match="ring"):
        Node("a", "ring")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        Node("a", ring, config={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="storage"):
        Node("a", ring, storage={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="incarnation"):
        Node("a", ring, incarnation=-1)
    with pytest.raises(TypeError, match="first_epoch"):
        Node("a", ring, first_epoch=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now"):
        Node("a", ring, now=-1.0)
    with pytest.raises(ValueError, match="replica_timeout"):
        NodeConfig(request_timeout=1.0, replica_timeout=2.0)
    with pytest.raises(ValueError, match="merkle_depth"):
        NodeConfig(merkle_depth=21)


def test_the_node_copies_the_ring_and_knows_its_segments() -> None:
    ring = ring_of("a", "b", "c", "d")
    node = Node("a", ring, config=FAST)
    ring.add_node("e")  # the caller's ring changes; the node's does not
    assert "e" not in node.ring
    expected = [rng for rng, plist in ring_of("a", "b", "c", "d").segments() if "a" in plist]
    assert list(node.ranges) == expected
    assert node.replicas("k") == ring_of("a", "b", "c", "d").preference_list("k")
    node._check_invariants()


def test_a_fresh_node_without_first_epoch_draws_a_large_random_epoch() -> None:
    ring = ring_of("a", "b", "c")
    one = Node("a", ring, incarnation=1)
    two = Node("a", ring, incarnation=2)
    assert 2**40 <= one.epoch < 2**52
    assert one.epoch != two.epoch
    assert Node("a", ring, incarnation=1).epoch == one.epoch  # deterministic per incarnation
    assert Node("a", ring, first_epoch=0).epoch == 0


# -- the write and read paths ------------------------------------------------------------------


def test_put_then_get_returns_the_value_and_a_context_that_replaces_it() -> None:
    net = Router()
    key = "cart:alice"
    owner = net.ring.preference_list(key)[0]
    assert not net.nodes[owner].busy()
    net.apply(owner, net.nodes[owner].put("p0", "other", b"x", None, 0.0))
    assert net.nodes[owner].busy()  # the put is waiting for its replicas
    net.deliver()
    assert not net.nodes[owner].busy()  # every reply is in: the coordinator closed
    first = net.put(owner, "p1", key, b"book", None)
    assert isinstance(first, PutReply)
    assert len(first.acked) == 2
    read = net.get(owner, "g1", key)
    assert isinstance(read, GetReply)
    assert read.values == (b"book",)
    assert read.found
    second = net.put(owner, "p2", key, b"book+pen", read.context)
    assert isinstance(second, PutReply)
    net.advance(0.5)
    assert net.get(owner, "g2", key).values == (b"book+pen",)
    # every replica holds the same state once the write drained
    states = {name: net.nodes[name].state_of(key) for name in net.ring.preference_list(key)}
    assert len({repr(s) for s in states.values()}) == 1


def test_get_of_a_missing_key_is_found_false_with_an_empty_context() -> None:
    net = Router()
    read = net.get("a", "g", "nothing")
    assert isinstance(read, GetReply)
    assert read.values == ()
    assert not read.found
    assert decode_context(read.context) == VectorClock()


def test_concurrent_blind_writes_become_siblings_and_a_context_write_replaces_both() -> None:
    net = Router()
    key = "k"
    owner = net.ring.preference_list(key)[0]
    net.put(owner, "p1", key, b"x", None)
    net.put(owner, "p2", key, b"y", None)
    read = net.get(owner, "g1", key)
    assert sorted(read.values) == [b"x", b"y"]
    net.put(owner, "p3", key, b"xy", read.context)
    assert net.get(owner, "g2", key).values == (b"xy",)


def test_a_non_replica_forwards_to_a_primary_and_relays_the_reply() -> None:
    net = Router(("a", "b", "c", "d", "e"))
    key = next(f"k{i}" for i in range(100) if "a" not in net.ring.preference_list(f"k{i}"))
    reply = net.put("a", "p", key, b"v", None)
    assert isinstance(reply, PutReply)
    assert net.nodes["a"].stats()["requests_forwarded"] == 1
    assert net.nodes["a"].stats()["puts_coordinated"] == 0
    assert net.nodes["a"].state_of(key) is None  # not a replica: stores nothing
    assert net.get("a", "g", key).values == (b"v",)


def test_a_duplicated_forward_is_coordinated_once() -> None:
    net = Router()
    key = "k"
    owner = net.ring.preference_list(key)[0]
    forward = Forward(77, "put", key.encode(), b"v", None)
    net.apply(owner, net.nodes[owner].receive("b", forward, 0.0))
    net.apply(owner, net.nodes[owner].receive("b", forward, 0.0))
    assert net.nodes[owner].stats()["puts_coordinated"] == 1
    assert net.nodes[owner].stats()["messages_ignored"] == 1
    net.deliver()
    assert len(net.nodes[owner].state_of(key) or ()) == 1


def test_a_forward_that_times_out_fails_the_request_and_suspects_the_primary() -> None:
    net = Router(("a", "b", "c", "d", "e"))
    key = next(f"k{i}" for i in range(100) if "a" not in net.ring.preference_list(f"k{i}"))
    primary = net.ring.preference_list(key)[0]
    net.down.add(primary)
    reply = net.put("a", "p", key, b"v", None)
    assert isinstance(reply, RequestFailed)
    assert primary in reply.reason
    assert not net.nodes["a"].detector.is_available(primary, net.now)


def test_put_rejects_bad_arguments_and_changes_nothing() -> None:
    node = Node("a", ring_of("a", "b", "c"), config=FAST, first_epoch=0)
    before = node.stats()
    with pytest.raises(TypeError, match="value"):
        node.put("r", "k", "text", None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        node.put("r", "k", b"v", b"not a context", 0.0)
    with pytest.raises(TypeError, match="request_id"):
        node.put(1, "k", b"v", None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        node.get("r", 5, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 65536 bytes"):
        node.get("r", b"x" * 70_000, 0.0)
    assert node.stats() == before
    assert node.keys() == []


def test_time_must_not_go_backwards() -> None:
    node = Node("a", ring_of("a", "b", "c"), config=FAST)
    node.on_timer(5.0)
    with pytest.raises(LocalProtocolError):
        node.on_timer(4.0)
    with pytest.raises(LocalProtocolError):
        node.get("r", "k", 1.0)


@pytest.mark.parametrize(
    ("sender", "error"),
    [
        (7, TypeError),
        (b"b", TypeError),
        ("", ValueError),
        ("x" * 256, ValueError),
        ("b\ud800", ValueError),  # a lone surrogate: not UTF-8
    ],
)
def test_a_bad_sender_is_refused_and_changes_nothing(sender: Any, error: type) -> None:
    node = Node("a", ring_of("a", "b", "c"), config=FAST)
    before = node.stats()
    with pytest.raises(error, match="sender"):
        node.receive(sender, Heartbeat(1, 1), 1.0)
    assert node.stats() == before
    node.receive("\u00e9", Heartbeat(1, 1), 1.0)  # a non-ASCII id is valid (the careful path)


@pytest.mark.parametrize("now", [float("nan"), float("inf"), -1.0, True, "1", None])
def test_a_bad_time_is_refused(now: Any) -> None:
    node = Node("a", ring_of("a", "b", "c"), config=FAST)
    with pytest.raises((TypeError, ValueError)):
        node.receive("b", Heartbeat(1, 1), now)
    node.receive("b", Heartbeat(1, 1), 2)  # an int is a time
    with pytest.raises(LocalProtocolError):
        node.receive("b", Heartbeat(1, 2), 1.5)


def test_context_round_trip() -> None:
    clock = VectorClock({"a#1": 3, "b#9": 1})
    assert decode_context(encode_context(clock)) == clock
    with pytest.raises(TypeError):
        decode_context("text")  # type: ignore[arg-type]


# -- failures: suspicion, sloppy quorum, hints -------------------------------------------------


def test_a_down_primary_is_replaced_by_a_fallback_that_hands_the_hint_back() -> None:
    net = Router(("a", "b", "c", "d"))
    key = "cart:alice"
    p1, p2, p3 = net.ring.preference_list(key)
    fallback = next(node for node in net.ring.walk(key) if node not in (p1, p2, p3))
    net.down.add(p3)
    reply = net.put(p1, "p1", key, b"v1", None)
    assert isinstance(reply, PutReply)
    net.advance(1.0)  # the store to p3 times out; the coordinator places a hinted copy
    assert not net.nodes[p1].detector.is_available(p3, net.now)
    assert net.nodes[fallback].hints.count(p3) == 1
    assert net.nodes[fallback].state_of(key) is None  # a hint, not a replica
    # while p3 is suspected, the next write goes to the fallback at once
    reply = net.put(p1, "p2", key, b"v2", None)
    assert isinstance(reply, PutReply)
    net.down.discard(p3)
    net.advance(3.0)  # heartbeats resume, the fallback sees p3 up and delivers
    delivered = [e for n, e in net.notes if isinstance(e, HintsDelivered) and n == fallback]
    assert delivered
    assert delivered[-1].target == p3
    assert len(net.nodes[fallback].hints) == 0
    state = net.nodes[p3].state_of(key)
    assert state is not None
    assert sorted(state.values) == [b"v1", b"v2"]


def test_a_hinted_store_for_a_non_member_is_refused() -> None:
    node = Node("a", ring_of("a", "b", "c", "d"), config=FAST)
    state = DVVSet[bytes]().update(b"v", "b#1")
    effects = node.receive("b", StoreRequest(1, b"k", state, "zz"), 0.0)
    assert effects == [Send("b", StoreReply(1, False, "zz is not a member of the ring"))]
    assert len(node.hints) == 0


def test_heartbeats_feed_the_detector_and_duplicates_do_not() -> None:
    node = Node("a", ring_of("a", "b", "c"), config=FAST)
    node.receive("b", Heartbeat(1, 1), 0.0)
    node.receive("b", Heartbeat(1, 2), 0.5)
    node.receive("b", Heartbeat(1, 2), 0.55)  # duplicate: not a new arrival
    assert node.detector.mean_interval("b") == pytest.approx(0.5)
    node.receive("b", Heartbeat(2, 1), 1.0)  # a restart: new generation, counters from 1
    assert node.detector.mean_interval("b") == pytest.approx(0.5)
    effects = node.on_timer(1.0)
    beats = [e for e in effects if isinstance(e, Send) and isinstance(e.message, Heartbeat)]
    assert sorted(e.target for e in beats) == ["b", "c"]


# -- garbage from peers never raises -----------------------------------------------------------


def test_stray_and_duplicate_replies_are_ignored() -> None:
    node = Node("a", ring_of("a", "b", "c"), config=FAST)
    assert node.receive("b", StoreReply(123), 0.0) == []
    assert node.receive("b", FetchReply(124), 0.0) == []
    assert node.receive("b", ForwardReply(5, RequestFailed("x")), 0.0) == []
    assert node.receive("b", HintAck(7), 0.0) == []
    assert node.receive("b", SyncDiff(9, ()), 0.0) == []
    nodes = Nodes(0, bytes(16))
    rng = node.ranges[0]
    assert node.receive("b", ExchangeMessage(3, rng, "initiator", nodes), 0.0) == []
    assert node.stats()["messages_ignored"] == 6
    with pytest.raises(TypeError, match="node message"):
        node.receive("b", "hello", 0.0)  # type: ignore[arg-type]
    node._check_invariants()


def test_states_for_keys_this_node_does_not_replicate_are_not_stored() -> None:
    ring = ring_of("a", "b", "c", "d", "e")
    node = Node("a", ring, config=FAST)
    key = next(f"k{i}".encode() for i in range(100) if "a" not in ring.preference_list(f"k{i}"))
    state = DVVSet[bytes]().update(b"v", "b#1")
    effects = node.receive("b", StoreRequest(1, key, state), 0.0)
    assert effects == [Send("b", StoreReply(1, False, "not a replica of this key"))]
    node.receive("b", RepairPush(((key, state),)), 0.0)
    assert node.keys() == []
    node._check_invariants()


# -- restarts, amnesia and epochs ---------------------------------------------------------------


def test_a_restart_on_the_same_storage_keeps_data_trees_and_mints_a_new_epoch() -> None:
    net = Router()
    key = "k"
    owner = net.ring.preference_list(key)[0]
    net.put(owner, "p1", key, b"v", None)
    net.advance(0.5)
    old = net.nodes[owner]
    roots = {rng: old.merkle_root(rng) for rng in old.ranges}
    epoch = old.epoch
    new = Node(owner, net.ring, policy=net.policy, config=FAST, storage=net.storages[owner])
    assert new.state_of(key) == old.state_of(key)
    assert {rng: new.merkle_root(rng) for rng in new.ranges} == roots
    new._check_invariants()
    net.nodes[owner] = new
    read = net.get(owner, "g", key)
    net.put(owner, "p2", key, b"w", read.context)
    assert new.epoch == epoch + 1  # the actors of the last life are retired
    state = new.state_of(key)
    assert state is not None
    assert [dot.node for dot, _ in state.items()] == [f"{owner}#{epoch + 1}"]


def _kv679(first_epoch: int | None) -> list[bytes]:
    """A replica loses its disk and coordinates a blind write of a key it wrote before."""
    net = Router()
    key = "k"
    owner = net.ring.preference_list(key)[0]
    net.put(owner, "p1", key, b"old", None)
    net.advance(0.5)
    net.storages[owner] = MemoryStorage()
    net.nodes[owner] = Node(
        owner,
        net.ring,
        policy=net.policy,
        config=FAST,
        storage=net.storages[owner],
        incarnation=2,
        first_epoch=first_epoch,
    )
    reply = net.put(owner, "p2", key, b"new", None)
    assert isinstance(reply, PutReply)  # acknowledged ...
    net.advance(3.0)
    values: list[bytes] = net.get(owner, "g", key).values
    return sorted(values)


def test_kv679_a_replica_that_lost_its_disk_must_not_reuse_its_epochs() -> None:
    # Negative control: restarting at epoch 0 reissues the dot a#1:1 with a new value. Replicas
    # now disagree about what a#1:1 is; merging would keep one of them and lose an acknowledged
    # write silently, so the merge refuses, naming the dot.
    # write silently, so the replicas holding the old dot refuse the store, naming the dot: the
    # write is not acknowledged, and the acknowledged one survives.
    net = Router()
    owner = net.ring.preference_list("k")[0]
    net.put(owner, "p1", "k", b"old", None)
    net.advance(0.5)
    net.storages[owner] = MemoryStorage()
    net.nodes[owner] = Node(
        owner, net.ring, policy=net.policy, config=FAST, storage=net.storages[owner],
        incarnation=2, first_epoch=0,
    )  # fmt: skip
    refused = net.put(owner, "p2", "k", b"new", None)
    assert isinstance(refused, RequestFailed) and "needed 2 acknowledgements" in refused.reason
    net.advance(3.0)  # anti-entropy meets the collision too: counted, never merged away
    assert sum(n.stats()["dot_collisions"] for n in net.nodes.values()) >= 2
    assert b"old" in net.get(net.ring.preference_list("k")[1], "g", "k").values
    # The default draws a fresh random epoch: both writes survive as siblings.
    assert _kv679(first_epoch=None) == [b"new", b"old"]


# -- anti-entropy ------------------------------------------------------------------------------


def test_anti_entropy_repairs_a_replica_that_missed_writes() -> None:
    net = Router()
    keys = [f"k{i}" for i in range(20)]
    victim = "c"
    net.down.add(victim)
    for i, key in enumerate(keys):
        net.put(
            net.ring.preference_list(key)[0] if net.ring.preference_list(key)[0] != victim else "a",
            f"p{i}",
            key,
            key.encode(),
            None,
        )
    # no hints can reach the victim: wipe them to force anti-entropy to do the work
    for name in ("a", "b"):
        for target in net.nodes[name].hints.targets():
            net.nodes[name].hints.forget(target)
    net.down.discard(victim)
    missing = [k for k in keys if victim in net.ring.preference_list(k)]
    assert missing
    assert all(net.nodes[victim].state_of(k) is None for k in missing)
    net.advance(6.0)
    for key in missing:
        assert net.nodes[victim].state_of(key) == net.nodes["a"].state_of(key)
    for rng in net.nodes[victim].ranges:
        assert net.nodes[victim].merkle_root(rng) == net.nodes["a"].merkle_root(rng)
    reports = [e for _, e in net.notes if isinstance(e, AntiEntropyDone)]
    assert sum(e.pushed + e.pulled for e in reports) >= len(missing)
    assert all(e.report.digests > 0 for e in reports)


def test_a_keyed_ring_places_keys_and_trees_with_its_secret() -> None:
    net = Router(("a", "b", "c", "d"), hash_key=b"cluster secret, 16+")
    keys = [f"k{i}" for i in range(12)]
    for i, key in enumerate(keys):
        assert isinstance(net.put("a", f"p{i}", key, b"v", None), PutReply)
    net.advance(1.0)
    for key in keys:
        holders = {name for name, node in net.nodes.items() if node.state_of(key) is not None}
        assert holders == set(net.ring.preference_list(key))
    for node in net.nodes.values():
        node._check_invariants()  # trees rebuilt from storage with the keyed token agree


def test_merkle_root_rejects_a_range_it_does_not_replicate() -> None:
    node = Node("a", ring_of("a", "b", "c", "d", "e"), config=FAST)
    with pytest.raises(ValueError, match="segment"):
        node.merkle_root(node.ranges[0].__class__(1, 2))


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=20)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["x", "y", "z"])),
        min_size=1,
        max_size=12,
    ),
    down=st.sets(st.sampled_from(["a", "b", "c", "d"]), max_size=1),
)
def test_every_acknowledged_blind_write_is_read_back_after_recovery(
    writes: list[tuple[str, str]], down: set[str]
) -> None:
    net = Router(("a", "b", "c", "d"))
    net.down |= down
    acked: dict[str, set[bytes]] = {}
    for i, (via, key) in enumerate(writes):
        if via in down:
            continue
        value = f"{key}-{i}".encode()
        if isinstance(net.put(via, f"p{i}", key, value, None), PutReply):
            acked.setdefault(key, set()).add(value)
    net.down.clear()
    net.advance(6.0)
    for key, values in acked.items():
        read = net.get("a", f"g{key}", key)
        assert isinstance(read, GetReply)
        assert values <= set(read.values)


# -- a stateful test against a model ------------------------------------------------------------


class ClusterMachine(RuleBasedStateMachine):
    """Blind writes of unique values under crashes and partitions, beside a set model.

    Blind writes replace nothing, so every acknowledged value must stay a sibling forever:
    reads return only attempted values, and after healing every acknowledged one is read back.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cluster = SimulatedCluster(4, config=FAST, seed=7, partitions=16)
        self.attempted: dict[str, set[bytes]] = {}
        self.acked: dict[str, set[bytes]] = {}
        self.seq = 0

    @rule(via=st.integers(0, 3), key=st.sampled_from(["x", "y"]))
    def put(self, via: int, key: str) -> None:
        self.seq += 1
        value = f"{key}{self.seq}".encode()
        self.attempted.setdefault(key, set()).add(value)

        def done(result: object) -> None:
            if isinstance(result, PutReply):
                self.acked.setdefault(key, set()).add(value)

        self.cluster.submit("put", self.cluster.nodes[via], key, done, value=value, timeout=2.0)

    @rule(via=st.integers(0, 3), key=st.sampled_from(["x", "y"]))
    def get(self, via: int, key: str) -> None:
        attempted = self.attempted.setdefault(key, set())  # later puts may land first

        def done(result: object) -> None:
            if isinstance(result, GetReply):
                assert set(result.values) <= attempted

        self.cluster.submit("get", self.cluster.nodes[via], key, done, timeout=2.0)

    @rule(seconds=st.sampled_from([0.01, 0.1, 0.5, 2.0]))
    def run(self, seconds: float) -> None:
        self.cluster.run(seconds)

    @precondition(lambda self: all(self.cluster.is_up(n) for n in self.cluster.nodes))
    @rule(victim=st.integers(0, 3))
    def crash(self, victim: int) -> None:
        self.cluster.crash(self.cluster.nodes[victim])

    @rule()
    def restart(self) -> None:
        for name in self.cluster.nodes:
            if not self.cluster.is_up(name):
                self.cluster.restart(name)

    @rule(side=st.sets(st.integers(0, 3), min_size=1, max_size=2))
    def partition(self, side: set[int]) -> None:
        self.cluster.partition([self.cluster.nodes[i] for i in sorted(side)])

    @rule()
    def heal(self) -> None:
        self.cluster.heal()

    @invariant()
    def nodes_are_consistent(self) -> None:
        for node in self.cluster.live_nodes():
            node._check_invariants()

    def teardown(self) -> None:
        cluster = self.cluster
        cluster.heal()
        self.restart()
        cluster.run(15.0)  # in-flight requests finish, hints flow, anti-entropy converges
        assert cluster.pending_hints() == 0
        assert cluster.divergent_keys(["x", "y"]) == []
        assert cluster.divergent_ranges() == []
        for key, values in self.acked.items():
            state = cluster.node(cluster.replicas(key)[0]).state_of(key)
            assert state is not None
            assert values <= set(state.values) <= self.attempted[key]


TestCluster = ClusterMachine.TestCase
TestCluster.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)


def test_codec_envelope_of_the_epoch_record_is_strict() -> None:
    storage = MemoryStorage()
    bad = codec.dumps(codec.envelope("node_epoch", {"epoch": -1}))
    storage.put(b"m/epoch", bad)
    node = Node("a", ring_of("a", "b", "c"), storage=storage)  # starts: the record is set aside
    assert node.stats()["records_quarantined"] == 1
    assert storage.get(b"q/m/epoch") == bad
    assert node.epoch >= 2**40  # a fresh random epoch, as after a lost disk


class CountingStorage(MemoryStorage):
    """A `MemoryStorage` that counts reads of replica records."""

    def __init__(self) -> None:
        super().__init__()
        self.data_reads = 0

    def get(self, key: bytes) -> bytes | None:
        if key.startswith(b"d/"):
            self.data_reads += 1
        return super().get(key)


def test_a_coordinating_replica_counts_its_own_write_without_merging_it_again() -> None:
    storage = CountingStorage()
    node = Node("a", ring_of("a", "b", "c"), config=FAST, storage=storage, first_epoch=0)
    node.on_timer(0.0)
    effects = node.put("r1", "cart", b"book", None, 0.0)
    # one read of the key's record (the coordinator's load), none for a store to itself
    assert storage.data_reads == 1
    stores = [
        (e.target, e.message)
        for e in effects
        if isinstance(e, Send) and isinstance(e.message, StoreRequest)
    ]
    assert sorted(target for target, _ in stores) == ["b", "c"]
    target, store = stores[0]
    # the local write already counts: one more acknowledgement reaches w=2
    done = node.receive(target, StoreReply(store.op, True, ""), 0.01)
    replies = [e for e in done if isinstance(e, Reply)]
    assert len(replies) == 1 and isinstance(replies[0].result, PutReply)
    assert set(replies[0].result.acked) == {"a", target}
    assert node.stats()["replica_writes"] == 0  # the coordinator's write is not a merge
    node._check_invariants()


def test_the_deadline_is_the_earliest_request_and_follows_it_as_requests_close() -> None:
    net = Router()
    a = net.nodes["a"]
    net.apply("a", a.on_timer(0.0))
    net.queue.clear()
    net.down = {"b", "c"}  # nobody answers: each put waits for its replicas
    for i in range(20):
        net.now = 0.01 * i
        net.apply("a", a.put(f"r{i}", f"k{i}", b"v", None, net.now))
    net.deliver()
    first = a.deadline()
    assert first <= FAST.request_timeout + 0.01  # the first put's replica or request timeout
    # firing the timers moves the deadline forward, never back, until the requests close
    seen = [first]
    while a.busy() and len(seen) < 200:
        net.now = max(net.now, a.deadline())
        net.apply("a", a.on_timer(net.now))
        net.queue.clear()
        seen.append(a.deadline())
    assert seen == sorted(seen)
    failed = [r for r in net.replies.values() if isinstance(r, RequestFailed)]
    assert len(failed) == 20  # every put timed out, each answered once

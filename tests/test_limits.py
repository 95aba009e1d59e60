"""Admission limits, quarantine and the storage-full degraded mode, through the pure Node core."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo_core import DVVSet, HashRing, MemoryStorage, Node, NodeConfig, QuorumPolicy, codec
from dynamo_core.errors import DecodeError, StorageError, StorageFull
from dynamo_core.limits import (
    MAX_CONTEXT_COUNTER,
    MERGE_HEADROOM,
    STORED_MAX_RECORD_BYTES,
    STORED_MAX_SIBLINGS,
    Limits,
    unstorable,
)
from dynamo_core.messages import GetReply, PutReply, RepairPush, RequestFailed, StoreRequest
from dynamo_core.node import Quarantined, Reply, Send, decode_context, encode_context
from dynamo_core.vclock import VectorClock


def single(storage: MemoryStorage | None = None, **limits: int) -> Node:
    """A one-node cluster (N = 1), so every write is coordinated and stored here."""
    ring = HashRing(1, partitions=8)
    ring.add_node("A")
    config = NodeConfig(limits=Limits(**limits)) if limits else NodeConfig()
    return Node(
        "A", ring, policy=QuorumPolicy(1, 1, 1), config=config, storage=storage, first_epoch=0
    )


def replica_of_three(storage: MemoryStorage | None = None, **kw: Any) -> tuple[Node, bytes]:
    """Node A of a three-node cluster, and a key it replicates."""
    ring = HashRing(3, partitions=8)
    ring.add_nodes(["A", "B", "C"])
    node = Node("A", ring, storage=storage, **kw)
    return node, next(k for k in (b"k%d" % i for i in range(100)) if "A" in node.replicas(k))


def result(effects: list[Any]) -> Any:
    replies = [e.result for e in effects if isinstance(e, Reply)]
    assert len(replies) == 1, effects
    return replies[0]


class FlakyStorage(MemoryStorage):
    """Writes fail with `StorageFull` (what SQLite's SQLITE_FULL becomes) while `full` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def put(self, key: bytes, value: bytes) -> None:
        if self.full:
            raise StorageFull("database or disk is full")
        super().put(key, value)

    def write_batch(self, puts: Any = (), deletes: Any = ()) -> None:
        if self.full:
            raise StorageFull("database or disk is full")
        super().write_batch(puts, deletes)


def degraded(node: Node) -> bool:
    return node.degraded


# -- the limits themselves ---------------------------------------------------------------------


def test_defaults_follow_riak_and_fit_the_frame() -> None:
    limits = Limits()
    assert (limits.siblings_warning, limits.max_siblings) == (25, 100)
    limits.check_frame(16 * 2**20)
    assert limits.max_record_bytes * MERGE_HEADROOM <= STORED_MAX_RECORD_BYTES


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"max_siblings": STORED_MAX_SIBLINGS // MERGE_HEADROOM + 1},
            "max_siblings must be at most",
        ),
        ({"max_clock_entries": 400}, "max_clock_entries must be at most"),
        ({"max_record_bytes": 6 << 20}, "max_record_bytes must be at most"),
        ({"siblings_warning": 101}, "siblings_warning must be at most"),
        ({"max_value_bytes": 4 << 20}, "cannot fit in max_record_bytes"),
        ({"max_siblings": 0}, "max_siblings must be >= 1"),
    ],
)
def test_limits_that_cannot_hold_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Limits(**kwargs)
    with pytest.raises(TypeError):
        Limits(max_siblings=True)


def test_a_frame_too_small_for_the_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="max_frame=4194304 cannot carry"):
        Limits().check_frame(4 << 20)
    Limits(max_value_bytes=1000, max_record_bytes=100_000).check_frame(4 << 20)


def test_unstorable_names_the_storage_limit() -> None:
    state: DVVSet[bytes] = DVVSet()
    assert unstorable(state, b"{}") is None
    assert "limit is" in str(unstorable(state, b"x" * (STORED_MAX_RECORD_BYTES + 1)))


# -- finding 1: a hostile context --------------------------------------------------------------


def test_a_context_with_counters_near_overflow_is_refused_at_decode() -> None:
    node = single()
    # The coordinator's next actors, each at the largest counter: the put used to overflow.
    hostile = VectorClock({f"A#{e}": 2**63 - 1 for e in range(1, 1001)})
    with pytest.raises(DecodeError, match="the limit is 2\\*\\*53"):
        node.put("r1", "k", b"v", encode_context(hostile), 1.0)
    at_limit = encode_context(VectorClock({"A#1": MAX_CONTEXT_COUNTER}))
    assert decode_context(at_limit).get("A#1") == MAX_CONTEXT_COUNTER
    assert node.state_of("k") is None  # nothing written
    assert isinstance(result(node.put("r2", "k", b"v", None, 1.0)), PutReply)  # still serving


def test_a_context_at_the_counter_limit_cannot_overflow_the_next_dot() -> None:
    node = single()
    context = encode_context(VectorClock({"A#1": MAX_CONTEXT_COUNTER}))
    assert isinstance(result(node.put("r1", "k", b"v", context, 1.0)), PutReply)
    state = node.state_of("k")
    assert state is not None
    assert max(counter for _, counter in state.context.items()) < 2**63 - 1


def test_a_thousand_made_up_actors_are_refused_and_change_nothing() -> None:
    node = single()
    assert isinstance(result(node.put("r0", "k", b"first", None, 1.0)), PutReply)
    before = node.state_of("k")
    made_up = encode_context(VectorClock({f"x{i:04}": 1 for i in range(1000)}))
    for i in range(2):
        failed = result(node.put(f"r{i + 1}", "k", b"v", made_up, 2.0))
        assert isinstance(failed, RequestFailed)
        assert failed.code == "max_clock_entries"
        assert "fresh read" in failed.reason
    assert node.state_of("k") == before
    assert node.stats()["writes_refused"] == 2


# -- finding 2: sibling floods and huge values -------------------------------------------------


def test_blind_puts_stop_at_max_siblings_with_advice_and_a_restart_works() -> None:
    storage = MemoryStorage()
    node = single(storage)
    outcomes = [result(node.put(f"r{i}", "k", b"v%d" % i, None, 1.0)) for i in range(1030)]
    assert all(isinstance(o, PutReply) for o in outcomes[:100])
    refused = outcomes[100:]
    assert all(isinstance(o, RequestFailed) and o.code == "max_siblings" for o in refused)
    assert "merge" in refused[0].reason
    assert "with the context" in refused[0].reason
    assert node.stats()["sibling_warnings"] == 75  # writes 26..100
    # The node restarts on the same storage and the key is readable.
    again = single(storage)
    got = result(again.get("g", "k", 2.0))
    assert isinstance(got, GetReply)
    assert len(got.values) == 100
    # What the client was told to do works: merge and write back with the context.
    merged = result(again.put("m", "k", b"merged", got.context, 3.0))
    assert isinstance(merged, PutReply)
    state = again.state_of("k")
    assert state is not None
    assert state.values == [b"merged"]


def test_values_over_the_cap_are_refused_before_anything_is_written() -> None:
    node = single()
    big = b"x" * (6 * 2**20 + 2**19)  # 6.5 MiB
    for i in range(2):
        failed = result(node.put(f"r{i}", "k", big, None, 1.0))
        assert isinstance(failed, RequestFailed)
        assert failed.code == "max_value_bytes"
    assert node.state_of("k") is None


def test_the_record_cap_counts_every_sibling() -> None:
    node = single(max_value_bytes=1000, max_record_bytes=5000)
    codes = [
        getattr(result(node.put(f"r{i}", "k", b"x" * 1000, None, 1.0)), "code", "ok")
        for i in range(5)
    ]
    assert codes == ["ok", "ok", "ok", "max_record_bytes", "max_record_bytes"]
    state = node.state_of("k")
    assert state is not None
    assert len(codec.dumps(state.to_dict())) <= 5000


def test_replication_is_not_refused_by_admission_limits() -> None:
    """Riak's rule: limits refuse client writes only; a replica merges what was admitted."""
    node, key = replica_of_three(
        config=NodeConfig(limits=Limits(max_siblings=2, siblings_warning=1))
    )
    state: DVVSet[bytes] = DVVSet()
    for i in range(5):
        state = state.update(b"v%d" % i, f"B#{i + 1}")
    out = node.receive("B", StoreRequest(1, key, state, None, 0), 1.0)
    assert any(isinstance(e, Send) and e.message.stored for e in out)  # type: ignore[union-attr]
    assert node.state_of(key) == state


def test_a_merge_over_the_storage_limits_is_never_stored() -> None:
    node, key = replica_of_three()
    state: DVVSet[bytes] = DVVSet()
    for i in range(STORED_MAX_SIBLINGS + 1):
        state = state.update(b"", f"B#{i + 1}")
    out = node.receive("B", StoreRequest(1, key, state, None, 0), 1.0)
    reply = next(e.message for e in out if isinstance(e, Send))
    assert not reply.stored  # type: ignore[union-attr]
    assert "siblings" in reply.reason  # type: ignore[union-attr]
    assert node.state_of(key) is None
    assert node.stats()["merges_refused"] == 1


# -- quarantine --------------------------------------------------------------------------------


def plant(storage: MemoryStorage, node: Node, key: bytes, raw: bytes) -> None:
    token = node.ring.token(key)
    storage.put(b"d/" + token.to_bytes(8, "big") + key, raw)


def test_a_corrupt_record_is_quarantined_kept_and_reported_once() -> None:
    storage = MemoryStorage()
    node = single(storage)
    result(node.put("r", "good", b"v", None, 1.0))
    plant(storage, node, b"bad", b'{"type":"dvvset","v":1,"entries":"nope"}')
    again = single(storage)  # starting is never refused by a record
    first = again.get("g1", "bad", 2.0)
    assert isinstance(result(first), GetReply)
    assert not result(first).found
    notes = [e for e in first if isinstance(e, Quarantined)]
    assert [n.key for n in notes] == [b"bad"]
    assert "corrupt replica record" in notes[0].reason
    second = again.get("g2", "bad", 3.0)
    assert not [e for e in second if isinstance(e, Quarantined)]  # once
    refused = result(again.put("p", "bad", b"new", None, 4.0))
    assert isinstance(refused, RequestFailed)
    assert refused.code == "quarantined"
    assert again.stats()["records_quarantined"] == 1
    assert again.quarantined() == [b"bad"]
    assert b"bad" in list(again.keys())  # never deleted, never overwritten
    with pytest.raises(StorageError, match="quarantined"):
        again.state_of("bad")
    assert isinstance(result(again.get("g3", "good", 5.0)), GetReply)


def test_repairs_never_overwrite_a_quarantined_record() -> None:
    storage = MemoryStorage()
    node, key = replica_of_three(storage)
    plant(storage, node, key, b"\xff not json")
    node, _ = replica_of_three(storage)
    state = DVVSet[bytes]().update(b"v", "B#1")
    out = node.receive("B", RepairPush(((key, state),)), 1.0)
    assert [e.key for e in out if isinstance(e, Quarantined)] == [key]
    assert node.stats()["merges_refused"] == 1
    assert storage.get(b"d/" + node.ring.token(key).to_bytes(8, "big") + key) == (b"\xff not json")


# -- storage full ------------------------------------------------------------------------------


def test_storage_full_refuses_writes_serves_reads_and_resumes() -> None:
    storage = FlakyStorage()
    node = single(storage)
    assert isinstance(result(node.put("r0", "k", b"v0", None, 1.0)), PutReply)
    storage.full = True
    failed = result(node.put("r1", "k", b"v1", None, 2.0))
    assert isinstance(failed, RequestFailed)
    assert failed.code == "storage_full"
    assert degraded(node)
    got = result(node.get("g", "k", 2.1))
    assert isinstance(got, GetReply)
    assert got.values == (b"v0",)
    # Refused at once while degraded, without touching the disk.
    assert result(node.put("r2", "k", b"v2", None, 2.2)).code == "storage_full"
    node.on_timer(2.5)
    storage.full = False
    pause = node.config.storage_full_pause
    node.on_timer(2.0 + pause)
    assert not degraded(node)
    assert isinstance(result(node.put("r3", "k", b"v3", None, 2.0 + pause)), PutReply)
    assert node.stats()["storage_full"] >= 1


def test_a_replica_on_a_full_disk_refuses_the_store_and_answers() -> None:
    storage = FlakyStorage()
    node, key = replica_of_three(storage)
    storage.full = True
    out = node.receive("B", StoreRequest(7, key, DVVSet[bytes]().update(b"v", "B#1"), None, 0), 1.0)
    reply = next(e.message for e in out if isinstance(e, Send))
    assert (reply.op, reply.stored, reply.reason) == (7, False, "storage full")  # type: ignore[union-attr]
    assert node.state_of(key) is None
    assert node.degraded


def test_corrupt_node_records_are_set_aside_and_the_node_starts() -> None:
    storage = MemoryStorage()
    ring = HashRing(3, partitions=8)
    ring.add_nodes(["A", "B", "C"])
    Node("A", ring, storage=storage, first_epoch=0)
    for key in (b"m/epoch", b"m/membership", b"m/served/" + bytes(16), b"m/stream/" + bytes(16)):
        storage.put(key, b"{not json")
    node = Node("A", ring, storage=storage, incarnation=1)
    notes = node.on_timer(0.0)
    moved = sorted(e.key for e in notes if isinstance(e, Quarantined))
    assert moved == [b"m/epoch", b"m/membership", b"m/served/" + bytes(16)]
    assert node.stats()["records_quarantined"] == 3
    assert all(storage.get(b"q/" + key) == b"{not json" for key in moved)
    assert node.epoch >= 2**40  # a fresh random epoch, as after a lost disk
    assert node.ring.nodes == ("A", "B", "C")  # the bootstrap ring; gossip brings newer ones
    node.put("p", "k", b"v", None, 1.0)
    assert node.stats()["puts_coordinated"] == 1  # serving
    again = Node("A", ring, storage=storage, incarnation=2)
    assert again.stats()["records_quarantined"] == 0  # moved aside once


def test_a_corrupt_hint_store_is_moved_aside_and_the_node_starts() -> None:
    storage = MemoryStorage()
    node, key = replica_of_three(storage)
    node.hints.add("B", key, DVVSet[bytes]().update(b"v", "A#1"), 0.0)
    storage.put(b"h/zz-not-a-hint-record", b"garbage")
    again, _ = replica_of_three(storage)  # used to fail: "not a hint store record"
    notes = again.on_timer(0.0)
    assert [e.key for e in notes if isinstance(e, Quarantined)] == [b"h/"]
    assert len(again.hints) == 0
    assert storage.get(b"q/h/zz-not-a-hint-record") == b"garbage"
    assert any(
        k.startswith(b"q/h/") and k != b"q/h/zz-not-a-hint-record" for k, _ in storage.scan()
    )

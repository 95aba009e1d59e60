"""Ring versions are validated before adoption, whoever sends them (finding 3)."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo_core import HashRing, MemoryStorage, Node, codec
from dynamo_core.errors import DecodeError
from dynamo_core.limits import MAX_MEMBERS, version_refusal
from dynamo_core.membership import Change, GossipUpdate, VersionRecord
from dynamo_core.messages import decode_message, encode_message
from dynamo_core.node import VersionRefused
from dynamo_core.ring import MAX_DECODED_TOKENS

IDS = ("A", "B", "C")


def three() -> tuple[HashRing, Node]:
    ring = HashRing(3, partitions=16)
    ring.add_nodes(IDS)
    return ring, Node("A", ring, storage=MemoryStorage())


def forged(nodes: list[str], epoch: int, applied: frozenset[str] = frozenset()) -> GossipUpdate:
    ring = HashRing(3, partitions=16)
    ring.add_nodes(nodes)
    record = VersionRecord(epoch, ring, applied=applied)
    return GossipUpdate(record, epoch, ring.fingerprint, (), ())


def test_a_huge_strategy_1_ring_is_refused_before_it_is_built() -> None:
    """400 nodes x 4,096 vnodes (12 KB on the wire) used to cost ~10 s and ~600 MB."""
    small = HashRing(3, vnodes=4096)
    small.add_nodes(IDS)
    update = GossipUpdate(VersionRecord(1, small), 1, small.fingerprint, (), ())
    data: Any = update.to_dict()
    ring = data["record"]["ring"]
    ring["nodes"] = [{"id": f"n{i:03}", "weight": 1.0} for i in range(400)]
    payload = codec.dumps(data)
    assert len(payload) < 20_000
    with pytest.raises(DecodeError, match=f"the limit is {MAX_DECODED_TOKENS}"):
        decode_message(payload)
    ring["nodes"] = [{"id": f"n{i:04}", "weight": 1.0} for i in range(1600)]
    with pytest.raises(DecodeError, match="tokens in all"):
        HashRing.from_dict(ring)


def test_a_forged_version_of_strangers_at_epoch_2_62_is_refused_once_and_counted() -> None:
    ring, node = three()
    update = forged(["X", "Y", "Z"], 2**62)
    assert decode_message(encode_message(update)) == update  # well-formed on the wire
    first = node.receive("B", update, 1.0)
    notes = [e for e in first if isinstance(e, VersionRefused)]
    assert len(notes) == 1
    assert notes[0].sender == "B"
    assert "neither members nor joining" in notes[0].reason
    again = node.receive("C", update, 2.0)
    assert not [e for e in again if isinstance(e, VersionRefused)]  # reported once
    assert node.stats()["versions_refused"] == 2  # counted every time
    assert node.ring_version.epoch == 0
    assert node.ring.nodes == ring.nodes
    assert node.replicas("k") == ring.preference_list("k")  # still serving with its ring


def test_an_epoch_no_claimant_could_mint_is_refused_even_with_known_members() -> None:
    _, node = three()
    out = node.receive("B", forged(list(IDS), 2**62, frozenset({"B/0/1"})), 1.0)
    (note,) = [e for e in out if isinstance(e, VersionRefused)]
    assert "applies only 1 new changes" in note.reason
    assert node.ring_version.epoch == 0


def test_version_refusal_rules() -> None:
    ring = HashRing(3, partitions=16)
    ring.add_nodes(IDS)
    current = VersionRecord(0, ring)
    bigger = HashRing(3, partitions=16)
    bigger.add_nodes([*IDS, "D"])
    joined = VersionRecord(1, bigger, applied=frozenset({"A/0/1"}))
    assert version_refusal(joined, current, {*IDS, "D"}, outside=False) is None
    assert "neither members" in str(version_refusal(joined, current, set(IDS), outside=False))
    # A node outside learns members from gossip; the epoch rule still holds.
    assert version_refusal(joined, current, set(), outside=True) is None
    far = VersionRecord(5, bigger, applied=frozenset({"A/0/1"}))
    assert "5 versions ahead" in str(version_refusal(far, current, {*IDS, "D"}, outside=True))
    crowd = HashRing(3, partitions=2048)
    crowd.add_nodes([f"n{i:04}" for i in range(MAX_MEMBERS + 1)])
    many = VersionRecord(1, crowd, applied=frozenset({"x"}))
    assert "the limit is 1024" in str(version_refusal(many, current, set(), outside=True))


def test_a_genuine_join_is_still_adopted() -> None:
    ring, node = three()
    bigger = ring.copy()
    bigger.add_node("D")
    change = Change("B/0/1", "join", "D", None, 1.0)
    record = VersionRecord(
        1, bigger, ring, tuple(ring.transfers_to(bigger)), frozenset({change.id})
    )
    update = GossipUpdate(record, 1, bigger.fingerprint, (), (change,))
    out = node.receive("B", update, 1.0)
    assert not [e for e in out if isinstance(e, VersionRefused)]
    assert node.ring_version.epoch == 1
    assert "D" in node.ring.nodes

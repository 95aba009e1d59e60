"""Every decoder, fed arbitrary JSON, succeeds or raises DecodeError and nothing else.

When a module adds a decoder (a ``from_dict``), add it to ``DECODERS`` here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.aio import auth as aio_auth
from dynamo_core.aio import protocol as aio_protocol
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TokenRange
from dynamo_core.hints import Hint, HintBatch
from dynamo_core.membership import (
    Change,
    GossipDigest,
    GossipUpdate,
    Membership,
    VersionRecord,
)
from dynamo_core.merkle import (
    GetItems,
    GetNodes,
    Hello,
    Items,
    MerkleTree,
    Nodes,
    item_digest,
    message_from_dict,
)
from dynamo_core.messages import (
    ExchangeMessage,
    FetchReply,
    FetchRequest,
    Forward,
    ForwardReply,
    GetReply,
    Heartbeat,
    HintAck,
    PutReply,
    ReadRepair,
    RepairPull,
    RepairPush,
    RequestFailed,
    StoreReply,
    StoreRequest,
    SyncDiff,
    SyncOffer,
    result_from_dict,
)
from dynamo_core.messages import Message as NodeMessage
from dynamo_core.messages import message_from_dict as node_message_from_dict
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.ring import HashRing, Transfer
from dynamo_core.streaming import StreamBatch, StreamPull
from dynamo_core.testing import DotSet
from dynamo_core.vclock import VectorClock, Versioned

# (name, decoder, a valid encoded example used to build near-miss inputs)


def _example_ring(*, partitions: int | None = None, vnodes: int | None = None) -> HashRing:
    ring = HashRing(2, partitions=partitions, vnodes=vnodes)
    ring.add_node("a")
    ring.add_node("b", weight=2.0, zone="z1")
    ring.add_node("c", zone="z2")
    return ring


_NODE_STATE = DVVSet[bytes]().update(b"x", "n1#1").update(b"y", "n2#1")


def _example_version() -> VersionRecord:
    before = _example_ring(partitions=16)
    state = Membership("a", VersionRecord(4, before))
    state.request(Change("a/1/1", "join", "d", "z1", 2.0))
    record = state.mint()
    assert record is not None and record.plan
    state.complete_many([(0, record.plan[0].source)])
    return state.record


_VERSION = _example_version()
_MEMBERSHIP = Membership("b", _VERSION, changes=[Change("a/1/1", "join", "d", "z1", 2.0)])

DECODERS: list[tuple[str, Callable[[object], object], codec.JSONValue]] = [
    ("TokenRange", TokenRange.from_dict, TokenRange(5, 2**64).to_dict()),
    ("HashRing partitions", HashRing.from_dict, _example_ring(partitions=16).to_dict()),
    ("HashRing vnodes", HashRing.from_dict, _example_ring(vnodes=3).to_dict()),
    ("HashRing empty", HashRing.from_dict, HashRing(partitions=8).to_dict()),
    ("Transfer", Transfer.from_dict, Transfer(TokenRange(9, 3), "a", "b").to_dict()),
    (
        "MerkleTree",
        MerkleTree.from_dict,
        MerkleTree.from_items([(b"a", item_digest(b"a", b"1"))], 4, start=7, end=3).to_dict(),
    ),
    ("merkle Hello", message_from_dict, Hello(4, 0, 2**64, 9, bytes(16), 2).to_dict()),
    ("merkle GetNodes", message_from_dict, GetNodes(4, (0, 2), 2).to_dict()),
    ("merkle Nodes", message_from_dict, Nodes(2, bytes(32)).to_dict()),
    ("merkle GetItems", message_from_dict, GetItems((1, 3)).to_dict()),
    ("merkle Items", message_from_dict, Items((b"a", b"b"), bytes(32)).to_dict()),
    ("VectorClock", VectorClock.from_dict, VectorClock({"a": 2, "b": 1}).increment("c").to_dict()),
    ("Versioned", Versioned.from_dict, Versioned(b"v", VectorClock({"a": 1})).to_dict()),
    (
        "DVVSet",
        DVVSet.from_dict,
        DVVSet[bytes]().update(b"x", "a").update(b"y", "b").update(b"z", "a").to_dict(),
    ),
    (
        "QuorumPolicy",
        QuorumPolicy.from_dict,
        QuorumPolicy(5, 2, 4, sloppy=False, notfound_ok=False).to_dict(),
    ),
    ("DotSet", DotSet.from_dict, DotSet.of(("a", 1), ("b", 3)).to_dict()),
    ("Hint", Hint.from_dict, Hint("b", "k", DVVSet[bytes]().update(b"x", "a"), 1.5).to_dict()),
    (
        "HintBatch",
        HintBatch.from_dict,
        HintBatch(
            7,
            (
                Hint("b", b"\x00k", DVVSet[bytes]().update(b"x", "a"), 1.0),
                Hint("b", "k", DVVSet[bytes](), 2.0),
            ),
        ).to_dict(),
    ),
    *(
        (f"node {type(message).__name__} #{i}", node_message_from_dict, message.to_dict())
        for i, message in enumerate(
            (
                cast("NodeMessage", Heartbeat(3, 17)),
                StoreRequest(9, b"cart", _NODE_STATE, "n2"),
                StoreReply(9, False, "hint dropped"),
                FetchRequest(10, b"\x00k", None),
                FetchReply(10, _NODE_STATE),
                FetchReply(11),
                ReadRepair(b"cart", _NODE_STATE),
                Forward(4, "put", b"cart", b"{}", b"ctx"),
                Forward(5, "get", b"cart"),
                ForwardReply(4, PutReply(("n1", "n2"), (("n4", "n3"),))),
                HintAck(8),
                SyncOffer(6, ((TokenRange(0, 2**60), bytes(16)), (TokenRange(2**63, 5), None))),
                SyncDiff(6, (TokenRange(0, 2**60),)),
                ExchangeMessage(7, TokenRange(0, 2**60), "responder", GetNodes(4, (0, 2), 2)),
                RepairPush(((b"a", _NODE_STATE), (b"b", DVVSet[bytes]()))),
                RepairPull((b"a", b"b")),
            )
        )
    ),
    ("Change join", Change.from_dict, Change("n1/0/1", "join", "n6", "z1", 2.0).to_dict()),
    ("Change leave", Change.from_dict, Change("n1/0/2", "leave", "n6").to_dict()),
    ("VersionRecord", VersionRecord.from_dict, _VERSION.to_dict()),
    ("Membership", Membership.from_dict, _MEMBERSHIP.to_dict()),
    *(
        (f"node {type(message).__name__} #{i}", node_message_from_dict, message.to_dict())
        for i, message in enumerate(
            (
                cast("NodeMessage", GossipDigest(5, "ab" * 8, False, (0, 3), "cd" * 8, True)),
                GossipUpdate(_VERSION, 5, _VERSION.ring.fingerprint, ((0, "a"),), ()),
                GossipUpdate(None, 5, "ab" * 8, (), (Change("x/1/1", "leave", "a"),)),
                StreamPull(5, 1, 77, TokenRange(2**63, 9), b"\x00" * 8 + b"key", 4096),
                StreamPull(5, 1, 78, TokenRange(0, 2**64), None, 1),
                StreamBatch(5, 1, 77, "ok", ((b"k", _NODE_STATE),), b"\x01" * 9, True, 3, 40),
                StreamBatch(5, 1, 78, "not_yet"),
            )
        )
    ),
    *(
        (f"node {type(result).__name__}", result_from_dict, result.to_dict())
        for result in (
            PutReply(("n1",), (("n4", "n3"),)),
            GetReply((b"x", b"y"), b"{}", True),
            RequestFailed("too few replicas", 2, ("n1",)),
        )
    ),
    ("aio Hello", aio_auth.Hello.from_dict, aio_auth.Hello("node", "n1", bytes(32)).to_dict()),
    (
        "aio Hello client",
        aio_auth.Hello.from_dict,
        aio_auth.Hello("client", None, bytes(32)).to_dict(),
    ),
    (
        "aio Challenge",
        aio_auth.Challenge.from_dict,
        aio_auth.Challenge("n2", bytes(32)).to_dict(),
    ),
    ("aio Proof", aio_auth.Proof.from_dict, aio_auth.Proof(b"").to_dict()),
    ("aio Proof full", aio_auth.Proof.from_dict, aio_auth.Proof(bytes(32)).to_dict()),
    *(
        (f"aio {type(request).__name__} #{i}", aio_protocol.request_from_dict, request.to_dict())
        for i, request in enumerate(
            (
                cast("aio_protocol.ClientRequest", aio_protocol.ClientPut(1, b"k", b"{}", b"c")),
                aio_protocol.ClientPut(2, b"cart", b"{}", None),
                aio_protocol.ClientGet(3, b"cart"),
                aio_protocol.ClientStats(4),
            )
        )
    ),
    *(
        (f"aio {type(response).__name__} #{i}", aio_protocol.response_from_dict, response.to_dict())
        for i, response in enumerate(
            (
                cast(
                    "aio_protocol.RequestResponse",
                    aio_protocol.ClientResponse(1, PutReply(("n1",), ())),
                ),
                aio_protocol.ClientResponse(2, RequestFailed("down", 2, ("n1",))),
                aio_protocol.StatsReply.of(3, "n1", {"puts": 2, "gets": 0}),
            )
        )
    ),
]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _mutations(example: codec.JSONValue) -> st.SearchStrategy[object]:
    """Inputs close to a valid one: one field replaced, removed or added."""
    if not isinstance(example, dict) or not example:
        return json_values
    names = sorted(example)

    def replace(name: str, value: object) -> object:
        return {**example, name: value}

    def drop(name: str) -> object:
        return {k: v for k, v in example.items() if k != name}

    return st.one_of(
        st.builds(replace, st.sampled_from(names), json_values),
        st.builds(drop, st.sampled_from(names)),
        st.builds(replace, st.text(max_size=8), json_values),
    )


def _accepts_or_decode_error(decoder: Callable[[object], object], data: object) -> None:
    with contextlib.suppress(DecodeError):
        decoder(data)


@pytest.mark.parametrize(("name", "decoder", "example"), DECODERS, ids=[d[0] for d in DECODERS])
def test_decoder_round_trips_its_example(
    name: str, decoder: Callable[[object], object], example: codec.JSONValue
) -> None:
    decoded = decoder(example)
    assert decoded.to_dict() == example  # type: ignore[attr-defined]
    # and through the bytes codec too
    assert decoder(codec.loads(codec.dumps(example))) == decoded


@pytest.mark.parametrize(("name", "decoder", "example"), DECODERS, ids=[d[0] for d in DECODERS])
@given(data=st.data())
def test_decoder_accepts_nothing_but_success_or_decode_error(
    name: str, decoder: Callable[[object], object], example: codec.JSONValue, data: st.DataObject
) -> None:
    value = data.draw(json_values | _mutations(example))
    _accepts_or_decode_error(decoder, value)

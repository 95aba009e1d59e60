"""Node messages and request results: round trips, validation, the dispatcher."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import DVVSet, TokenRange, codec
from dynamo_core.errors import DecodeError
from dynamo_core.hints import HintBatch
from dynamo_core.merkle import Close, Hello, UseDepth
from dynamo_core.messages import (
    MAX_REPAIR_KEYS,
    MESSAGE_TYPES,
    ExchangeMessage,
    Forward,
    ForwardReply,
    GetReply,
    Heartbeat,
    Message,
    PutReply,
    RepairPull,
    RepairPush,
    RequestFailed,
    RequestResult,
    StoreRequest,
    SyncOffer,
    decode_message,
    encode_message,
    message_from_dict,
    result_from_dict,
)
from dynamo_core.strategies import node_messages, request_results


@given(node_messages())
def test_every_message_round_trips_through_dicts_and_bytes(message: Message) -> None:
    data = message.to_dict()
    assert message_from_dict(data) == message
    encoded = encode_message(message)
    assert decode_message(encoded) == message
    assert encode_message(decode_message(encoded)) == encoded  # canonical


def test_an_exchange_message_carries_the_depth_answer() -> None:
    message = ExchangeMessage(7, TokenRange(0, 5), "initiator", UseDepth(9))
    assert decode_message(encode_message(message)) == message


@given(request_results())
def test_every_result_round_trips(result: RequestResult) -> None:
    assert result_from_dict(result.to_dict()) == result
    assert result.ok == isinstance(result, PutReply | GetReply)


def test_the_dispatcher_names_what_it_cannot_decode() -> None:
    with pytest.raises(DecodeError, match="not a node message type: 'merkle_hello'"):
        message_from_dict(Hello(0, 0, 2**64, 1, bytes(16), 0).to_dict())
    with pytest.raises(DecodeError, match="must be an object"):
        message_from_dict([1, 2])
    with pytest.raises(DecodeError, match="not a request result type"):
        result_from_dict(Heartbeat(1, 2).to_dict())
    with pytest.raises(TypeError, match="node message"):
        encode_message("hello")  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        decode_message(b"{not json")


def test_constructors_reject_bad_fields() -> None:
    state = DVVSet[bytes]().update(b"v", "a#1")
    with pytest.raises(TypeError, match="key"):
        StoreRequest(1, "k", state)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="op"):
        StoreRequest(-1, b"k", state)
    with pytest.raises(TypeError, match="state"):
        StoreRequest(1, b"k", b"state")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        StoreRequest(1, b"x" * 70_000, state)
    with pytest.raises(ValueError, match="value must be given for a put"):
        Forward(1, "put", b"k")
    with pytest.raises(ValueError, match="value must be given for a put"):
        Forward(1, "get", b"k", b"v")
    with pytest.raises(ValueError, match="context is for puts"):
        Forward(1, "get", b"k", None, b"ctx")
    with pytest.raises(ValueError, match="kind"):
        Forward(1, "delete", b"k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="request result"):
        ForwardReply(1, "ok")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="root"):
        SyncOffer(1, ((TokenRange(0, 5), b"short"),))
    with pytest.raises(ValueError, match="to"):
        ExchangeMessage(1, TokenRange(0, 5), "both", Close())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Merkle"):
        ExchangeMessage(1, TokenRange(0, 5), "initiator", Heartbeat(1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):
        RepairPull(tuple(b"k%d" % i for i in range(MAX_REPAIR_KEYS + 1)))
    with pytest.raises(TypeError, match="pair"):
        RepairPush(((b"k",),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="characters"):
        RequestFailed("x" * 2000)


def test_decoders_reject_a_bad_field_with_a_decode_error() -> None:
    good = Forward(3, "put", b"k", b"v", None).to_dict()
    for field, bad in (("kind", "delete"), ("fwd", -1), ("value", None), ("key", 12)):
        data = dict(good)
        data[field] = bad
        with pytest.raises(DecodeError):
            message_from_dict(data)
    offer = SyncOffer(1, ((TokenRange(0, 8), None),)).to_dict()
    offer["roots"] = [[0, 8, codec.encode_bytes(b"short")]]
    with pytest.raises(DecodeError, match="16 bytes"):
        message_from_dict(offer)


@pytest.mark.parametrize(
    "kind",
    # HintBatch belongs to dynamo_core.hints; every other message type is registered here.
    [*(t for t in MESSAGE_TYPES if t is not HintBatch), PutReply, GetReply, RequestFailed],
)
def test_every_message_type_is_registered_for_from_type(kind: type) -> None:
    @given(st.from_type(kind))
    def check(value: object) -> None:
        assert type(value) is kind

    check()

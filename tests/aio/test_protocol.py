from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.aio.protocol import (
    ClientGet,
    ClientPut,
    ClientResponse,
    ClientStats,
    StatsReply,
    request_from_dict,
    response_from_dict,
)
from dynamo_core.errors import DecodeError
from dynamo_core.messages import GetReply, PutReply, RequestFailed

RIDS = st.integers(min_value=0, max_value=2**63 - 1)


@given(RIDS, st.binary(max_size=50), st.binary(max_size=50), st.none() | st.binary(max_size=50))
def test_requests_round_trip_through_bytes(
    rid: int, key: bytes, value: bytes, context: bytes | None
) -> None:
    for request in (ClientPut(rid, key, value, context), ClientGet(rid, key), ClientStats(rid)):
        assert request_from_dict(codec.loads(codec.dumps(request.to_dict()))) == request


@pytest.mark.parametrize(
    "result",
    [
        PutReply(("A", "B"), (("D", "C"),)),
        GetReply((b"x", b"y"), b"ctx"),
        RequestFailed("2 of 3 needed", 2, ("A",)),
    ],
)
def test_responses_round_trip(result: PutReply | GetReply | RequestFailed) -> None:
    response = ClientResponse(7, result)
    assert response_from_dict(codec.loads(codec.dumps(response.to_dict()))) == response


def test_stats_reply_round_trips_and_is_sorted() -> None:
    reply = StatsReply.of(3, "A", {"b": 2, "a": 1})
    assert reply.counters == (("a", 1), ("b", 2))
    assert reply.as_dict() == {"a": 1, "b": 2}
    assert StatsReply.from_dict(reply.to_dict()) == reply
    with pytest.raises(ValueError, match="sorted"):
        StatsReply(3, "A", (("b", 1), ("a", 2)))
    with pytest.raises(ValueError, match="count >= 0"):
        StatsReply(3, "A", (("a", -1),))


def test_bad_values_are_refused() -> None:
    with pytest.raises(TypeError, match="key must be bytes"):
        ClientGet(1, "k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rid"):
        ClientStats(-1)
    with pytest.raises(TypeError, match="result"):
        ClientResponse(1, "ok")  # type: ignore[arg-type]


def test_dispatch_refuses_unknown_types_and_node_messages() -> None:
    with pytest.raises(DecodeError, match="not a client request type: 'node_heartbeat'"):
        request_from_dict({"type": "node_heartbeat", "v": 1, "generation": 1, "seq": 1})
    with pytest.raises(DecodeError, match="not a client response type"):
        response_from_dict({"type": "client_get", "v": 1, "rid": 1, "key": ""})
    with pytest.raises(DecodeError, match="must be an object"):
        request_from_dict([1, 2])

"""Decoders refuse lone surrogates, so a decoded string never fails later (finding 8)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import DVVSet, HashRing, VectorClock, codec
from dynamo_core._check import check_node_id, check_text
from dynamo_core.errors import DecodeError
from dynamo_core.membership import Change

LONE = st.sampled_from(["\ud800", "\udfff", "\udc80"])


@given(st.text(max_size=20), LONE, st.text(max_size=20))
def test_as_str_refuses_every_string_with_a_lone_surrogate(head: str, lone: str, tail: str) -> None:
    text = head + lone + tail
    with pytest.raises(DecodeError, match="lone surrogate"):
        codec.as_str(text, "field", max_len=100)
    with pytest.raises(ValueError, match="field holds a lone surrogate"):
        check_text(text, "field")


@given(st.text(max_size=40))
def test_as_str_accepts_every_encodable_string(text: str) -> None:
    # hypothesis's text() never holds lone surrogates: all of it is valid UTF-8.
    assert codec.as_str(text, "field", max_len=100, min_len=0) == text
    assert check_text(text, "field") == text


def test_ring_from_dict_refuses_a_surrogate_node_id_with_decode_error() -> None:
    ring = HashRing(1, partitions=8)
    ring.add_node("a")
    data: Any = ring.to_dict()
    data["nodes"][0]["id"] = "\ud800"
    with pytest.raises(DecodeError, match=r"hash_ring.nodes\[0\].id holds a lone surrogate"):
        HashRing.from_dict(data)
    with pytest.raises(ValueError, match="lone surrogate"):
        ring.add_node("\ud800")


def test_dvvset_and_clock_decoders_refuse_surrogates() -> None:
    state: Any = DVVSet[bytes]().update(b"v", "a").to_dict()
    state["entries"][0][0] = "\udfff"
    with pytest.raises(DecodeError, match="lone surrogate"):
        DVVSet.from_dict(state)
    clock = VectorClock({"a": 1}).to_dict()
    clock["nodes"] = ["\ud800"]
    with pytest.raises(DecodeError, match="lone surrogate"):
        VectorClock.from_dict(clock)
    # The same in JSON text, as it arrives from a socket.
    text = codec.dumps(VectorClock({"a": 1}).to_dict()).replace(b'"a"', b'"\\ud800"')
    with pytest.raises(DecodeError, match="lone surrogate"):
        VectorClock.from_dict(codec.loads(text))


def test_node_ids_and_changes_refuse_surrogates() -> None:
    with pytest.raises(ValueError, match="node holds a lone surrogate"):
        check_node_id("ok\ud800")
    with pytest.raises(ValueError, match="lone surrogate"):
        Change("c/0/1", "join", "\ud800", None, 1.0)

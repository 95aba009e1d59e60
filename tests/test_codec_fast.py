"""The fast decoders accept exactly what the field-by-field decoders accept, and build the same.

The request path decodes `StoreRequest`, `StoreReply`, `FetchRequest`, `FetchReply`, `DVVSet` and
`VectorClock` with one-pass fast paths that hand anything unusual to the checked decoders (which
name the bad field). Here valid encodings are mutated at a random place — a hostile value, a
missing or an extra field, an item dropped or added — and both decoders must agree: the same
value, or both refuse.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo_core import DVVSet, VectorClock, codec
from dynamo_core.dvv import _decode_quickly, _decode_slowly
from dynamo_core.errors import DecodeError
from dynamo_core.messages import (
    _READERS,
    FetchReply,
    FetchRequest,
    StoreReply,
    StoreRequest,
    decode_message,
    encode_message,
    message_from_dict,
)
from dynamo_core.node.contexts import encode_context, encode_state_context
from dynamo_core.strategies import dvv_sets, node_ids, vector_clocks
from dynamo_core.vclock import _decode_slowly as decode_clock_slowly

HOSTILE: list[object] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**63 - 1,
    2**63,
    1.5,
    float("1e308"),
    "",
    "a",
    "node-z",
    "é",
    "\ud800",
    "x" * 256,
    "QQ==",
    "QUJD",
    "QQ",
    "Q===",
    "not base64!",
    "node_store",
    "dvvset",
    [],
    [1],
    ["a", 1, []],
    {},
    {"type": "dvvset", "v": 1, "entries": []},
]


def _paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if type(value) is dict:
        for key in sorted(value):
            out += _paths(value[key], (*prefix, key))
    elif type(value) is list:
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


INT_EDGES: list[object] = [0, 1, -1, 2**63 - 1, 2**63, True, 1.0, None, "1"]
STR_EDGES: list[object] = ["", "é", "\ud800", "x" * 256, "QQ", "Q===", "QQ==", "!", None, 1, []]


# Copies: a later mutation may change a drawn list or dict in place.
_hostile = st.sampled_from(HOSTILE).map(copy.deepcopy)


def _near(old: object) -> st.SearchStrategy[object]:
    """Values at the edges of the checks a field of this type meets, and past them."""
    if type(old) is int:
        return st.sampled_from([old - 1, old + 1, *INT_EDGES]).map(copy.deepcopy)
    if type(old) is str:
        return st.sampled_from([old + "a", old + "=", old[:-1], old + "é", *STR_EDGES]).map(
            copy.deepcopy
        )
    return _hostile


@st.composite
def mutated(draw: st.DrawFn, encoded: object) -> object:
    """`encoded` (a JSON value) changed at one or two places, or unchanged."""
    value = copy.deepcopy(encoded)
    for _ in range(draw(st.integers(0, 2))):
        paths = _paths(value)
        path = draw(st.sampled_from(paths))
        if not path:
            value = draw(_hostile)
            continue
        parent: Any = value
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[last] = draw(_near(parent[last]))
        elif action == "delete":
            del parent[last]
        elif type(parent) is dict:
            name = draw(st.sampled_from(["extra", "epoch", "hint", "state", "type", "v"]))
            parent[name] = draw(_hostile)
        else:
            parent.insert(last, draw(_hostile))
    return value


def _outcome(decode: Callable[[Any], object], data: Any) -> object:
    try:
        return ("ok", decode(data))
    except DecodeError:
        return ("refused",)


small_states = dvv_sets(max_siblings=3)


def _messages() -> st.SearchStrategy[Any]:
    keys = st.binary(max_size=12)
    ops = st.integers(0, 2**63 - 1)
    hints = st.none() | node_ids()
    return st.one_of(
        st.builds(StoreRequest, ops, keys, small_states, hints, ops),
        st.builds(StoreReply, ops, st.booleans(), st.text(max_size=8)),
        st.builds(FetchRequest, ops, keys, hints),
        st.builds(FetchReply, ops, st.none() | small_states),
    )


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.data(), _messages())
def test_message_fast_path_agrees_with_the_checked_decoder(
    data: st.DataObject, message: Any
) -> None:
    encoded = codec.loads(codec.dumps(message.to_dict()))
    assert type(message).from_dict(encoded) == message
    quick = type(message)._decode_quickly(encoded)
    if codec.dumps(encoded).isascii():  # the fast path takes what we write (non-ASCII: slow)
        assert quick == message
    else:
        assert quick in (None, message)
    hostile = data.draw(mutated(encoded))
    fast = _outcome(type(message).from_dict, hostile)
    assert fast == _outcome(type(message)._decode_checked, hostile)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(
    st.data(),
    small_states,
    st.integers(0, 4),
    st.integers(0, 5),
    st.integers(0, 4),
)
def test_dvvset_fast_path_agrees_with_the_checked_decoder(
    data: st.DataObject, state: DVVSet[bytes], max_entries: int, max_values: int, max_bytes: int
) -> None:
    encoded = codec.loads(codec.dumps(state.to_dict()))
    assert DVVSet.from_dict(encoded) == state
    hostile = data.draw(mutated(encoded))
    caps = (max_entries, max_values, max_bytes)
    try:
        slow: object = ("ok", _decode_slowly(hostile, *caps))
    except DecodeError:
        slow = ("refused",)
    fast = _decode_quickly(hostile, *caps)
    # the fast path refuses nothing itself: it accepts what the slow one builds, or defers
    assert fast is None or slow == ("ok", fast)
    whole = _outcome(
        lambda d: DVVSet.from_dict(
            d, max_entries=max_entries, max_values=max_values, max_value_bytes=max_bytes
        ),
        hostile,
    )
    assert (whole == ("refused",)) == (slow == ("refused",))


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.data(), vector_clocks(), st.integers(0, 6))
def test_clock_fast_path_agrees_with_the_checked_decoder(
    data: st.DataObject, clock: VectorClock, max_entries: int
) -> None:
    encoded = codec.loads(codec.dumps(clock.to_dict()))
    assert VectorClock.from_dict(encoded) == clock
    hostile = data.draw(mutated(encoded))
    fast = _outcome(lambda d: VectorClock.from_dict(d, max_entries=max_entries), hostile)
    assert fast == _outcome(lambda d: decode_clock_slowly(d, max_entries), hostile)


@pytest.mark.parametrize(
    "text",
    ["", "QQ==", "QUJD", "QUJDRA==", "QQ", "Q===", "QQ=A", "=QQ=", "QUJD=", "QQ==\n", "QQ ==", "é"],
)
def test_strict_base64_refuses_what_b64decode_validate_refuses(text: str) -> None:
    import base64
    import binascii

    try:
        expected: object = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        expected = None
    try:
        got: object = codec.as_bytes(text, "f", max_len=100)
    except DecodeError:
        got = None
    assert got == expected


def _single_edits(encoded: object) -> list[object]:
    """Every encoding one edit away from `encoded`: each place replaced by each edge value of
    its type and by each hostile value, deleted, or given a neighbour."""
    out: list[object] = []
    for path in _paths(encoded):
        if not path:
            out += copy.deepcopy(HOSTILE)
            continue
        parent: Any = encoded
        for step in path[:-1]:
            parent = parent[step]
        old = parent[path[-1]]
        if type(old) is int:
            near: list[object] = [old - 1, old + 1, *INT_EDGES]
        elif type(old) is str:
            near = [old + "a", old + "=", old[:-1], old + "é", *STR_EDGES]
        else:
            near = []
        for new in [*near, *HOSTILE, "delete", "insert"]:
            edited = copy.deepcopy(encoded)
            target: Any = edited
            for step in path[:-1]:
                target = target[step]
            if new == "delete":
                del target[path[-1]]
            elif new == "insert":
                if type(target) is list:
                    target.insert(path[-1], copy.deepcopy(target[path[-1]]))
                else:
                    target["extra"] = 1
            else:
                target[path[-1]] = copy.deepcopy(new)
            out.append(edited)
    return out


def _sample_state() -> DVVSet[bytes]:
    state: DVVSet[bytes] = DVVSet()
    state = state.update(b"one", "node-a#1").update(b"two", "node-b#1", state.context)
    return state.update(b"three", "node-a#1")  # concurrent with "two": two siblings


@pytest.mark.parametrize(
    "message",
    [
        StoreRequest(7, b"cart:1", _sample_state(), "node-c", 4),
        StoreRequest(2**63 - 1, b"", _sample_state(), None, 0),
        StoreReply(7, False, "overloaded"),
        FetchRequest(8, b"cart:1", "node-c"),
        FetchReply(8, _sample_state()),
        FetchReply(0, None),
    ],
    ids=repr,
)
def test_every_single_edit_of_a_message_is_decided_alike(message: Any) -> None:
    cls = type(message)
    for edited in _single_edits(message.to_dict()):
        assert _outcome(cls.from_dict, edited) == _outcome(cls._decode_checked, edited), edited


@pytest.mark.parametrize(
    ("max_entries", "max_values", "max_bytes"), [(2, 2, 5), (3, 3, 6), (1, 1, 4)]
)
def test_every_single_edit_of_a_state_is_decided_alike(
    max_entries: int, max_values: int, max_bytes: int
) -> None:
    caps = (max_entries, max_values, max_bytes)
    for edited in _single_edits(_sample_state().to_dict()):
        try:
            slow: object = ("ok", _decode_slowly(edited, *caps))
        except DecodeError:
            slow = ("refused",)
        fast = _decode_quickly(edited, *caps)
        assert fast is None or slow == ("ok", fast), edited


def test_every_single_edit_of_a_clock_is_decided_alike() -> None:
    clock = VectorClock({"a": 3, "b": 1}, timestamps={"a": 5.0, "b": 0.5})
    for max_entries in (1, 2, 3):
        fast = functools.partial(VectorClock.from_dict, max_entries=max_entries)
        slow = functools.partial(decode_clock_slowly, max_entries=max_entries)
        for edited in _single_edits(clock.to_dict()):
            assert _outcome(fast, edited) == _outcome(slow, edited)


# -- the request path's wire form: written and read directly -----------------------------------


def _checked_bytes(data: bytes) -> object:
    """What `decode_message` decides through `codec.loads` and the dict decoders alone."""
    return message_from_dict(codec.loads(data))


def _read_directly(data: bytes) -> object:
    text = data.decode("utf-8")
    read = _READERS.get(text.rpartition('"type":"')[2])
    return None if read is None else read(text)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.data(), _messages())
def test_request_path_bytes_are_the_canonical_encoding_and_read_back(
    data: st.DataObject, message: Any
) -> None:
    encoded = encode_message(message)
    assert encoded == codec.dumps(message.to_dict())
    assert decode_message(encoded) == message
    if encoded.isascii() and b"\\" not in encoded:  # no escapes: the direct reader takes it
        assert _read_directly(encoded) == message
    hostile = data.draw(mutated(message.to_dict()))
    try:
        edited = codec.dumps(hostile)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a lone surrogate or a value JSON cannot hold
        return
    assert _outcome(decode_message, edited) == _outcome(_checked_bytes, edited)


_BYTE_EDITS: list[str] = ['"', "\\", "0", "1", "9", "-", ",", ":", "[", "]", "{", "}", " ", "a"]
_BYTE_EDITS += ["=", "é", "\x00", "\x7f", "null", "true", "1.0", "1e2", '"x":1,']


def _text_edits(text: str) -> list[str]:
    """`text` with one character deleted, replaced or preceded by each of `_BYTE_EDITS`."""
    out = []
    for i in range(len(text) + 1):
        out.append(text[:i] + text[i + 1 :])
        for new in _BYTE_EDITS:
            out.append(text[:i] + new + text[i + 1 :])
            out.append(text[:i] + new + text[i:])
    return out


@pytest.mark.parametrize(
    "message",
    [
        StoreRequest(7, b"cart:1", _sample_state(), "node-c", 4),
        StoreRequest(2**63 - 1, b"", _sample_state(), None, 0),
        StoreReply(7, False, "overloaded"),
        FetchRequest(8, b"cart:1", "node-c"),
        FetchReply(8, _sample_state()),
        FetchReply(0, None),
    ],
    ids=repr,
)
def test_every_byte_edit_of_a_request_path_message_is_decided_alike(message: Any) -> None:
    encoded = encode_message(message)
    assert _read_directly(encoded) == message  # the direct reader is on the path being tested
    for text in _text_edits(encoded.decode("ascii")):
        edited = text.encode("utf-8")
        assert _outcome(decode_message, edited) == _outcome(_checked_bytes, edited), text


def test_a_state_with_values_that_are_not_bytes_is_refused_as_before() -> None:
    state = DVVSet[str]().update("text", "node-a")
    message = StoreRequest(1, b"k", state)  # type: ignore[arg-type]  # what is refused
    with pytest.raises(TypeError, match="must encode to bytes"):
        encode_message(message)


@given(dvv_sets(max_siblings=4))
def test_a_states_client_context_is_the_encoding_of_its_clock(state: DVVSet[bytes]) -> None:
    assert encode_state_context(state) == encode_context(state.context)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.data(), dvv_sets(max_siblings=4))
def test_state_bytes_are_the_canonical_encoding_and_read_back(
    data: st.DataObject, state: DVVSet[bytes]
) -> None:
    encoded = state.to_bytes()
    assert encoded == codec.dumps(state.to_dict())
    assert DVVSet.from_bytes(encoded) == state
    hostile = data.draw(mutated(state.to_dict()))
    try:
        edited = codec.dumps(hostile)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    assert _outcome(DVVSet.from_bytes, edited) == _outcome(
        lambda b: DVVSet.from_dict(codec.loads(b)), edited
    )


def test_every_byte_edit_of_a_state_is_decided_alike() -> None:
    encoded = _sample_state().to_bytes()
    for text in _text_edits(encoded.decode("ascii")):
        edited = text.encode("utf-8")
        assert _outcome(DVVSet.from_bytes, edited) == _outcome(
            lambda b: DVVSet.from_dict(codec.loads(b)), edited
        ), text


def test_from_bytes_takes_the_caps_and_types_of_loads() -> None:
    encoded = _sample_state().to_bytes()
    with pytest.raises(DecodeError, match="limit"):
        DVVSet.from_bytes(encoded, max_bytes=len(encoded) - 1)
    assert DVVSet.from_bytes(bytearray(encoded)) == DVVSet.from_bytes(encoded.decode())
    with pytest.raises(TypeError):
        DVVSet.from_bytes(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must encode to bytes"):
        DVVSet[str]().update("text", "node-a").to_bytes()

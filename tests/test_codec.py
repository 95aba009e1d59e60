"""The wire codec: canonical bytes, strict field decoders, envelopes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.errors import DecodeError

json_safe = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_safe)
def test_dumps_loads_round_trip_and_is_canonical(value: codec.JSONValue) -> None:
    data = codec.dumps(value)
    assert codec.loads(data) == value
    assert codec.dumps(codec.loads(data)) == data


def test_dumps_sorts_keys_and_keeps_unicode() -> None:
    assert codec.dumps({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_dumps_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant|Out of range"):
        codec.dumps(math.nan)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"{", "not valid JSON"),
        (b"NaN", "constant NaN"),
        (b"[Infinity]", "constant Infinity"),
        (b'{"a":1,"a":2}', "duplicate key"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not valid JSON"),
        (b"1" * 5000, "not valid JSON"),
    ],
)
def test_loads_rejects_hostile_input(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        codec.loads(data)


def test_loads_checks_the_size_cap_first() -> None:
    with pytest.raises(DecodeError, match="limit is 10"):
        codec.loads(b"[" * 11, max_bytes=10)
    assert codec.loads(memoryview(b"[1]")) == [1]
    assert codec.loads("[1]") == [1]
    with pytest.raises(TypeError, match="data"):
        codec.loads(42)  # type: ignore[arg-type]


@given(st.binary(max_size=2000))
def test_loads_arbitrary_bytes_gives_value_or_decode_error(data: bytes) -> None:
    try:
        value = codec.loads(data)
    except DecodeError:
        return
    json.dumps(value)  # whatever was accepted is plain JSON


def test_as_int() -> None:
    assert codec.as_int(5, "n") == 5
    assert codec.as_int(2**63 - 1, "n") == 2**63 - 1
    for bad, message in [
        (True, "integer, not a boolean"),
        (1.0, "integer, not a number"),
        ("1", "integer, not a string"),
        (-1, r"0\.\.9223372036854775807"),
        (2**63, "got 9223372036854775808"),
    ]:
        with pytest.raises(DecodeError, match=f"n must be.*{message}|{message}"):
            codec.as_int(bad, "n")
    assert codec.as_int(-3, "n", lo=-5, hi=0) == -3


def test_as_float() -> None:
    assert codec.as_float(3, "t") == 3.0
    assert codec.as_float(1.5, "t", lo=0) == 1.5
    for bad in (True, math.inf, math.nan, "1", None, 10**400):
        with pytest.raises(DecodeError, match="t "):
            codec.as_float(bad, "t")
    with pytest.raises(DecodeError):
        codec.as_float(-1.0, "t", lo=0)


def test_as_str_and_bool() -> None:
    assert codec.as_str("a", "s") == "a"
    with pytest.raises(DecodeError, match="1..1024 characters"):
        codec.as_str("", "s")
    with pytest.raises(DecodeError, match="1..3 characters"):
        codec.as_str("abcd", "s", max_len=3)
    with pytest.raises(DecodeError, match="string"):
        codec.as_str(b"a", "s")
    assert codec.as_bool(False, "b") is False
    with pytest.raises(DecodeError, match="boolean"):
        codec.as_bool(0, "b")


@given(st.binary(max_size=100))
def test_bytes_round_trip(data: bytes) -> None:
    assert codec.as_bytes(codec.encode_bytes(data), "v", max_len=100) == data


def test_as_bytes_rejects() -> None:
    with pytest.raises(DecodeError, match="base64"):
        codec.as_bytes("not base64!", "v", max_len=100)
    with pytest.raises(DecodeError, match="base64"):
        codec.as_bytes("ключ", "v", max_len=100)
    with pytest.raises(DecodeError, match="limit"):
        codec.as_bytes(codec.encode_bytes(b"x" * 10), "v", max_len=9)
    with pytest.raises(DecodeError, match="longer than"):
        codec.as_bytes("A" * 10_000_000, "v", max_len=16)  # refused before decoding
    with pytest.raises(DecodeError, match="base64 string"):
        codec.as_bytes(b"AAAA", "v", max_len=16)


def test_as_list() -> None:
    assert codec.as_list([1, 2], "l", max_items=2) == [1, 2]
    with pytest.raises(DecodeError, match="3 items; the limit is 2"):
        codec.as_list([1, 2, 3], "l", max_items=2)
    with pytest.raises(DecodeError, match="must be a list"):
        codec.as_list((1,), "l")


def test_fields_and_envelopes() -> None:
    encoded = codec.envelope("thing", {"a": 1, "b": [2]})
    assert encoded == {"type": "thing", "v": codec.FORMAT_VERSION, "a": 1, "b": [2]}
    obj = codec.open_envelope(encoded, "thing", required=("a",), optional=("b", "c"))
    assert obj["a"] == 1
    with pytest.raises(DecodeError, match="expected an encoded thing, got type 'other'"):
        codec.open_envelope({**encoded, "type": "other"}, "thing", required=("a",), optional="b")
    with pytest.raises(DecodeError, match=r"thing.v must be in 1..1"):
        codec.open_envelope({**encoded, "v": 2}, "thing", required=("a",), optional=("b",))
    with pytest.raises(DecodeError, match="missing field.*: a"):
        codec.open_envelope({"type": "thing", "v": 1}, "thing", required=("a",))
    with pytest.raises(DecodeError, match="unknown field.*'zz'"):
        codec.open_envelope({**encoded, "zz": 1}, "thing", required=("a",), optional=("b",))
    with pytest.raises(DecodeError, match="must be an object, not a list"):
        codec.open_envelope([], "thing")
    with pytest.raises(DecodeError, match="got type a number"):
        codec.open_envelope({**encoded, "type": 1.5}, "thing", required=("a",), optional=("b",))


def _decode_a(value: object) -> str:
    obj = codec.open_envelope(value, "a", required=("x",))
    return codec.as_str(obj["x"], "a.x")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([], "a thing must be an object"),
        ({"v": 1}, "not a thing type: NoneType"),
        ({"type": 3, "v": 1}, "not a thing type: int"),
        ({"type": "b" * 100, "v": 1}, "not a thing type: '" + "b" * 64 + "'$"),
        ({"type": "a", "v": 1}, "missing"),
    ],
)
def test_decode_by_type_refuses(value: object, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        codec.decode_by_type(value, {"a": _decode_a}, "thing")


def test_decode_by_type_dispatches_on_the_type() -> None:
    decoders = {"a": _decode_a, "b": lambda value: "b!"}
    assert codec.decode_by_type({"type": "a", "v": 1, "x": "hi"}, decoders, "thing") == "hi"
    assert codec.decode_by_type({"type": "b"}, decoders, "thing") == "b!"

"""Every decoder, fed arbitrary JSON, succeeds or raises DecodeError and nothing else.

When a module adds a decoder (a ``from_dict``), add it to ``DECODERS`` here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TokenRange

# (name, decoder, a valid encoded example used to build near-miss inputs)
DECODERS: list[tuple[str, Callable[[object], object], codec.JSONValue]] = [
    ("TokenRange", TokenRange.from_dict, TokenRange(5, 2**64).to_dict()),
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

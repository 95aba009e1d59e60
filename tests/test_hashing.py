"""The token hash and token ranges."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys

import mmh3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import (
    TOKEN_SPACE,
    TokenRange,
    coalesce,
    keyed_token,
    token,
    token_function,
)
from dynamo_core.strategies import keys, token_ranges, tokens

SECRET = b"0123456789abcdef"


@given(keys())
def test_token_is_in_range_and_str_hashes_as_utf8(key: str | bytes) -> None:
    value = token(key)
    assert 0 <= value < TOKEN_SPACE
    raw = key.encode() if isinstance(key, str) else key
    assert value == token(raw)


def test_token_is_low_half_of_murmur3_x64_128() -> None:
    # Fixed vectors so a change of algorithm, seed or half is caught, and other languages can check.
    assert token(b"") == 0
    assert token("abc") == 13012657714217449575
    assert token("abc") == mmh3.hash64(b"abc", signed=False)[0]
    assert token("ключ") == mmh3.hash128("ключ".encode(), 0, True, False) % 2**64


def test_keyed_token_is_blake2b_and_depends_on_the_secret() -> None:
    expected = int.from_bytes(hashlib.blake2b(b"abc", digest_size=8, key=SECRET).digest(), "little")
    assert keyed_token("abc", SECRET) == expected
    assert keyed_token("abc", SECRET) != keyed_token("abc", SECRET[::-1])
    assert token_function(SECRET)("abc") == expected
    assert token_function() is token


@pytest.mark.parametrize("bad", [1, None, 1.5, bytearray(b"x"), ["a"]])
def test_bad_keys_raise_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="key"):
        token(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        keyed_token(bad, SECRET)  # type: ignore[arg-type]


def test_lone_surrogate_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        token("\ud800")


@pytest.mark.parametrize(
    ("secret", "error"),
    [(b"short", ValueError), (b"x" * 65, ValueError), ("0123456789abcdef", TypeError)],
)
def test_bad_secrets(secret: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="hash_key"):
        token_function(secret)  # type: ignore[arg-type]
    with pytest.raises(error, match="hash_key"):
        keyed_token("k", secret)  # type: ignore[arg-type]


def test_tokens_are_identical_across_processes_and_hash_seeds() -> None:
    code = (
        "from dynamo_core.hashing import token, keyed_token\n"
        "ks=['a','cart:alice','ключ',b'\\x00\\xff']\n"
        "print(([token(k) for k in ks], [keyed_token(k, b'0123456789abcdef') for k in ks]))"
    )
    outputs = set()
    for seed in ("0", "1", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    ks: list[str | bytes] = ["a", "cart:alice", "ключ", b"\x00\xff"]
    assert outputs.pop().strip() == str(
        ([token(k) for k in ks], [keyed_token(k, SECRET) for k in ks])
    )


# -- TokenRange --------------------------------------------------------------------------------


@given(token_ranges(), tokens())
def test_membership_matches_pieces_and_size(rng: TokenRange, tok: int) -> None:
    pieces = rng.pieces()
    assert (tok in rng) == any(p.start <= tok < p.end for p in pieces)
    assert sum(p.end - p.start for p in pieces) == rng.size
    assert all(not p.wraps for p in pieces)
    assert 1 <= rng.size <= TOKEN_SPACE


def test_wrapping_ranges() -> None:
    rng = TokenRange(TOKEN_SPACE - 10, 5)
    assert rng.wraps
    assert rng.size == 15
    assert TOKEN_SPACE - 1 in rng and 0 in rng and 4 in rng
    assert 5 not in rng and TOKEN_SPACE - 11 not in rng
    assert rng.pieces() == (TokenRange(0, 5), TokenRange(TOKEN_SPACE - 10, TOKEN_SPACE))
    assert TokenRange(7, 7).size == TOKEN_SPACE
    assert TokenRange.whole().size == TOKEN_SPACE and not TokenRange.whole().wraps
    assert "x" not in rng  # non-int tokens are simply not members


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        (-1, 5, ValueError),
        (TOKEN_SPACE, 5, ValueError),
        (0, 0, ValueError),
        (0, TOKEN_SPACE + 1, ValueError),
        (1.0, 5, TypeError),
        (True, 5, TypeError),
        (0, "5", TypeError),
    ],
)
def test_bad_ranges(start: object, end: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="start|end"):
        TokenRange(start, end)  # type: ignore[arg-type]


@given(token_ranges())
def test_range_codec_round_trip(rng: TokenRange) -> None:
    assert TokenRange.from_dict(rng.to_dict()) == rng
    assert TokenRange.from_dict(codec.loads(codec.dumps(rng.to_dict()))) == rng


@pytest.mark.parametrize(
    "data",
    [
        {"type": "token_range", "v": 1, "start": 0},
        {"type": "token_range", "v": 1, "start": 0, "end": 0},
        {"type": "token_range", "v": 2, "start": 0, "end": 1},
        {"type": "token_range", "v": 1, "start": -1, "end": 1},
        {"type": "token_range", "v": 1, "start": True, "end": 1},
        {"type": "vector_clock", "v": 1, "start": 0, "end": 1},
        {"type": "token_range", "v": 1, "start": 0, "end": 1, "extra": 1},
        [0, 1],
    ],
)
def test_range_decoder_rejects(data: object) -> None:
    with pytest.raises(DecodeError):
        TokenRange.from_dict(data)


@given(st.lists(token_ranges(), max_size=8), tokens())
def test_coalesce_preserves_membership_and_is_maximal(ranges: list[TokenRange], tok: int) -> None:
    merged = coalesce(ranges)
    assert any(tok in r for r in ranges) == any(tok in r for r in merged)
    for a, b in itertools.pairwise(merged):
        assert a.end < b.start  # sorted, disjoint, not touching
    assert all(not r.wraps for r in merged)
    assert sum(r.size for r in merged) <= sum(r.size for r in ranges)


def test_coalesce_examples() -> None:
    assert coalesce([TokenRange(10, 20), TokenRange(0, 10), TokenRange(30, 40)]) == [
        TokenRange(0, 20),
        TokenRange(30, 40),
    ]
    assert coalesce([TokenRange(5, 5)]) == [TokenRange.whole()]
    assert coalesce([]) == []

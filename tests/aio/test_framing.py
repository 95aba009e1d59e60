from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core.aio.framing import FrameDecoder, FrameError, FrameTooLarge, encode_frame
from dynamo_core.errors import DecodeError


def test_encode_frame_is_length_then_payload() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


def test_encode_frame_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="payload"):
        encode_frame("abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_frame is 2"):
        encode_frame(b"abc", max_frame=2)


def test_decoder_returns_frames_in_order_and_keeps_partial_ones() -> None:
    decoder = FrameDecoder(max_frame=100)
    data = encode_frame(b"one") + encode_frame(b"") + encode_frame(b"three")
    assert decoder.feed(data[:5]) == []
    decoder._check_invariants()
    mid_frame = decoder.at_boundary
    assert decoder.buffered == 1
    assert not mid_frame
    assert decoder.feed(data[5:]) == [b"one", b"", b"three"]
    decoder._check_invariants()
    assert decoder.at_boundary
    decoder.close()


def test_a_huge_length_prefix_fails_before_buffering_anything() -> None:
    decoder = FrameDecoder(max_frame=1024)
    with pytest.raises(FrameTooLarge, match="4294967295 bytes announced; the limit is 1024"):
        decoder.feed(b"\xff\xff\xff\xff" + b"x" * 10)
    assert decoder.buffered == 0
    with pytest.raises(FrameError, match="already failed"):  # no resynchronising
        decoder.feed(encode_frame(b"ok"))


def test_a_frame_exactly_at_the_cap_is_accepted() -> None:
    decoder = FrameDecoder(max_frame=4)
    assert decoder.feed(encode_frame(b"abcd")) == [b"abcd"]
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\x00\x00\x00\x05")


@pytest.mark.parametrize("cut", [1, 3, 4, 6])
def test_a_stream_ending_inside_a_frame_is_an_error(cut: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"hello")[:cut])
    with pytest.raises(FrameError, match="inside a frame"):
        decoder.close()


def test_frame_errors_are_decode_errors() -> None:
    assert issubclass(FrameTooLarge, FrameError)
    assert issubclass(FrameError, DecodeError)


def test_decoder_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="max_frame"):
        FrameDecoder(0)
    with pytest.raises(ValueError, match="max_frame"):
        FrameDecoder(2**32)
    with pytest.raises(TypeError, match="max_frame"):
        FrameDecoder(True)
    with pytest.raises(TypeError, match="data must be bytes-like"):
        FrameDecoder().feed("text")  # type: ignore[arg-type]


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_chunking_gives_back_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(max_frame=300)
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(memoryview(stream)[start:end]))
        decoder._check_invariants()
    assert out == payloads
    assert decoder.at_boundary
    decoder.close()


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=64))
def test_garbage_never_raises_anything_but_frame_errors(data: bytes, cap: int) -> None:
    decoder = FrameDecoder(max_frame=cap)
    try:
        frames = decoder.feed(data)
    except FrameError:
        return
    assert all(len(f) <= cap for f in frames)
    assert sum(len(f) + 4 for f in frames) + decoder.buffered == len(data)


def test_max_frames_leaves_later_frames_unread_for_a_new_cap() -> None:
    """Before authentication a reader parses one frame at a time: the next meets the new cap."""
    decoder = FrameDecoder(max_frame=8)
    data = encode_frame(b"hello") + encode_frame(b"x" * 100, max_frame=100)
    assert decoder.feed(data, max_frames=1) == [b"hello"]
    assert decoder.buffered == 104  # the big frame, not parsed yet
    decoder.max_frame = 100
    assert decoder.feed(b"") == [b"x" * 100]
    strict = FrameDecoder(max_frame=8)
    with pytest.raises(FrameTooLarge):
        strict.feed(data)

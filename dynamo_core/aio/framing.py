"""Length-prefixed frames: the byte stream of a TCP connection cut into messages.

A frame is a 4-byte big-endian length followed by that many bytes of payload (a codec encoding).
[`encode_frame`][dynamo_core.aio.framing.encode_frame] builds one;
[`FrameDecoder`][dynamo_core.aio.framing.FrameDecoder] takes bytes as they arrive, in any
chunking, and returns the complete payloads. The length is checked against a cap *before* any
payload is buffered, so a peer that announces a huge frame costs four bytes, not memory.

Pure: no sockets, no asyncio.
"""

from __future__ import annotations

import struct
from typing import Final

from dynamo_core import codec
from dynamo_core._check import check_bytes, check_positive_int
from dynamo_core.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "MAX_FRAME_LIMIT",
    "MAX_HANDSHAKE_FRAME",
    "FrameDecoder",
    "FrameError",
    "FrameTooLarge",
    "encode_frame",
]

HEADER_SIZE: Final = 4
"""Bytes in a frame header (the payload length, big-endian, unsigned)."""

DEFAULT_MAX_FRAME: Final = codec.DEFAULT_MAX_BYTES
"""The default cap on one frame's payload: 16 MiB, the codec's own cap."""

MAX_FRAME_LIMIT: Final = 2**32 - 1
"""The largest cap a 4-byte header can express."""

MAX_HANDSHAKE_FRAME: Final = 4096
"""The cap on frames read before a connection is authenticated (handshake frames are small),
so an unauthenticated peer can make a node buffer at most this much per connection."""

_HEADER: Final = struct.Struct(">I")


class FrameError(DecodeError):
    """A frame stream is broken: a frame over the size cap, or a stream ended inside a frame."""


class FrameTooLarge(FrameError):
    """A frame header announced more than the size cap."""


def encode_frame(payload: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Return `payload` with its length prefix.

    Cost: one copy of `payload`.

    Returns:
        ``len(payload)`` as 4 big-endian bytes, then `payload`.

    Raises:
        TypeError: `payload` is not `bytes`.
        ValueError: `payload` is longer than `max_frame`.
    """
    check_bytes(payload, "payload")
    if len(payload) > max_frame:
        raise ValueError(f"payload is {len(payload)} bytes; max_frame is {max_frame}")
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder of length-prefixed frames.

    Feed it the bytes read from a stream, in whatever pieces they arrive; it returns each
    payload once it is complete. After an oversized header it raises
    [`FrameError`][dynamo_core.aio.framing.FrameError] and stays failed: the stream cannot be
    resynchronised, so the connection must be closed.

    Memory: at most one header plus `max_frame` bytes are buffered.

    Args:
        max_frame: The largest payload accepted, ``1 .. 2**32 - 1`` bytes.

    Raises:
        TypeError, ValueError: `max_frame` is not an int in range.
    """

    __slots__ = ("_buffer", "_failed", "_need", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = check_positive_int(max_frame, "max_frame", maximum=MAX_FRAME_LIMIT)
        self._buffer = bytearray()
        self._need: int | None = None  # payload length of the frame in progress
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    @property
    def at_boundary(self) -> bool:
        """Whether the bytes fed so far end exactly at a frame boundary."""
        return not self._buffer and self._need is None

    def feed(
        self, data: bytes | bytearray | memoryview, *, max_frames: int | None = None
    ) -> list[bytes]:
        """Add `data` and return every payload it completes, in order.

        With `max_frames`, stop after that many payloads and leave the rest buffered, unread
        (a later call, even with ``b""``, goes on): a reader whose cap changes between frames
        (small before authentication) checks each header against the cap of its time.

        Cost: O(len(data)) amortised.

        Returns:
            The completed payloads (possibly none).

        Raises:
            TypeError: `data` is not bytes-like.
            FrameTooLarge: a header announces more than `max_frame` bytes.
            FrameError: the decoder failed before.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        if self._failed:
            raise FrameError("the frame stream already failed; close the connection")
        self._buffer += data
        out: list[bytes] = []
        buffer = self._buffer
        pos = 0
        while max_frames is None or len(out) < max_frames:
            if self._need is None:
                if len(buffer) - pos < HEADER_SIZE:
                    break
                (length,) = _HEADER.unpack_from(buffer, pos)
                if length > self.max_frame:
                    self._failed = True
                    self._buffer = bytearray()
                    raise FrameTooLarge(
                        f"frame of {length} bytes announced; the limit is {self.max_frame}"
                    )
                pos += HEADER_SIZE
                self._need = length
            if len(buffer) - pos < self._need:
                break
            out.append(bytes(buffer[pos : pos + self._need]))
            pos += self._need
            self._need = None
        if pos:
            del buffer[:pos]
        return out

    def close(self) -> None:
        """Declare the end of the stream.

        Raises:
            FrameError: the stream ended inside a frame (a truncated header or payload).
        """
        if not self.at_boundary:
            raise FrameError(f"stream ended inside a frame ({len(self._buffer)} bytes pending)")

    def _check_invariants(self) -> None:
        assert self._need is None or 0 <= self._need <= self.max_frame
        assert self._need is not None or len(self._buffer) < HEADER_SIZE or self._failed
        assert self._need is None or len(self._buffer) < self._need

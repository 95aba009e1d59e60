"""Client contexts: the opaque causal context a client reads and sends back with its next put."""

from __future__ import annotations

from typing import Final

from dynamo_core import codec
from dynamo_core._check import check_bytes
from dynamo_core.dvv import DVVSet, _context_json
from dynamo_core.errors import DecodeError
from dynamo_core.limits import MAX_CONTEXT_COUNTER
from dynamo_core.messages import MAX_CONTEXT_BYTES
from dynamo_core.vclock import VectorClock

__all__ = ["EMPTY_CONTEXT", "decode_context", "encode_context"]


def encode_context(context: VectorClock) -> bytes:
    """Encode a causal context for a client (canonical JSON of the clock).

    Returns:
        The opaque bytes a client sends back with its next put.
    """
    return codec.dumps(context.to_dict())


def encode_state_context(state: DVVSet[bytes]) -> bytes:
    """``encode_context(state.context)``, written from the state without building the clock."""
    return _context_json(state)


def decode_context(data: bytes) -> VectorClock:
    """Decode a context made by [`encode_context`][dynamo_core.node.encode_context].

    A context holds at most 1,024 entries and counters of at most
    [`MAX_CONTEXT_COUNTER`][dynamo_core.limits.MAX_CONTEXT_COUNTER] (2**53): a node's own writes
    never get near it, and no context can bring a counter close to overflow.

    Raises:
        TypeError: `data` is not `bytes`.
        dynamo_core.errors.DecodeError: `data` is not a valid context, or is over a cap.
    """
    check_bytes(data, "context")
    clock = VectorClock.from_dict(codec.loads(data, max_bytes=MAX_CONTEXT_BYTES))
    for actor, counter in clock.items():
        if counter > MAX_CONTEXT_COUNTER:
            raise DecodeError(f"context counter of {actor[:64]!r} is {counter}; the limit is 2**53")
    return clock


EMPTY_CONTEXT: Final = encode_context(VectorClock())

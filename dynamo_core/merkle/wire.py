"""The wire messages of the Merkle exchange protocol, their codec and decode registry."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Final, Self, TypeAlias

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_KEY_BYTES
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import (
    TOKEN_SPACE,
)
from dynamo_core.merkle.tree import (
    DIGEST_SIZE,
    MAX_DEPTH,
)

__all__ = [
    "Abort",
    "Close",
    "GetItems",
    "GetNodes",
    "Hello",
    "InSync",
    "Items",
    "Message",
    "Nodes",
    "UseDepth",
    "decode_message",
    "encode_message",
    "message_from_dict",
]

# -- exchange messages -------------------------------------------------------------------------

_MAX_SEGMENTS: Final = 1 << MAX_DEPTH


def _int_field(lo: int, hi: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_: object, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int:
            raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
        if not lo <= value <= hi:
            raise ValueError(f"{attribute.name} must be in {lo}..{hi}, got {value}")

    return check


def _digests_field(_: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if type(value) is not bytes:
        raise TypeError(f"{attribute.name} must be bytes, not {type(value).__name__}")
    if len(value) % DIGEST_SIZE:
        raise ValueError(f"{attribute.name} must be a whole number of {DIGEST_SIZE}-byte digests")


def _increasing_ints(_: object, attribute: attrs.Attribute[tuple[int, ...]], value: object) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    previous = -1
    for item in value:
        if type(item) is not int or not previous < item < _MAX_SEGMENTS:
            raise ValueError(f"{attribute.name} must be increasing ints below 2**{MAX_DEPTH}")
        previous = item


def _increasing_keys(
    _: object, attribute: attrs.Attribute[tuple[bytes, ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    previous: bytes | None = None
    for item in value:
        if type(item) is not bytes or len(item) > MAX_KEY_BYTES:
            raise ValueError(
                f"{attribute.name} must hold bytes keys of at most {MAX_KEY_BYTES} bytes"
            )
        if previous is not None and item <= previous:
            raise ValueError(
                f"{attribute.name} must be strictly increasing (sorted, no duplicates)"
            )
        previous = item


def _as_increasing_ints(value: object, what: str) -> tuple[int, ...]:
    out = tuple(
        codec.as_int(item, f"{what}[{i}]", hi=_MAX_SEGMENTS - 1)
        for i, item in enumerate(codec.as_list(value, what, max_items=_MAX_SEGMENTS))
    )
    if any(a >= b for a, b in itertools.pairwise(out)):
        raise DecodeError(f"{what} must be strictly increasing")
    return out


def _as_digests(value: object, what: str, *, max_count: int) -> bytes:
    data = codec.as_bytes(value, what, max_len=DIGEST_SIZE * max_count)
    if len(data) % DIGEST_SIZE:
        raise DecodeError(f"{what} must be a whole number of {DIGEST_SIZE}-byte digests")
    return data


@attrs.frozen
class Hello:
    """The initiator's first message: its tree's shape and root, and the first request.

    If the responder's root differs it answers with the nodes at height `to_height` (all of
    them: the descendants of the top); if it is equal, with [`InSync`][dynamo_core.merkle.InSync].
    """

    depth: int = attrs.field(validator=_int_field(0, MAX_DEPTH))
    start: int = attrs.field(validator=_int_field(0, TOKEN_SPACE - 1))
    end: int = attrs.field(validator=_int_field(1, TOKEN_SPACE))
    fingerprint: int = attrs.field(validator=_int_field(0, TOKEN_SPACE - 1))
    root: bytes = attrs.field(validator=_digests_field)
    to_height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_hello`` envelope."""
        return codec.envelope(
            "merkle_hello",
            {
                "depth": self.depth,
                "start": self.start,
                "end": self.end,
                "fingerprint": self.fingerprint,
                "root": codec.encode_bytes(self.root),
                "to_height": self.to_height,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_hello`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(
            data,
            "merkle_hello",
            required=("depth", "start", "end", "fingerprint", "root", "to_height"),
        )
        root = codec.as_bytes(obj["root"], "merkle_hello.root", max_len=DIGEST_SIZE)
        if len(root) != DIGEST_SIZE:
            raise DecodeError(f"merkle_hello.root must be {DIGEST_SIZE} bytes")
        return cls(
            codec.as_int(obj["depth"], "merkle_hello.depth", hi=MAX_DEPTH),
            codec.as_int(obj["start"], "merkle_hello.start", hi=TOKEN_SPACE - 1),
            codec.as_int(obj["end"], "merkle_hello.end", lo=1, hi=TOKEN_SPACE),
            codec.as_int(obj["fingerprint"], "merkle_hello.fingerprint", hi=TOKEN_SPACE - 1),
            root,
            codec.as_int(obj["to_height"], "merkle_hello.to_height", hi=MAX_DEPTH),
        )


@attrs.frozen
class InSync:
    """The responder's answer to a [`Hello`][dynamo_core.merkle.Hello] whose root it shares."""

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_in_sync`` envelope."""
        return codec.envelope("merkle_in_sync", {})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_in_sync`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        codec.open_envelope(data, "merkle_in_sync")
        return cls()


@attrs.frozen
class UseDepth:
    """The responder's answer to a [`Hello`][dynamo_core.merkle.Hello] deeper than its tree.

    The initiator folds its tree to `depth` ([`fold`][dynamo_core.merkle.MerkleTree.fold]) and
    says hello again; a responder whose tree is deeper than the Hello's folds its own, so the
    two sides always compare at the shallower depth.
    """

    depth: int = attrs.field(validator=_int_field(0, MAX_DEPTH))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_use_depth`` envelope."""
        return codec.envelope("merkle_use_depth", {"depth": self.depth})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_use_depth`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_use_depth", required=("depth",))
        return cls(codec.as_int(obj["depth"], "merkle_use_depth.depth", hi=MAX_DEPTH))


@attrs.frozen
class GetNodes:
    """Ask for the nodes at `to_height` below each of `parents` (node indices at `height`).

    The answer holds ``len(parents) * 2**(height - to_height)`` digests, parent by parent. With
    ``height == to_height`` it asks for the nodes themselves (the confirmation pass re-reads
    leaves this way).
    """

    height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))
    parents: tuple[int, ...] = attrs.field(validator=_increasing_ints)
    to_height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_get_nodes`` envelope."""
        return codec.envelope(
            "merkle_get_nodes",
            {"height": self.height, "parents": list(self.parents), "to_height": self.to_height},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_get_nodes`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(
            data, "merkle_get_nodes", required=("height", "parents", "to_height")
        )
        return cls(
            codec.as_int(obj["height"], "merkle_get_nodes.height", hi=MAX_DEPTH),
            _as_increasing_ints(obj["parents"], "merkle_get_nodes.parents"),
            codec.as_int(obj["to_height"], "merkle_get_nodes.to_height", hi=MAX_DEPTH),
        )


@attrs.frozen
class Nodes:
    """Node digests at `height`, in the order they were asked for, concatenated."""

    height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))
    digests: bytes = attrs.field(validator=_digests_field)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_nodes`` envelope."""
        return codec.envelope(
            "merkle_nodes", {"height": self.height, "digests": codec.encode_bytes(self.digests)}
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_nodes`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_nodes", required=("height", "digests"))
        return cls(
            codec.as_int(obj["height"], "merkle_nodes.height", hi=MAX_DEPTH),
            _as_digests(obj["digests"], "merkle_nodes.digests", max_count=_MAX_SEGMENTS),
        )


@attrs.frozen
class GetItems:
    """Ask for the ``(key, digest)`` items of the given segments."""

    segments: tuple[int, ...] = attrs.field(validator=_increasing_ints)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_get_items`` envelope."""
        return codec.envelope("merkle_get_items", {"segments": list(self.segments)})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_get_items`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_get_items", required=("segments",))
        return cls(_as_increasing_ints(obj["segments"], "merkle_get_items.segments"))


@attrs.frozen
class Items:
    """Items of the asked-for segments: keys sorted (no duplicates), digests in key order."""

    keys: tuple[bytes, ...] = attrs.field(validator=_increasing_keys)
    digests: bytes = attrs.field(validator=_digests_field)

    def __attrs_post_init__(self) -> None:
        if len(self.digests) != DIGEST_SIZE * len(self.keys):
            raise ValueError("digests must hold exactly one 16-byte digest per key")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_items`` envelope."""
        return codec.envelope(
            "merkle_items",
            {
                "keys": [codec.encode_bytes(key) for key in self.keys],
                "digests": codec.encode_bytes(self.digests),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_items`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_items", required=("keys", "digests"))
        raw = codec.as_list(obj["keys"], "merkle_items.keys", max_items=codec.DEFAULT_MAX_ITEMS)
        keys = tuple(
            codec.as_bytes(key, f"merkle_items.keys[{i}]", max_len=MAX_KEY_BYTES)
            for i, key in enumerate(raw)
        )
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise DecodeError("merkle_items.keys must be strictly increasing")
        digests = _as_digests(obj["digests"], "merkle_items.digests", max_count=len(keys))
        if len(digests) != DIGEST_SIZE * len(keys):
            raise DecodeError("merkle_items.digests must hold one digest per key")
        return cls(keys, digests)


@attrs.frozen
class Close:
    """The initiator is finished and expects no answer (nothing left to fetch)."""

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_close`` envelope."""
        return codec.envelope("merkle_close", {})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_close`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        codec.open_envelope(data, "merkle_close")
        return cls()


def _reason_field(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= codec.DEFAULT_MAX_STR:
        raise ValueError(f"{attribute.name} must be 1..{codec.DEFAULT_MAX_STR} characters long")


@attrs.frozen
class Abort:
    """Either side gives up; `reason` says why (a shape mismatch, a protocol error)."""

    reason: str = attrs.field(validator=_reason_field)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_abort`` envelope."""
        return codec.envelope("merkle_abort", {"reason": self.reason})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_abort`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_abort", required=("reason",))
        return cls(codec.as_str(obj["reason"], "merkle_abort.reason"))


Message: TypeAlias = Hello | InSync | UseDepth | GetNodes | Nodes | GetItems | Items | Close | Abort
"""A message of the exchange protocol."""

_MESSAGE_TYPES: Final[dict[str, Callable[[object], Message]]] = {
    "merkle_hello": Hello.from_dict,
    "merkle_in_sync": InSync.from_dict,
    "merkle_use_depth": UseDepth.from_dict,
    "merkle_get_nodes": GetNodes.from_dict,
    "merkle_nodes": Nodes.from_dict,
    "merkle_get_items": GetItems.from_dict,
    "merkle_items": Items.from_dict,
    "merkle_close": Close.from_dict,
    "merkle_abort": Abort.from_dict,
}


def message_from_dict(data: object) -> Message:
    """Decode any exchange message from its envelope, dispatching on its ``type``.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid encoded exchange message.
    """
    return codec.decode_by_type(data, _MESSAGE_TYPES, "Merkle exchange message")


def encode_message(message: Message) -> bytes:
    """Encode an exchange message as canonical JSON ([`codec.dumps`][dynamo_core.codec.dumps]).

    Returns:
        The encoded message.
    """
    return codec.dumps(message.to_dict())


def decode_message(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = codec.DEFAULT_MAX_BYTES
) -> Message:
    """Decode bytes made by [`encode_message`][dynamo_core.merkle.encode_message].

    Raises:
        dynamo_core.errors.DecodeError: `data` is over `max_bytes` or not a valid message.
    """
    return message_from_dict(codec.loads(data, max_bytes=max_bytes))

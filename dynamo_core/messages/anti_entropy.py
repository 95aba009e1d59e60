"""Anti-entropy's messages: offers of Merkle roots, exchanges, repair push and pull."""

from __future__ import annotations

from typing import Any, Final, Literal, Self

import attrs

from dynamo_core import codec, merkle
from dynamo_core._check import MAX_KEY_BYTES
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TOKEN_SPACE, TokenRange
from dynamo_core.messages._fields import _build, _bytes_tuple, _check_id, _decode_key

MAX_RANGES: Final = 2**18
"""The most token ranges one [`SyncOffer`][dynamo_core.messages.SyncOffer] may carry."""

MAX_REPAIR_KEYS: Final = 10_000
"""The most keys one [`RepairPush`][dynamo_core.messages.RepairPush] or pull may carry."""


def _check_roots(
    _: object,
    attribute: attrs.Attribute[tuple[tuple[TokenRange, bytes | None], ...]],
    value: object,
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    if len(value) > MAX_RANGES:
        raise ValueError(f"{attribute.name} must hold at most {MAX_RANGES} ranges")
    for i, item in enumerate(value):
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not TokenRange:
            raise TypeError(f"{attribute.name}[{i}] must be a (TokenRange, root or None) pair")
        root = item[1]
        if root is not None and (type(root) is not bytes or len(root) != merkle.DIGEST_SIZE):
            raise ValueError(f"{attribute.name}[{i}] root must be None or 16 bytes")


def _check_ranges(
    _: object, attribute: attrs.Attribute[tuple[TokenRange, ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    if len(value) > MAX_RANGES:
        raise ValueError(f"{attribute.name} must hold at most {MAX_RANGES} ranges")
    for i, item in enumerate(value):
        if type(item) is not TokenRange:
            raise TypeError(f"{attribute.name}[{i}] must be a TokenRange")


def _encode_range(rng: TokenRange) -> list[codec.JSONValue]:
    return [rng.start, rng.end]


def _decode_range(value: object, what: str) -> TokenRange:
    pair = codec.as_list(value, what, max_items=2)
    if len(pair) != 2:
        raise DecodeError(f"{what} must be [start, end]")
    start = codec.as_int(pair[0], f"{what}.start", hi=TOKEN_SPACE - 1)
    end = codec.as_int(pair[1], f"{what}.end", lo=1, hi=TOKEN_SPACE)
    return TokenRange(start, end)


@attrs.frozen
class SyncOffer:
    """Anti-entropy, step 1: my Merkle roots of the ranges we both replicate.

    A root of `None` means the sender holds nothing in that range. The receiver answers with
    the ranges whose roots differ from its own.
    """

    session: int = attrs.field(validator=_check_id)
    roots: tuple[tuple[TokenRange, bytes | None], ...] = attrs.field(validator=_check_roots)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_sync_offer`` envelope."""
        return codec.envelope(
            "node_sync_offer",
            {
                "session": self.session,
                "roots": [
                    [rng.start, rng.end, None if root is None else codec.encode_bytes(root)]
                    for rng, root in self.roots
                ],
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_sync_offer`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_sync_offer", required=("session", "roots"))
        items = codec.as_list(obj["roots"], "node_sync_offer.roots", max_items=MAX_RANGES)
        roots: list[tuple[TokenRange, bytes | None]] = []
        for i, item in enumerate(items):
            what = f"node_sync_offer.roots[{i}]"
            triple = codec.as_list(item, what, max_items=3)
            if len(triple) != 3:
                raise DecodeError(f"{what} must be [start, end, root]")
            rng = _decode_range(triple[:2], what)
            raw = triple[2]
            root = None
            if raw is not None:
                root = codec.as_bytes(raw, f"{what}.root", max_len=merkle.DIGEST_SIZE)
                if len(root) != merkle.DIGEST_SIZE:
                    raise DecodeError(f"{what}.root must be {merkle.DIGEST_SIZE} bytes")
            roots.append((rng, root))
        return cls(codec.as_int(obj["session"], "node_sync_offer.session"), tuple(roots))


@attrs.frozen
class SyncDiff:
    """Anti-entropy, step 2: of the ranges offered, these have different roots here."""

    session: int = attrs.field(validator=_check_id)
    ranges: tuple[TokenRange, ...] = attrs.field(validator=_check_ranges)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_sync_diff`` envelope."""
        return codec.envelope(
            "node_sync_diff",
            {"session": self.session, "ranges": [_encode_range(rng) for rng in self.ranges]},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_sync_diff`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_sync_diff", required=("session", "ranges"))
        items = codec.as_list(obj["ranges"], "node_sync_diff.ranges", max_items=MAX_RANGES)
        ranges = tuple(
            _decode_range(item, f"node_sync_diff.ranges[{i}]") for i, item in enumerate(items)
        )
        return cls(codec.as_int(obj["session"], "node_sync_diff.session"), ranges)


def _check_role(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("initiator", "responder"):
        raise ValueError(f"{attribute.name} must be 'initiator' or 'responder', got {value!r:.40}")


def _check_merkle_message(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, merkle.Message):
        raise TypeError(f"{attribute.name} must be a Merkle exchange message")


@attrs.frozen
class ExchangeMessage:
    """One message of a [`MerkleExchange`][dynamo_core.merkle.MerkleExchange] over `range`.

    Attributes:
        session: The initiator's id for the exchange.
        range: The token range both trees cover.
        to: The role of the receiver's side of the exchange.
        message: The exchange message itself.
    """

    session: int = attrs.field(validator=_check_id)
    range: TokenRange = attrs.field(validator=attrs.validators.instance_of(TokenRange))
    to: Literal["initiator", "responder"] = attrs.field(validator=_check_role)
    message: merkle.Message = attrs.field(validator=_check_merkle_message)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_exchange`` envelope holding the Merkle message's envelope."""
        return codec.envelope(
            "node_exchange",
            {
                "session": self.session,
                "range": _encode_range(self.range),
                "to": self.to,
                "message": self.message.to_dict(),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_exchange`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(
            data, "node_exchange", required=("session", "range", "to", "message")
        )
        return _build(  # type: ignore[no-any-return]
            cls,
            "node_exchange",
            codec.as_int(obj["session"], "node_exchange.session"),
            _decode_range(obj["range"], "node_exchange.range"),
            codec.as_str(obj["to"], "node_exchange.to", max_len=16),
            merkle.message_from_dict(obj["message"]),
        )


def _check_states(
    _: object, attribute: attrs.Attribute[tuple[tuple[bytes, DVVSet[bytes]], ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    if len(value) > MAX_REPAIR_KEYS:
        raise ValueError(f"{attribute.name} must hold at most {MAX_REPAIR_KEYS} states")
    for i, item in enumerate(value):
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(f"{attribute.name}[{i}] must be a (key, DVVSet) pair")
        key, state = item
        if type(key) is not bytes or len(key) > MAX_KEY_BYTES:
            raise TypeError(f"{attribute.name}[{i}] key must be bytes of at most 64 KiB")
        if not isinstance(state, DVVSet):
            raise TypeError(f"{attribute.name}[{i}] state must be a DVVSet")


@attrs.frozen
class RepairPush:
    """Anti-entropy repair: merge these states into your replicas of their keys. No reply."""

    states: tuple[tuple[bytes, DVVSet[bytes]], ...] = attrs.field(validator=_check_states)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_repair_push`` envelope."""
        return codec.envelope(
            "node_repair_push",
            {"states": [[codec.encode_bytes(k), s.to_dict()] for k, s in self.states]},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_repair_push`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_repair_push", required=("states",))
        items = codec.as_list(obj["states"], "node_repair_push.states", max_items=MAX_REPAIR_KEYS)
        states = []
        for i, item in enumerate(items):
            what = f"node_repair_push.states[{i}]"
            pair = codec.as_list(item, what, max_items=2)
            if len(pair) != 2:
                raise DecodeError(f"{what} must be [key, state]")
            states.append((_decode_key(pair[0], f"{what}.key"), DVVSet.from_dict(pair[1])))
        return cls(tuple(states))


@attrs.frozen
class RepairPull:
    """Anti-entropy repair: send me your states of these keys (answered with a `RepairPush`)."""

    keys: tuple[bytes, ...] = attrs.field(
        validator=_bytes_tuple(max_items=MAX_REPAIR_KEYS, max_len=MAX_KEY_BYTES)
    )

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_repair_pull`` envelope."""
        return codec.envelope(
            "node_repair_pull", {"keys": [codec.encode_bytes(k) for k in self.keys]}
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_repair_pull`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_repair_pull", required=("keys",))
        items = codec.as_list(obj["keys"], "node_repair_pull.keys", max_items=MAX_REPAIR_KEYS)
        return cls(
            tuple(_decode_key(k, f"node_repair_pull.keys[{i}]") for i, k in enumerate(items))
        )

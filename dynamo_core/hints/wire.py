"""The hint record and the messages that carry hints between nodes: `HintBatch` and `HintAck`."""

from __future__ import annotations

from typing import (
    Any,
    Final,
    Generic,
    Self,
    TypeVar,
    overload,
)

import attrs

from dynamo_core import codec
from dynamo_core._check import (
    MAX_KEY_BYTES,
    MAX_NODE_ID_LEN,
    check_time,
    key_bytes,
    node_id_field,
)
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import (
    DecodeError,
)
from dynamo_core.interfaces import ReplicaState

__all__ = ["MAX_BATCH_HINTS", "Hint", "HintAck", "HintBatch"]

MAX_BATCH_HINTS: Final = 10_000
"""The most hints one [`HintBatch`][dynamo_core.hints.HintBatch] may carry."""


S = TypeVar("S", bound=ReplicaState)
"""The replica state of the hints: any `ReplicaState` whose class has a ``from_dict`` decoder."""
T = TypeVar("T", bound=ReplicaState)


def _check_state_type(state_type: object) -> type[Any]:
    if state_type is None:
        return DVVSet
    if not isinstance(state_type, type) or not callable(getattr(state_type, "from_dict", None)):
        raise TypeError(
            "state_type must be a class with a from_dict decoder (a ReplicaState), "
            f"not {state_type!r}"
        )
    return state_type


# -- hints -------------------------------------------------------------------------------------
def _validate_key(_: object, attribute: attrs.Attribute[str | bytes], value: str | bytes) -> None:
    key_bytes(value, attribute.name)


# Classes already seen to satisfy ReplicaState: a runtime protocol check costs microseconds.
_REPLICA_CLASSES: set[type] = set()


def _is_replica_state(value: object) -> bool:
    if type(value) in _REPLICA_CLASSES:
        return True
    if isinstance(value, ReplicaState):
        _REPLICA_CLASSES.add(type(value))
        return True
    return False


def _validate_state(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not _is_replica_state(value):
        raise TypeError(
            f"{attribute.name} must be a ReplicaState (sync, descends, to_dict), "
            f"not {type(value).__name__}"
        )


def _hint_dict(
    target: str, key: str | bytes, state: ReplicaState, created_at: float
) -> dict[str, codec.JSONValue]:
    body: dict[str, codec.JSONValue] = {
        "target": target,
        "state": state.to_dict(),
        "created_at": created_at,
    }
    if isinstance(key, str):
        body["key"] = key
    else:
        body["key_b64"] = codec.encode_bytes(key)
    return codec.envelope("hint", body)


def _to_time(value: object) -> float:
    # ``+ 0.0`` turns -0.0 into 0.0, so equal times encode (and sort) identically.
    return check_time(value, "created_at") + 0.0


@attrs.frozen
class Hint(Generic[S]):
    """A replica state that a fallback node holds for the node it belongs to.

    Attributes:
        target: The node the data belongs to (a node id).
        key: The key, `str` or `bytes`, at most [`MAX_KEY_BYTES`][dynamo_core.hints.MAX_KEY_BYTES].
        state: The replica state to deliver (a [`DVVSet`][dynamo_core.DVVSet] by default).
        created_at: When the hint was first stored, in seconds. A later write to the same
            target and key merges into the hint and keeps this time.

    Raises:
        TypeError: a field has the wrong type (`state` must be a
            [`ReplicaState`][dynamo_core.interfaces.ReplicaState]).
        ValueError: `target` is empty or too long, `key` is too long or not UTF-8 encodable,
            or `created_at` is negative or not finite.
    """

    target: str = attrs.field(validator=node_id_field)
    key: str | bytes = attrs.field(validator=_validate_key)
    state: S = attrs.field(validator=_validate_state)
    created_at: float = attrs.field(converter=_to_time)
    # The exact bytes the store holds for this hint, when it was read from a store: lets
    # `HintStore.remove` compare without re-encoding. Not part of equality; states are immutable.
    _wire: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``"hint"`` envelope; a `bytes` key travels as base64 in ``key_b64``.

        Returns:
            A JSON-safe dict; ``codec.dumps`` of it is canonical, so equal hints give equal bytes.
        """
        return _hint_dict(self.target, self.key, self.state, self.created_at)

    def _encoded(self) -> bytes:
        """The canonical encoding (or the stored bytes this hint was read from)."""
        if self._wire is None:
            object.__setattr__(self, "_wire", codec.dumps(self.to_dict()))
        assert self._wire is not None
        return self._wire

    @overload
    @classmethod
    def from_dict(cls, data: object) -> Hint[DVVSet[bytes]]: ...

    @overload
    @classmethod
    def from_dict(cls, data: object, *, state_type: type[T]) -> Hint[T]: ...

    @classmethod
    def from_dict(cls, data: object, *, state_type: type[Any] | None = None) -> Hint[Any]:
        """Decode what [`to_dict`][dynamo_core.hints.Hint.to_dict] produced.

        Args:
            data: The decoded JSON value.
            state_type: The state class, whose ``from_dict`` decodes the ``state`` field
                (default [`DVVSet`][dynamo_core.DVVSet]).

        Returns:
            The hint.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded hint.
            TypeError: `state_type` is not a class with a ``from_dict`` decoder.
        """
        decoder = _check_state_type(state_type)
        obj = codec.open_envelope(
            data, "hint", required=("target", "state", "created_at"), optional=("key", "key_b64")
        )
        return _decode_hint_fields(obj, "hint", decoder)


def _decode_hint_fields(obj: dict[str, object], what: str, decoder: type[Any]) -> Hint[Any]:
    target = codec.as_str(obj["target"], f"{what}.target", max_len=MAX_NODE_ID_LEN)
    if ("key" in obj) == ("key_b64" in obj):
        raise DecodeError(f"{what} must have exactly one of the fields key and key_b64")
    key: str | bytes
    if "key" in obj:
        key = codec.as_str(obj["key"], f"{what}.key", max_len=MAX_KEY_BYTES, min_len=0)
        try:
            encoded = key.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(f"{what}.key is not valid Unicode (a lone surrogate)") from None
        if len(encoded) > MAX_KEY_BYTES:
            raise DecodeError(f"{what}.key is longer than {MAX_KEY_BYTES} bytes")
    else:
        key = codec.as_bytes(obj["key_b64"], f"{what}.key_b64", max_len=MAX_KEY_BYTES)
    created_at = codec.as_float(obj["created_at"], f"{what}.created_at", lo=0.0)
    state = decoder.from_dict(obj["state"])
    if not _is_replica_state(state):
        raise DecodeError(f"{what}.state did not decode to a ReplicaState")
    return Hint(target, key, state, created_at)


# -- the wire message --------------------------------------------------------------------------


def _validate_batch_id(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= codec.MAX_COUNTER:
        raise ValueError(f"{attribute.name} must be in 0..2**63-1, got {value}")


def _validate_hints(
    _: object, attribute: attrs.Attribute[tuple[Hint[Any], ...]], value: Any
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple of Hint, not {type(value).__name__}")
    if not 1 <= len(value) <= MAX_BATCH_HINTS:
        raise ValueError(f"{attribute.name} must hold 1..{MAX_BATCH_HINTS} hints, got {len(value)}")
    for i, hint in enumerate(value):
        if not isinstance(hint, Hint):
            raise TypeError(f"{attribute.name}[{i}] must be a Hint, not {type(hint).__name__}")
    targets = {hint.target for hint in value}
    if len(targets) != 1:
        raise ValueError(f"{attribute.name} must all be for one target, got {sorted(targets)}")
    keys = {(type(hint.key), hint.key) for hint in value}
    if len(keys) != len(value):
        raise ValueError(f"{attribute.name} must not hold two hints for the same key")


@attrs.frozen
class HintBatch(Generic[S]):
    """The message that carries hints to their target.

    The receiver merges each hint's state into its own replica of the key (``sync``) and then
    acknowledges `batch_id`; a batch received twice merges to the same result.

    Attributes:
        batch_id: Unique per sending [`Handoff`][dynamo_core.hints.Handoff]; the ack names it.
        hints: 1 to [`MAX_BATCH_HINTS`][dynamo_core.hints.MAX_BATCH_HINTS] hints for one target,
            at most one per key.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: `batch_id` is out of range, or `hints` is empty, too long, mixes targets or
            repeats a key.
    """

    batch_id: int = attrs.field(validator=_validate_batch_id)
    hints: tuple[Hint[S], ...] = attrs.field(validator=_validate_hints)

    @property
    def target(self) -> str:
        """The node every hint of the batch belongs to."""
        return self.hints[0].target

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``"hint_batch"`` envelope holding the encoded hints."""
        return codec.envelope(
            "hint_batch",
            {"batch_id": self.batch_id, "hints": [hint.to_dict() for hint in self.hints]},
        )

    @overload
    @classmethod
    def from_dict(cls, data: object) -> HintBatch[DVVSet[bytes]]: ...

    @overload
    @classmethod
    def from_dict(cls, data: object, *, state_type: type[T]) -> HintBatch[T]: ...

    @classmethod
    def from_dict(cls, data: object, *, state_type: type[Any] | None = None) -> HintBatch[Any]:
        """Decode what [`to_dict`][dynamo_core.hints.HintBatch.to_dict] produced.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded batch.
            TypeError: `state_type` is not a class with a ``from_dict`` decoder.
        """
        decoder = _check_state_type(state_type)
        obj = codec.open_envelope(data, "hint_batch", required=("batch_id", "hints"))
        batch_id = codec.as_int(obj["batch_id"], "hint_batch.batch_id")
        items = codec.as_list(obj["hints"], "hint_batch.hints", max_items=MAX_BATCH_HINTS)
        hints = []
        for i, item in enumerate(items):
            what = f"hint_batch.hints[{i}]"
            fields = codec.open_envelope(
                item,
                "hint",
                required=("target", "state", "created_at"),
                optional=("key", "key_b64"),
            )
            hints.append(_decode_hint_fields(fields, what, decoder))
        try:
            return cls(batch_id, tuple(hints))
        except ValueError as exc:
            raise DecodeError(f"hint_batch: {exc}") from None


@attrs.frozen
class HintAck:
    """The target of a [`HintBatch`][dynamo_core.hints.HintBatch] merged it: delete those hints."""

    batch_id: int = attrs.field(validator=_validate_batch_id)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_hint_ack`` envelope."""
        return codec.envelope("node_hint_ack", {"batch_id": self.batch_id})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_hint_ack`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_hint_ack", required=("batch_id",))
        return cls(codec.as_int(obj["batch_id"], "node_hint_ack.batch_id"))

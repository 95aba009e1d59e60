"""The request path's messages: heartbeats, stores, fetches, read repair and forwarding."""

from __future__ import annotations

import json.encoder
import re
from collections.abc import Callable
from typing import Any, Final, Literal, Self

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, node_id_field
from dynamo_core.dvv import _STATE_PATTERN, DVVSet, _state_json, _state_of
from dynamo_core.messages._fields import (
    _M,
    _MAX_ID,
    _V,
    _b64,
    _build,
    _check_id,
    _check_key_field,
    _check_text,
    _decode_hint,
    _decode_key,
    _is_hint,
    _is_id,
    _is_version,
    _new,
    _quick_key,
)
from dynamo_core.messages.results import (
    MAX_CONTEXT_BYTES,
    GetReply,
    PutReply,
    RequestFailed,
    RequestResult,
    result_from_dict,
)

# -- messages ----------------------------------------------------------------------------------


@attrs.frozen
class Heartbeat:
    """I am alive. `generation` changes at every start of the sender, `seq` at every beat.

    The receiver feeds its failure detector only with beats newer than the last one it saw from
    the sender, so duplicated or reordered beats do not fake short intervals.
    """

    generation: int = attrs.field(validator=_check_id)
    seq: int = attrs.field(validator=_check_id)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_heartbeat`` envelope."""
        return {"type": "node_heartbeat", "v": _V, "generation": self.generation, "seq": self.seq}

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_heartbeat`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_heartbeat", required=("generation", "seq"))
        return cls(
            codec.as_int(obj["generation"], "node_heartbeat.generation"),
            codec.as_int(obj["seq"], "node_heartbeat.seq"),
        )


@attrs.frozen
class StoreRequest:
    """Merge `state` into your replica of `key` (or, with `hint`, keep it for that node).

    Attributes:
        op: The coordinator's request id, echoed in the reply.
        key: The key.
        state: The state to merge with ``sync``.
        hint: The primary this fallback stands in for, or `None` when the receiver is a primary.
        epoch: The coordinator's ring epoch; a replica that knows a newer one refuses the store
            (the coordinator placed the write with a stale ring).
    """

    op: int = attrs.field(validator=_check_id)
    key: bytes = attrs.field(validator=_check_key_field)
    state: DVVSet[bytes] = attrs.field(validator=attrs.validators.instance_of(DVVSet))
    hint: str | None = attrs.field(default=None, validator=attrs.validators.optional(node_id_field))
    epoch: int = attrs.field(default=0, validator=_check_id)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_store`` envelope."""
        return {
            "type": "node_store",
            "v": _V,
            "op": self.op,
            "key": _b64(self.key),
            "state": self.state.to_dict(),
            "hint": self.hint,
            "epoch": self.epoch,
        }

    def _json(self) -> str | None:
        """`codec.dumps(self.to_dict())` as text; `None` for a state `to_dict` refuses."""
        state = _state_json(self.state)
        if state is None:
            return None
        return (
            f'{{"epoch":{self.epoch},"hint":{_hint_json(self.hint)},"key":"{_b64(self.key)}",'
            f'"op":{self.op},"state":{state},"type":"node_store","v":{_V}}}'
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_store`` envelope (a missing ``epoch`` is 0).

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        message = cls._decode_quickly(data)
        return message if message is not None else cls._decode_checked(data)

    @classmethod
    def _decode_quickly(cls, data: object) -> Self | None:
        """What `to_dict` writes, in one pass; `None` sends the rest to `_decode_checked`."""
        if type(data) is dict and data.get("type") == "node_store" and len(data) == 7:
            op, key, hint, epoch = (
                data.get("op"),
                data.get("key"),
                data.get("hint"),
                data.get("epoch"),
            )
            if (
                _is_version(data.get("v"))
                and _is_id(op)
                and _is_id(epoch)
                and "hint" in data
                and _is_hint(hint)
                and (raw_key := _quick_key(key)) is not None
                and "state" in data
            ):
                state = DVVSet.from_dict(data["state"])
                return _trusted(cls, op, raw_key, state, hint, epoch)
        return None

    @classmethod
    def _decode_checked(cls, data: object) -> Self:
        """Check field by field (accepts what `_decode_quickly` does), naming a bad field."""
        obj = codec.open_envelope(
            data, "node_store", required=("op", "key", "state", "hint"), optional=("epoch",)
        )
        return cls(
            codec.as_int(obj["op"], "node_store.op"),
            _decode_key(obj["key"], "node_store.key"),
            DVVSet.from_dict(obj["state"]),
            _decode_hint(obj["hint"], "node_store.hint"),
            codec.as_int(obj.get("epoch", 0), "node_store.epoch"),
        )


@attrs.frozen
class StoreReply:
    """The answer to a [`StoreRequest`][dynamo_core.messages.StoreRequest].

    Attributes:
        op: The request's id.
        stored: Whether the state is durably merged (or kept as a hint).
        reason: Why not, when `stored` is false.
    """

    op: int = attrs.field(validator=_check_id)
    stored: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    reason: str = attrs.field(default="", validator=_check_text)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_stored`` envelope."""
        return {
            "type": "node_stored",
            "v": _V,
            "op": self.op,
            "stored": self.stored,
            "reason": self.reason,
        }

    def _json(self) -> str:
        """`codec.dumps(self.to_dict())` as text, written directly (see `encode_message`)."""
        stored = "true" if self.stored else "false"
        return (
            f'{{"op":{self.op},"reason":{_json_str(self.reason)},"stored":{stored},'
            f'"type":"node_stored","v":{_V}}}'
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_stored`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        message = cls._decode_quickly(data)
        return message if message is not None else cls._decode_checked(data)

    @classmethod
    def _decode_quickly(cls, data: object) -> Self | None:
        """What `to_dict` writes, in one pass; `None` sends the rest to `_decode_checked`."""
        if type(data) is dict and data.get("type") == "node_stored" and len(data) == 5:
            op, stored, reason = data.get("op"), data.get("stored"), data.get("reason")
            if (
                _is_version(data.get("v"))
                and _is_id(op)
                and type(stored) is bool
                and type(reason) is str
                and len(reason) <= codec.DEFAULT_MAX_STR
                and reason.isascii()
            ):
                return _trusted(cls, op, stored, reason)
        return None

    @classmethod
    def _decode_checked(cls, data: object) -> Self:
        """Check field by field (accepts what `_decode_quickly` does), naming a bad field."""
        obj = codec.open_envelope(data, "node_stored", required=("op", "stored", "reason"))
        return cls(
            codec.as_int(obj["op"], "node_stored.op"),
            codec.as_bool(obj["stored"], "node_stored.stored"),
            codec.as_str(obj["reason"], "node_stored.reason", min_len=0),
        )


@attrs.frozen
class FetchRequest:
    """Send me your state of `key` (with `hint`: the hinted state you keep for that node)."""

    op: int = attrs.field(validator=_check_id)
    key: bytes = attrs.field(validator=_check_key_field)
    hint: str | None = attrs.field(default=None, validator=attrs.validators.optional(node_id_field))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_fetch`` envelope."""
        return {
            "type": "node_fetch",
            "v": _V,
            "op": self.op,
            "key": _b64(self.key),
            "hint": self.hint,
        }

    def _json(self) -> str:
        """`codec.dumps(self.to_dict())` as text, written directly (see `encode_message`)."""
        return (
            f'{{"hint":{_hint_json(self.hint)},"key":"{_b64(self.key)}","op":{self.op},'
            f'"type":"node_fetch","v":{_V}}}'
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_fetch`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        message = cls._decode_quickly(data)
        return message if message is not None else cls._decode_checked(data)

    @classmethod
    def _decode_quickly(cls, data: object) -> Self | None:
        """What `to_dict` writes, in one pass; `None` sends the rest to `_decode_checked`."""
        if type(data) is dict and data.get("type") == "node_fetch" and len(data) == 5:
            op, key, hint = data.get("op"), data.get("key"), data.get("hint")
            if (
                _is_version(data.get("v"))
                and _is_id(op)
                and "hint" in data
                and _is_hint(hint)
                and (raw_key := _quick_key(key)) is not None
            ):
                return _trusted(cls, op, raw_key, hint)
        return None

    @classmethod
    def _decode_checked(cls, data: object) -> Self:
        """Check field by field (accepts what `_decode_quickly` does), naming a bad field."""
        obj = codec.open_envelope(data, "node_fetch", required=("op", "key", "hint"))
        return cls(
            codec.as_int(obj["op"], "node_fetch.op"),
            _decode_key(obj["key"], "node_fetch.key"),
            _decode_hint(obj["hint"], "node_fetch.hint"),
        )


@attrs.frozen
class FetchReply:
    """The answer to a [`FetchRequest`][dynamo_core.messages.FetchRequest]: the state, or `None`."""

    op: int = attrs.field(validator=_check_id)
    state: DVVSet[bytes] | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(DVVSet))
    )

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_fetched`` envelope."""
        state = None if self.state is None else self.state.to_dict()
        return {"type": "node_fetched", "v": _V, "op": self.op, "state": state}

    def _json(self) -> str | None:
        """`codec.dumps(self.to_dict())` as text; `None` for a state `to_dict` refuses."""
        state = "null" if self.state is None else _state_json(self.state)
        if state is None:
            return None
        return f'{{"op":{self.op},"state":{state},"type":"node_fetched","v":{_V}}}'

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_fetched`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        message = cls._decode_quickly(data)
        return message if message is not None else cls._decode_checked(data)

    @classmethod
    def _decode_quickly(cls, data: object) -> Self | None:
        """What `to_dict` writes, in one pass; `None` sends the rest to `_decode_checked`."""
        if type(data) is dict and data.get("type") == "node_fetched" and len(data) == 4:
            op = data.get("op")
            if _is_version(data.get("v")) and _is_id(op) and "state" in data:
                raw = data["state"]
                state = None if raw is None else DVVSet.from_dict(raw)
                return _trusted(cls, op, state)
        return None

    @classmethod
    def _decode_checked(cls, data: object) -> Self:
        """Check field by field (accepts what `_decode_quickly` does), naming a bad field."""
        obj = codec.open_envelope(data, "node_fetched", required=("op", "state"))
        raw = obj["state"]
        return cls(
            codec.as_int(obj["op"], "node_fetched.op"),
            None if raw is None else DVVSet.from_dict(raw),
        )


@attrs.frozen
class ReadRepair:
    """Merge `state` into your replica of `key` (or hint): a read found yours stale. No reply."""

    key: bytes = attrs.field(validator=_check_key_field)
    state: DVVSet[bytes] = attrs.field(validator=attrs.validators.instance_of(DVVSet))
    hint: str | None = attrs.field(default=None, validator=attrs.validators.optional(node_id_field))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_read_repair`` envelope."""
        return codec.envelope(
            "node_read_repair",
            {"key": codec.encode_bytes(self.key), "state": self.state.to_dict(), "hint": self.hint},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_read_repair`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_read_repair", required=("key", "state", "hint"))
        return cls(
            _decode_key(obj["key"], "node_read_repair.key"),
            DVVSet.from_dict(obj["state"]),
            _decode_hint(obj["hint"], "node_read_repair.hint"),
        )


def _check_kind(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("put", "get"):
        raise ValueError(f"{attribute.name} must be 'put' or 'get', got {value!r:.40}")


def _check_optional_bytes(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and type(value) is not bytes:
        raise TypeError(f"{attribute.name} must be bytes or None, not {type(value).__name__}")


@attrs.frozen
class Forward:
    """Coordinate this client request for me: I do not replicate `key` (Dynamo's forwarding).

    Attributes:
        fwd: The forwarding node's id for the request, echoed in the reply.
        kind: ``"put"`` or ``"get"``.
        key: The key.
        value: The value to write (puts only).
        context: The client's encoded context (puts only; `None` for a blind write).
    """

    fwd: int = attrs.field(validator=_check_id)
    kind: Literal["put", "get"] = attrs.field(validator=_check_kind)
    key: bytes = attrs.field(validator=_check_key_field)
    value: bytes | None = attrs.field(default=None, validator=_check_optional_bytes)
    context: bytes | None = attrs.field(default=None, validator=_check_optional_bytes)

    def __attrs_post_init__(self) -> None:
        if (self.kind == "put") != (self.value is not None):
            raise ValueError("value must be given for a put and only for a put")
        if self.kind == "get" and self.context is not None:
            raise ValueError("context is for puts only")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_forward`` envelope."""
        return codec.envelope(
            "node_forward",
            {
                "fwd": self.fwd,
                "kind": self.kind,
                "key": codec.encode_bytes(self.key),
                "value": None if self.value is None else codec.encode_bytes(self.value),
                "context": None if self.context is None else codec.encode_bytes(self.context),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_forward`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(
            data, "node_forward", required=("fwd", "kind", "key", "value", "context")
        )
        kind = codec.as_str(obj["kind"], "node_forward.kind", max_len=3)
        value = obj["value"]
        context = obj["context"]
        return _build(  # type: ignore[no-any-return]
            cls,
            "node_forward",
            codec.as_int(obj["fwd"], "node_forward.fwd"),
            kind,
            _decode_key(obj["key"], "node_forward.key"),
            None
            if value is None
            else codec.as_bytes(value, "node_forward.value", max_len=codec.DEFAULT_MAX_BYTES),
            None
            if context is None
            else codec.as_bytes(context, "node_forward.context", max_len=MAX_CONTEXT_BYTES),
        )


def _check_result(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, PutReply | GetReply | RequestFailed):
        raise TypeError(f"{attribute.name} must be a request result, not {type(value).__name__}")


@attrs.frozen
class ForwardReply:
    """The outcome of a forwarded request."""

    fwd: int = attrs.field(validator=_check_id)
    result: RequestResult = attrs.field(validator=_check_result)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_forward_reply`` envelope."""
        return codec.envelope(
            "node_forward_reply", {"fwd": self.fwd, "result": self.result.to_dict()}
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_forward_reply`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "node_forward_reply", required=("fwd", "result"))
        return cls(
            codec.as_int(obj["fwd"], "node_forward_reply.fwd"), result_from_dict(obj["result"])
        )


def _trusted(cls: type[_M], *values: object) -> _M:
    """Build a message from fields already known valid, without re-running the validators.

    `values` are in the constructor's order. The fast paths of the hot decoders use it (each
    checks its fields exactly as the attrs validators would; the tests compare both paths on
    hostile inputs), and so does the node for the messages it builds from its own values (a
    checked key, a state it decoded or made, node ids from its ring). The slots are set one by
    one, unrolled: a loop costs more than the sets.
    """
    message = _new(cls)
    setters = _SETTERS[cls]
    setters[0](message, values[0])
    setters[1](message, values[1])
    if len(values) > 2:
        setters[2](message, values[2])
        if len(values) > 3:
            setters[3](message, values[3])
            setters[4](message, values[4])
    return message


# -- the request path's wire form, written and read directly -----------------------------------
#
# encode_message writes StoreRequest, StoreReply, FetchRequest and FetchReply as text: the same
# bytes as codec.dumps(message.to_dict()) (sorted keys, no spaces), without building the dicts.
# decode_message reads exactly that canonical form with one regular expression per kind and the
# JSON scanner for the state's entries; anything else (another key order, whitespace, escapes,
# non-ASCII text, a value out of range) goes through codec.loads and the decoders, which name
# what is wrong. tests/test_codec_fast.py checks both directions, byte by byte.

_json_str: Final = json.encoder.encode_basestring  # what codec.dumps writes for a str


def _hint_json(hint: str | None) -> str:
    return "null" if hint is None else _json_str(hint)


_ID_RE: Final = "(0|[1-9][0-9]{0,18})"  # bounded by _MAX_ID after int()
_NODE_RE: Final = f'"([ !#-\\[\\]-~]{{1,{MAX_NODE_ID_LEN}}})"'  # printable ASCII, no escapes
_HINT_RE: Final = f"(?:null|{_NODE_RE})"
_KEY_RE: Final = '"([A-Za-z0-9+/=]*)"'  # strict base64, capped by _quick_key


def _end_re(kind: str) -> str:
    return f',"type":"{kind}","v":{_V}\\}}'


_STORE_RE: Final = re.compile(
    f'\\{{"epoch":{_ID_RE},"hint":{_HINT_RE},"key":{_KEY_RE},"op":{_ID_RE},"state":{_STATE_PATTERN}'
    + _end_re("node_store"),
    re.DOTALL,
).fullmatch
_STORED_RE: Final = re.compile(
    f'\\{{"op":{_ID_RE},"reason":"([ !#-\\[\\]-~]{{0,{codec.DEFAULT_MAX_STR}}})",'
    '"stored":(true|false)' + _end_re("node_stored")
).fullmatch
_FETCH_RE: Final = re.compile(
    f'\\{{"hint":{_HINT_RE},"key":{_KEY_RE},"op":{_ID_RE}' + _end_re("node_fetch")
).fullmatch
_FETCHED_RE: Final = re.compile(
    f'\\{{"op":{_ID_RE},"state":(?:null|{_STATE_PATTERN})' + _end_re("node_fetched"), re.DOTALL
).fullmatch


def _read_store(text: str) -> StoreRequest | None:
    match = _STORE_RE(text)
    if match is None:
        return None
    epoch, hint, key, op, entries = match.groups()
    epoch, op = int(epoch), int(op)
    raw_key = _quick_key(key)
    if op > _MAX_ID or epoch > _MAX_ID or raw_key is None:
        return None
    state = _state_of(entries)
    if state is None:
        return None
    return _trusted(StoreRequest, op, raw_key, state, hint, epoch)


def _read_stored(text: str) -> StoreReply | None:
    match = _STORED_RE(text)
    if match is None:
        return None
    op_text, reason, stored = match.groups()
    op = int(op_text)
    if op > _MAX_ID:
        return None
    return _trusted(StoreReply, op, stored == "true", reason)


def _read_fetch(text: str) -> FetchRequest | None:
    match = _FETCH_RE(text)
    if match is None:
        return None
    hint, key, op_text = match.groups()
    op = int(op_text)
    raw_key = _quick_key(key)
    if op > _MAX_ID or raw_key is None:
        return None
    return _trusted(FetchRequest, op, raw_key, hint)


def _read_fetched(text: str) -> FetchReply | None:
    match = _FETCHED_RE(text)
    if match is None:
        return None
    op_text, entries = match.groups()
    op = int(op_text)
    if op > _MAX_ID:
        return None
    state = None
    if entries is not None:
        state = _state_of(entries)
        if state is None:
            return None
    return _trusted(FetchReply, op, state)


# The fields' slot setters, in constructor order, of the messages `_trusted` builds.
_SETTERS: Final[dict[type[Any], tuple[Callable[[Any, Any], None], ...]]] = {
    cls: tuple(cls.__dict__[field.name].__set__ for field in attrs.fields(cls))
    for cls in (StoreRequest, StoreReply, FetchRequest, FetchReply, PutReply, GetReply)
}

"""The messages Dynamo nodes send each other, and the results of client requests.

Every message a [`Node`][dynamo_core.node.Node] sends is a frozen attrs value with ``to_dict`` /
``from_dict`` through [`dynamo_core.codec`][dynamo_core.codec], so a driver can put it on any
transport: the deterministic [`Simulation`][dynamo_core.testing.Simulation] passes the objects,
a network driver sends [`encode_message`][dynamo_core.messages.encode_message] bytes and decodes
them with [`decode_message`][dynamo_core.messages.decode_message] (one dispatcher,
[`message_from_dict`][dynamo_core.messages.message_from_dict], for every kind). Decoders raise
only [`DecodeError`][dynamo_core.errors.DecodeError] and are capped in size.

* [`Heartbeat`][dynamo_core.messages.Heartbeat]: every node to every other, every
  `heartbeat_interval`; feeds the failure detectors.
* [`StoreRequest`][dynamo_core.messages.StoreRequest] /
  [`StoreReply`][dynamo_core.messages.StoreReply]: a put coordinator and a replica (or a fallback
  keeping a hint).
* [`FetchRequest`][dynamo_core.messages.FetchRequest] /
  [`FetchReply`][dynamo_core.messages.FetchReply]: a get coordinator and a replica.
* [`ReadRepair`][dynamo_core.messages.ReadRepair]: a get coordinator to a stale replica; no reply.
* [`Forward`][dynamo_core.messages.Forward] /
  [`ForwardReply`][dynamo_core.messages.ForwardReply]: a node asked for a key it does not
  replicate, and the primary that coordinated the request for it.
* [`HintBatch`][dynamo_core.hints.HintBatch] / [`HintAck`][dynamo_core.hints.HintAck]: a
  fallback handing hints over to the node they belong to.
* [`SyncOffer`][dynamo_core.messages.SyncOffer] / [`SyncDiff`][dynamo_core.messages.SyncDiff]:
  anti-entropy, the Merkle roots of the ranges two replicas share and which of them differ.
* [`ExchangeMessage`][dynamo_core.messages.ExchangeMessage]: one message of a Merkle exchange
  over one range.
* [`RepairPush`][dynamo_core.messages.RepairPush] /
  [`RepairPull`][dynamo_core.messages.RepairPull]: anti-entropy repair, states shipped to the
  side that lacks them.
* [`GossipDigest`][dynamo_core.membership.GossipDigest] /
  [`GossipUpdate`][dynamo_core.membership.GossipUpdate]: membership gossip (ring versions and
  change requests).
* [`StreamPull`][dynamo_core.streaming.StreamPull] /
  [`StreamBatch`][dynamo_core.streaming.StreamBatch]: a new replica pulling a range's data.

Keys travel as `bytes` (a `str` key is its UTF-8 encoding); replica states as
[`DVVSet`][dynamo_core.dvv.DVVSet] encodings.
"""

from __future__ import annotations

import json.encoder
import re
from binascii import a2b_base64
from collections.abc import Callable
from typing import Any, Final, Literal, Self, TypeAlias, TypeVar

import attrs

from dynamo_core import codec, merkle
from dynamo_core._check import MAX_KEY_BYTES, MAX_NODE_ID_LEN, check_node_id, node_id_field
from dynamo_core.dvv import _STATE_PATTERN, DVVSet, _state_json, _state_of
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TOKEN_SPACE, TokenRange
from dynamo_core.hints import HintAck, HintBatch
from dynamo_core.membership import GossipDigest, GossipUpdate
from dynamo_core.streaming import StreamBatch, StreamPull

__all__ = [
    "MAX_CONTEXT_BYTES",
    "MAX_KEY_BYTES",
    "MAX_RANGES",
    "MAX_REPAIR_KEYS",
    "MESSAGE_TYPES",
    "ExchangeMessage",
    "FetchReply",
    "FetchRequest",
    "Forward",
    "ForwardReply",
    "GetReply",
    "Heartbeat",
    "HintAck",
    "Message",
    "PutReply",
    "ReadRepair",
    "RepairPull",
    "RepairPush",
    "RequestFailed",
    "RequestResult",
    "StoreReply",
    "StoreRequest",
    "SyncDiff",
    "SyncOffer",
    "decode_message",
    "encode_message",
    "message_from_dict",
    "result_from_dict",
]

"""The longest key, in bytes, a node accepts (64 KiB, as the hint store and Merkle exchange)."""

MAX_CONTEXT_BYTES: Final = 256 * 1024
"""The largest encoded client context accepted (a clock of up to 1,024 entries fits)."""

MAX_RANGES: Final = 2**18
"""The most token ranges one [`SyncOffer`][dynamo_core.messages.SyncOffer] may carry."""

MAX_REPAIR_KEYS: Final = 10_000
"""The most keys one [`RepairPush`][dynamo_core.messages.RepairPush] or pull may carry."""

_MAX_ID: Final = codec.MAX_COUNTER
_M = TypeVar("_M")
_new = object.__new__
# The envelope and base64 of the hot messages are written inline (not codec.envelope and
# codec.encode_bytes): they are on the path of every request.
_V: Final = codec.FORMAT_VERSION
_b64: Final = codec.encode_bytes


# -- field checks ------------------------------------------------------------------------------


def _check_id(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _MAX_ID:
        raise ValueError(f"{attribute.name} must be in 0..2**63-1, got {value}")


def _check_code(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if len(value) > 32:
        raise ValueError(f"{attribute.name} must be at most 32 characters")


def _check_key_field(_: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    if type(value) is not bytes:
        raise TypeError(f"{attribute.name} must be bytes, not {type(value).__name__}")
    if len(value) > MAX_KEY_BYTES:
        raise ValueError(f"{attribute.name} must be at most {MAX_KEY_BYTES} bytes")


def _check_node_tuple(
    _: object, attribute: attrs.Attribute[tuple[str, ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple of node ids, not {type(value).__name__}")
    for i, node in enumerate(value):
        check_node_id(node, f"{attribute.name}[{i}]")


def _check_text(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if len(value) > codec.DEFAULT_MAX_STR:
        raise ValueError(f"{attribute.name} must be at most {codec.DEFAULT_MAX_STR} characters")


def _bytes_tuple(
    *, max_items: int, max_len: int
) -> Callable[[object, attrs.Attribute[tuple[bytes, ...]], object], None]:
    def check(_: object, attribute: attrs.Attribute[tuple[bytes, ...]], value: object) -> None:
        if type(value) is not tuple:
            raise TypeError(
                f"{attribute.name} must be a tuple of bytes, not {type(value).__name__}"
            )
        if len(value) > max_items:
            raise ValueError(f"{attribute.name} must hold at most {max_items} items")
        for i, item in enumerate(value):
            if type(item) is not bytes:
                raise TypeError(f"{attribute.name}[{i}] must be bytes, not {type(item).__name__}")
            if len(item) > max_len:
                raise ValueError(f"{attribute.name}[{i}] must be at most {max_len} bytes")

    return check


def _decode_key(value: object, what: str) -> bytes:
    return codec.as_bytes(value, what, max_len=MAX_KEY_BYTES)


def _decode_hint(value: object, what: str) -> str | None:
    if value is None:
        return None
    return codec.as_str(value, what, max_len=MAX_NODE_ID_LEN)


def _decode_nodes(value: object, what: str, *, max_items: int = 1024) -> tuple[str, ...]:
    items = codec.as_list(value, what, max_items=max_items)
    return tuple(
        codec.as_str(node, f"{what}[{i}]", max_len=MAX_NODE_ID_LEN) for i, node in enumerate(items)
    )


def _is_version(value: object) -> bool:
    return type(value) is int and 1 <= value <= _V


def _is_id(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_ID


def _is_hint(value: object) -> bool:
    """A hint the slow path accepts: `None` or an ASCII node id (others take the slow path)."""
    return value is None or (
        type(value) is str and 0 < len(value) <= MAX_NODE_ID_LEN and value.isascii()
    )


_MAX_KEY_B64: Final = 4 * ((MAX_KEY_BYTES + 2) // 3)


def _quick_key(value: object) -> bytes | None:
    """The key a well-formed base64 field holds; `None` where the slow path must decide."""
    if type(value) is not str or len(value) > _MAX_KEY_B64:
        return None
    try:
        key = a2b_base64(value, strict_mode=True)
    except ValueError:
        return None
    return key if len(key) <= MAX_KEY_BYTES else None


def _trusted(cls: type[_M], *values: object) -> _M:
    """Build a message from fields the decoder has just checked, without re-running validators.

    `values` are in the constructor's order. The fast paths of the hot decoders use it; each
    checks its fields exactly as the attrs validators would (the tests compare both paths on
    hostile inputs). The slots are set one by one, unrolled: a loop costs more than the sets.
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


def _build(cls: type[Any], what: str, *args: object) -> Any:
    """Construct a value from decoded fields; a validator's complaint becomes a DecodeError."""
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from None


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


# -- client results ----------------------------------------------------------------------------


@attrs.frozen
class PutReply:
    """A put succeeded: `w` replicas acknowledged the new state.

    Attributes:
        acked: The nodes whose acknowledgements counted, sorted.
        hinted: ``(fallback, primary)`` for every fallback that stored a hinted copy by the time
            the write succeeded, sorted.
    """

    acked: tuple[str, ...] = attrs.field(validator=_check_node_tuple)
    hinted: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """Always `True`: the request succeeded."""
        return True

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_put_reply`` envelope."""
        return codec.envelope(
            "node_put_reply",
            {"acked": list(self.acked), "hinted": [[f, p] for f, p in self.hinted]},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_put_reply`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded reply.
        """
        obj = codec.open_envelope(data, "node_put_reply", required=("acked", "hinted"))
        acked = _decode_nodes(obj["acked"], "node_put_reply.acked")
        pairs = codec.as_list(obj["hinted"], "node_put_reply.hinted", max_items=1024)
        hinted = []
        for i, pair in enumerate(pairs):
            nodes = _decode_nodes(pair, f"node_put_reply.hinted[{i}]", max_items=2)
            if len(nodes) != 2:
                raise DecodeError(f"node_put_reply.hinted[{i}] must be [fallback, primary]")
            hinted.append((nodes[0], nodes[1]))
        return _build(cls, "node_put_reply", acked, tuple(hinted))  # type: ignore[no-any-return]


@attrs.frozen
class GetReply:
    """A get succeeded: `r` replicas answered.

    Attributes:
        values: The siblings (one per concurrent write not yet merged), in a deterministic
            order; empty when the key was not found.
        context: The opaque causal context: send it back with the next put of this key, so that
            the put replaces exactly the values read here.
        found: Whether any replica held the key.
    """

    values: tuple[bytes, ...] = attrs.field(
        validator=_bytes_tuple(max_items=1024, max_len=codec.DEFAULT_MAX_BYTES)
    )
    context: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))
    found: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    @property
    def ok(self) -> bool:
        """Always `True`: the request succeeded."""
        return True

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_get_reply`` envelope (values and context in base64)."""
        return codec.envelope(
            "node_get_reply",
            {
                "values": [codec.encode_bytes(v) for v in self.values],
                "context": codec.encode_bytes(self.context),
                "found": self.found,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_get_reply`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded reply.
        """
        obj = codec.open_envelope(data, "node_get_reply", required=("values", "context", "found"))
        raw = codec.as_list(obj["values"], "node_get_reply.values", max_items=1024)
        values = tuple(
            codec.as_bytes(v, f"node_get_reply.values[{i}]", max_len=codec.DEFAULT_MAX_BYTES)
            for i, v in enumerate(raw)
        )
        context = codec.as_bytes(
            obj["context"], "node_get_reply.context", max_len=MAX_CONTEXT_BYTES
        )
        found = codec.as_bool(obj["found"], "node_get_reply.found")
        return _build(cls, "node_get_reply", values, context, found)  # type: ignore[no-any-return]


@attrs.frozen
class RequestFailed:
    """A request failed: too few replicas answered in time, or the coordinator did not answer.

    The write may still have reached some replicas (it is then neither acknowledged nor lost:
    a later read may or may not see it).

    Attributes:
        reason: What happened, for people.
        required: The replicas that had to answer (0 when the coordinator never answered).
        answered: The replicas that did, sorted.
        code: What kind of refusal it is, for programs: ``""`` (too few answers, or the
            coordinator never answered), a limit name of
            [`LIMIT_NAMES`][dynamo_core.limits.LIMIT_NAMES] (the write was refused and changed
            nothing), ``"storage_full"`` (the coordinator refuses writes: try another node),
            ``"quarantined"`` (the coordinator's copy of the key is quarantined: try another
            node) or ``"bad_request"``.
    """

    reason: str = attrs.field(validator=_check_text)
    required: int = attrs.field(default=0, validator=_check_id)
    answered: tuple[str, ...] = attrs.field(default=(), validator=_check_node_tuple)
    code: str = attrs.field(default="", validator=_check_code)

    @property
    def ok(self) -> bool:
        """Always `False`."""
        return False

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_request_failed`` envelope."""
        body: dict[str, codec.JSONValue] = {
            "reason": self.reason,
            "required": self.required,
            "answered": list(self.answered),
        }
        if self.code:
            body["code"] = self.code
        return codec.envelope("node_request_failed", body)

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_request_failed`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded result.
        """
        obj = codec.open_envelope(
            data,
            "node_request_failed",
            required=("reason", "required", "answered"),
            optional=("code",),
        )
        reason = codec.as_str(obj["reason"], "node_request_failed.reason", min_len=0)
        required = codec.as_int(obj["required"], "node_request_failed.required")
        answered = _decode_nodes(obj["answered"], "node_request_failed.answered")
        code = codec.as_str(obj.get("code", ""), "node_request_failed.code", max_len=32, min_len=0)
        return _build(cls, "node_request_failed", reason, required, answered, code)  # type: ignore[no-any-return]


RequestResult: TypeAlias = PutReply | GetReply | RequestFailed
"""What a client request ends with."""

_RESULTS: Final[dict[str, Callable[[object], RequestResult]]] = {
    "node_put_reply": PutReply.from_dict,
    "node_get_reply": GetReply.from_dict,
    "node_request_failed": RequestFailed.from_dict,
}


def result_from_dict(data: object) -> RequestResult:
    """Decode any request result, dispatching on its ``type``.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid encoded result.
    """
    result: RequestResult = codec.decode_by_type(data, _RESULTS, "request result")
    return result


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


Message: TypeAlias = (
    Heartbeat
    | StoreRequest
    | StoreReply
    | FetchRequest
    | FetchReply
    | ReadRepair
    | Forward
    | ForwardReply
    | HintBatch[DVVSet[bytes]]
    | HintAck
    | SyncOffer
    | SyncDiff
    | ExchangeMessage
    | RepairPush
    | RepairPull
    | GossipDigest
    | GossipUpdate
    | StreamPull
    | StreamBatch
)
"""Every message one node sends another."""

MESSAGE_TYPES: Final[tuple[type[Any], ...]] = (
    Heartbeat,
    StoreRequest,
    StoreReply,
    FetchRequest,
    FetchReply,
    ReadRepair,
    Forward,
    ForwardReply,
    HintBatch,
    HintAck,
    SyncOffer,
    SyncDiff,
    ExchangeMessage,
    RepairPush,
    RepairPull,
    GossipDigest,
    GossipUpdate,
    StreamPull,
    StreamBatch,
)

_MESSAGE_TYPE_SET: Final = frozenset(MESSAGE_TYPES)

_DECODERS: Final[dict[str, Callable[[object], Message]]] = {
    "node_heartbeat": Heartbeat.from_dict,
    "node_store": StoreRequest.from_dict,
    "node_stored": StoreReply.from_dict,
    "node_fetch": FetchRequest.from_dict,
    "node_fetched": FetchReply.from_dict,
    "node_read_repair": ReadRepair.from_dict,
    "node_forward": Forward.from_dict,
    "node_forward_reply": ForwardReply.from_dict,
    "hint_batch": HintBatch.from_dict,
    "node_hint_ack": HintAck.from_dict,
    "node_sync_offer": SyncOffer.from_dict,
    "node_sync_diff": SyncDiff.from_dict,
    "node_exchange": ExchangeMessage.from_dict,
    "node_repair_push": RepairPush.from_dict,
    "node_repair_pull": RepairPull.from_dict,
    "gossip_digest": GossipDigest.from_dict,
    "gossip_update": GossipUpdate.from_dict,
    "stream_pull": StreamPull.from_dict,
    "stream_batch": StreamBatch.from_dict,
}


# The fields' slot setters, in constructor order, of the messages `_trusted` builds.
_SETTERS: Final[dict[type[Any], tuple[Callable[[Any, Any], None], ...]]] = {
    cls: tuple(cls.__dict__[field.name].__set__ for field in attrs.fields(cls))
    for cls in (StoreRequest, StoreReply, FetchRequest, FetchReply)
}

# The request path's messages, written and read directly (see `_read_store`).
_WRITERS: Final[dict[type[Any], Callable[[Any], str | None]]] = {
    StoreRequest: StoreRequest._json,
    StoreReply: StoreReply._json,
    FetchRequest: FetchRequest._json,
    FetchReply: FetchReply._json,
}
_READERS: Final[dict[str, Callable[[str], Message | None]]] = {
    f'node_store","v":{_V}}}': _read_store,
    f'node_stored","v":{_V}}}': _read_stored,
    f'node_fetch","v":{_V}}}': _read_fetch,
    f'node_fetched","v":{_V}}}': _read_fetched,
}


def message_from_dict(data: object) -> Message:
    """Decode any node-to-node message from its envelope, dispatching on its ``type``.

    Cost: O(size of `data`), bounded by each message's caps.

    Returns:
        The message.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid encoded node message.
    """
    return codec.decode_by_type(data, _DECODERS, "node message")


def encode_message(message: Message) -> bytes:
    """Encode a message as canonical JSON bytes ([`codec.dumps`][dynamo_core.codec.dumps]).

    Returns:
        The encoded message.

    Raises:
        TypeError: `message` is not a node message.
    """
    write = _WRITERS.get(type(message))
    if write is not None:
        text = write(message)
        if text is not None:
            return text.encode("utf-8")
    if type(message) not in _MESSAGE_TYPE_SET and not isinstance(message, MESSAGE_TYPES):
        raise TypeError(f"message must be a node message, not {type(message).__name__}")
    return codec.dumps(message.to_dict())


def decode_message(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = codec.DEFAULT_MAX_BYTES
) -> Message:
    """Decode bytes made by [`encode_message`][dynamo_core.messages.encode_message].

    Returns:
        The message.

    Raises:
        dynamo_core.errors.DecodeError: `data` is over `max_bytes` or not a valid message.
    """
    if type(data) is bytes and len(data) <= max_bytes:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # codec.loads names the error
        else:
            read = _READERS.get(text.rpartition('"type":"')[2])
            message = None if read is None else read(text)
            if message is not None:
                return message
    return codec.decode_by_type(codec.loads(data, max_bytes=max_bytes), _DECODERS, "node message")
